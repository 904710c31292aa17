//! Each endpoint's request and response against literal JSON written from
//! `shared/spec/web-vault-api.md`: success and every error the spec lists.

use sponsorship_core::plan::PlanType;
use sponsorship_core::store::SponsorshipStore;

use crate::fixture::*;

const MODEL_INVALID: &str = r#"{"object":"error","message":"The model state is invalid.","validationErrors":{FIELD},"exceptionMessage":null,"exceptionStackTrace":null,"innerExceptionMessage":null}"#;

fn invalid(field: &str, text: &str) -> String {
    MODEL_INVALID.replace("{FIELD}", &format!(r#"{{"{field}":["{text}"]}}"#))
}

fn create_path(w: &World) -> String {
    format!(
        "/organization/sponsorship/self-hosted/{}/families-for-enterprise",
        w.org
    )
}

#[tokio::test]
async fn h1_create_sponsorship_and_its_errors() {
    let w = World::new(false).await;
    let path = create_path(&w);
    assert_eq!(
        w.offer(ALICE, "kid@home.example").await,
        (200, String::new())
    );
    let rows = w.host().store.sponsorships(w.org).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].sponsoring_member_id, w.member[ALICE]);
    assert_eq!(
        rows[0].offered_to_email.as_deref(),
        Some("kid@home.example")
    );

    // The same offer again: unchanged, 200.
    assert_eq!(
        w.offer(ALICE, "kid@home.example").await,
        (200, String::new())
    );
    assert_eq!(w.host().store.sponsorships(w.org).await.unwrap(), rows);

    // Member names in any case, numbers as strings.
    let body = r#"{"SPONSOREDEMAIL":"bobs-kid@home.example","PlanSponsorshipType":"0"}"#;
    assert_eq!(
        w.call("POST", &path, Some(BOB), Some(body)).await,
        (200, String::new())
    );

    let cases: &[(&str, &str, u16, String)] = &[
        (
            ADMIN,
            r#"{"sponsoredEmail":"admin@acme.example","planSponsorshipType":0}"#,
            400,
            World::error(
                "Cannot offer a Families Organization Sponsorship to yourself. Choose a different email.",
            ),
        ),
        (
            INVITED,
            r#"{"sponsoredEmail":"x@home.example","planSponsorshipType":0}"#,
            400,
            World::error("Only confirmed users can sponsor other organizations."),
        ),
        (
            STRANGER,
            r#"{"sponsoredEmail":"x@home.example","planSponsorshipType":0}"#,
            500,
            World::error("An unhandled server error has occurred."),
        ),
        (
            ALICE,
            r#"{"sponsoredEmail":"x@home.example","planSponsorshipType":0,"isAdminInitiated":true}"#,
            401,
            World::error("Unauthorized."),
        ),
        (
            ALICE,
            r#"{"planSponsorshipType":0}"#,
            400,
            invalid("SponsoredEmail", "The SponsoredEmail field is required."),
        ),
        (
            ALICE,
            r#"{"sponsoredEmail":"not an address","planSponsorshipType":0}"#,
            400,
            invalid(
                "SponsoredEmail",
                "The SponsoredEmail field is not a supported e-mail address format.",
            ),
        ),
        (
            ALICE,
            &format!(
                r#"{{"sponsoredEmail":"x@home.example","friendlyName":"{}"}}"#,
                "n".repeat(257)
            ),
            400,
            invalid(
                "FriendlyName",
                "The field FriendlyName must be a string with a maximum length of 256.",
            ),
        ),
        (
            ALICE,
            &format!(
                r#"{{"sponsoredEmail":"x@home.example","isAdminInitiated":false,"notes":"{}"}}"#,
                "n".repeat(513)
            ),
            400,
            invalid(
                "Notes",
                "The field Notes exceeds the maximum encrypted value length of 512 characters.",
            ),
        ),
    ];
    for (token, body, status, expected) in cases {
        assert_eq!(
            w.call("POST", &path, Some(token), Some(body)).await,
            (*status, expected.clone()),
            "{token} {body}"
        );
    }

    // The reference's order: confirmed before the admin's permission (no 401 logs out an
    // invited owner), the same friendly name before the permission too.
    let invited_admin = r#"{"sponsoredEmail":"x@home.example","isAdminInitiated":true}"#;
    assert_eq!(
        w.call("POST", &path, Some(INVITED), Some(invited_admin))
            .await,
        (
            400,
            World::error("Only confirmed users can sponsor other organizations.")
        )
    );
    let again_as_admin = r#"{"sponsoredEmail":"kid@home.example","friendlyName":"kid@home.example","isAdminInitiated":true}"#;
    assert_eq!(
        w.call("POST", &path, Some(ALICE), Some(again_as_admin))
            .await,
        (200, String::new())
    );

    // An admin-initiated offer with its encrypted note.
    let admin = r#"{"sponsoredEmail":"partner@home.example","planSponsorshipType":0,"friendlyName":"partner@home.example","isAdminInitiated":true,"notes":"2.aXY=|ZGF0YQ==|bWFj"}"#;
    assert_eq!(
        w.call("POST", &path, Some(ADMIN), Some(admin)).await,
        (200, String::new())
    );

    // Every seat taken: a self-hosted server cannot add one for another admin-initiated offer.
    {
        let mut orgs = w.host().orgs.lock().unwrap();
        let o = orgs.get_mut(&w.org).unwrap();
        *o = o.clone().with_seated_members(6);
        o.seats = Some(7);
    }
    let seat = r#"{"sponsoredEmail":"seat@home.example","isAdminInitiated":true}"#;
    assert_eq!(
        w.call("POST", &path, Some(OWNER), Some(seat)).await,
        (
            400,
            World::error("Cannot autoscale on self-hosted instance.")
        )
    );
    w.host().orgs.lock().unwrap().get_mut(&w.org).unwrap().seats = Some(8);
    assert_eq!(
        w.call("POST", &path, Some(OWNER), Some(seat)).await,
        (200, String::new())
    );

    // The organization's flag off: no admin-initiated offers.
    w.host()
        .orgs
        .lock()
        .unwrap()
        .get_mut(&w.org)
        .unwrap()
        .organization
        .use_admin_sponsored_families = false;
    let custom = r#"{"sponsoredEmail":"c@home.example","isAdminInitiated":true}"#;
    assert_eq!(
        w.call("POST", &path, Some(CUSTOM), Some(custom)).await,
        (
            400,
            World::error(
                "Sponsoring organization cannot send admin-initiated sponsorship invitations"
            )
        )
    );
    // Not an Enterprise organization.
    w.host()
        .orgs
        .lock()
        .unwrap()
        .get_mut(&w.org)
        .unwrap()
        .organization
        .plan_type = PlanType::TeamsAnnually;
    assert_eq!(
        w.offer(CUSTOM, "c@home.example").await,
        (
            400,
            World::error("Specified Organization cannot sponsor other organizations.")
        )
    );

    // No token, an unknown token: a bare 401 challenge.
    assert_eq!(
        w.call("POST", &path, None, Some("{}")).await,
        (401, String::new())
    );
    assert_eq!(
        w.call("POST", &path, Some("nobody"), Some("{}")).await,
        (401, String::new())
    );
    // A route value that is no GUID.
    assert_eq!(
        w.call(
            "POST",
            "/organization/sponsorship/self-hosted/acme/families-for-enterprise",
            Some(ALICE),
            Some("{}")
        )
        .await,
        (
            400,
            invalid(
                "sponsoringOrgId",
                r"The value \u0027acme\u0027 is not valid."
            )
        )
    );
}

#[tokio::test]
async fn h2_h3_member_revokes_and_h4_admin_revokes_by_friendly_name() {
    let w = World::new(false).await;
    let own = format!("/organization/sponsorship/self-hosted/{}", w.org);
    assert_eq!(
        w.call("DELETE", &own, Some(ALICE), None).await,
        (
            400,
            World::error("You are not currently sponsoring an organization.")
        )
    );
    assert_eq!(
        w.call("DELETE", &own, Some(STRANGER), None).await,
        (400, World::error("Unknown Organization User"))
    );
    w.offer(ALICE, "kid@home.example").await;
    assert_eq!(
        w.call("DELETE", &format!("{own}/"), Some(ALICE), None)
            .await,
        (200, String::new())
    );
    let rows = w.host().store.sponsorships(w.org).await.unwrap();
    assert!(
        rows[0].to_delete,
        "kept, marked for the next sync to withdraw"
    );

    // H3, the alias.
    w.offer(BOB, "bobs-kid@home.example").await;
    assert_eq!(
        w.call("POST", &format!("{own}/delete"), Some(BOB), None)
            .await,
        (200, String::new())
    );
    let bob = w.host().store.sponsorships(w.org).await.unwrap();
    assert!(bob.iter().all(|r| r.to_delete));

    // H4: by friendly name, ignoring case; a raw `@` as the web vault sends it.
    w.offer(ADMIN, "admins-kid@home.example").await;
    let revoke = |name: &str| {
        format!(
            "/organization/sponsorship/self-hosted/{}/{name}/revoke",
            w.org
        )
    };
    assert_eq!(
        w.call(
            "DELETE",
            &revoke("ADMINS-KID@home.example"),
            Some(ALICE),
            None
        )
        .await,
        (403, String::new())
    );
    assert_eq!(
        w.call(
            "DELETE",
            &revoke("ADMINS-KID@home.example"),
            Some(REVOKED),
            None
        )
        .await,
        (403, String::new())
    );
    assert_eq!(
        w.call("DELETE", &revoke("nobody@home.example"), Some(CUSTOM), None)
            .await,
        (
            400,
            World::error(
                "The specified sponsored organization could not be found under the given sponsoring organization."
            )
        )
    );
    assert_eq!(
        w.call(
            "DELETE",
            &revoke("ADMINS-KID@home.example"),
            Some(OWNER),
            None
        )
        .await,
        (200, String::new())
    );
    let admins = w.host().store.sponsorships(w.org).await.unwrap();
    let row = admins
        .iter()
        .find(|r| r.sponsoring_member_id == w.member[ADMIN])
        .unwrap();
    assert!(row.to_delete);
}

#[tokio::test]
async fn h5_lists_admin_initiated_sponsorships_and_h6_resend_is_refused() {
    let w = World::new(false).await;
    let list = format!("/organization/sponsorship/self-hosted/{}/sponsored", w.org);
    assert_eq!(
        w.call("GET", &list, Some(ADMIN), None).await,
        (
            200,
            r#"{"data":[],"continuationToken":null,"object":"list"}"#.into()
        )
    );
    w.offer(ALICE, "kid@home.example").await;
    let body = r#"{"sponsoredEmail":"a+b@home.example","planSponsorshipType":0,"friendlyName":"a+b@home.example","isAdminInitiated":true,"notes":"2.aXY=|ZGF0YQ==|bWFj"}"#;
    assert_eq!(
        w.call("POST", &create_path(&w), Some(ADMIN), Some(body))
            .await
            .0,
        200
    );
    let expected = format!(
        r#"{{"data":[{{"sponsoringOrganizationUserId":"{}","friendlyName":"a\u002Bb@home.example","offeredToEmail":"a\u002Bb@home.example","planSponsorshipType":0,"lastSyncDate":null,"validUntil":null,"toDelete":false,"isAdminInitiated":true,"notes":"2.aXY=|ZGF0YQ==|bWFj","cloudSponsorshipRemoved":false,"object":"organizationSponsorship"}}],"continuationToken":null,"object":"list"}}"#,
        w.member[ADMIN]
    );
    assert_eq!(
        w.call("GET", &list, Some(CUSTOM), None).await,
        (200, expected)
    );
    assert_eq!(
        w.call("GET", &list, Some(ALICE), None).await,
        (401, World::error("Unauthorized."))
    );
    let missing = format!(
        "/organization/sponsorship/self-hosted/{}/sponsored",
        uuid::Uuid::new_v4()
    );
    assert_eq!(
        w.call("GET", &missing, Some(ADMIN), None).await,
        (404, World::error("Resource not found."))
    );

    let resend = format!(
        "/organization/sponsorship/{}/families-for-enterprise/resend?sponsoredFriendlyName=a%2Bb%40home.example",
        w.org
    );
    assert_eq!(
        w.call("POST", &resend, Some(ALICE), None).await,
        (403, String::new())
    );
    assert_eq!(
        w.call("POST", &resend, Some(ADMIN), None).await,
        (400, World::error("Only allowed when not self hosted."))
    );
}

#[tokio::test]
async fn h7_cloud_communication_flag() {
    let on = World::new(false).await;
    assert_eq!(
        on.call(
            "GET",
            "/organizations/connections/enabled",
            Some(ALICE),
            None
        )
        .await,
        (200, "true".into())
    );
    let off = World::new(true).await;
    assert_eq!(
        off.call(
            "GET",
            "/Organizations/Connections/Enabled/",
            Some(ALICE),
            None
        )
        .await,
        (200, "false".into())
    );
}

#[tokio::test]
async fn h8_to_h11_the_billing_sync_connection() {
    let w = World::new(false).await;
    let get = format!("/organizations/connections/{}/1", w.org);
    assert_eq!(
        w.call("GET", &get, Some(OWNER), None).await,
        (200, r#"{"id":null,"type":0,"organizationId":"00000000-0000-0000-0000-000000000000","enabled":false,"config":null}"#.into())
    );
    assert_eq!(
        w.call("GET", &get, Some(ADMIN), None).await,
        (
            400,
            World::error(
                "You do not have permission to retrieve a connection of type CloudBillingSync."
            )
        )
    );
    assert_eq!(
        w.call(
            "GET",
            &format!("/organizations/connections/{}/7", w.org),
            Some(OWNER),
            None
        )
        .await,
        (400, World::error("Unknown Organization connection Type: 7"))
    );

    // H9, with its errors in the reference's order.
    let body = |key: &str| {
        format!(
            r#"{{"organizationId":"{}","type":1,"enabled":true,"config":{{"billingSyncKey":"{key}"}}}}"#,
            w.org
        )
    };
    assert_eq!(
        w.call(
            "POST",
            "/organizations/connections/",
            Some(ADMIN),
            Some(&body(test_support::BILLING_KEY))
        )
        .await,
        (
            400,
            World::error(
                "You do not have permission to create a connection of type CloudBillingSync."
            )
        )
    );
    let short = w
        .call(
            "POST",
            "/organizations/connections/",
            Some(OWNER),
            Some(&body("too-short")),
        )
        .await;
    assert_eq!(short.0, 400);
    assert!(
        short.1.contains("The billing sync token is not valid"),
        "{}",
        short.1
    );
    let no_config = format!(
        r#"{{"organizationId":"{}","type":1,"enabled":true}}"#,
        w.org
    );
    assert_eq!(
        w.call(
            "POST",
            "/organizations/connections",
            Some(OWNER),
            Some(&no_config)
        )
        .await,
        (500, World::error("An unhandled server error has occurred."))
    );
    let malformed = format!(
        r#"{{"organizationId":"{}","type":1,"enabled":true,"config":"key"}}"#,
        w.org
    );
    assert_eq!(
        w.call(
            "POST",
            "/organizations/connections",
            Some(OWNER),
            Some(&malformed)
        )
        .await,
        (
            400,
            World::error("Organization Connection configuration malformed")
        )
    );
    let license = w
        .host()
        .orgs
        .lock()
        .unwrap()
        .get_mut(&w.org)
        .unwrap()
        .license
        .take();
    assert_eq!(
        w.call(
            "POST",
            "/organizations/connections",
            Some(OWNER),
            Some(&body(test_support::BILLING_KEY))
        )
        .await,
        (400, World::error("Cannot verify license file."))
    );
    w.host()
        .orgs
        .lock()
        .unwrap()
        .get_mut(&w.org)
        .unwrap()
        .license = license;

    let saved = |key: &str, enabled: bool| {
        format!(
            r#"{{"id":"{org}","type":1,"organizationId":"{org}","enabled":{enabled},"config":{{"BillingSyncKey":"{key}","CloudOrganizationId":"{cloud}","LastLicenseSync":null}}}}"#,
            org = w.org,
            cloud = test_support::CLOUD_ORG_ID
        )
    };
    assert_eq!(
        w.connect().await,
        (200, saved(test_support::BILLING_KEY, true))
    );
    // The owner's dialog gets the key; a log line of the response never does.
    let request = selfhost_api::HttpRequest::new(selfhost_api::Method::Get, &get)
        .header("Authorization", "Bearer owner");
    let response = w.api.handle(&request).await;
    assert!(response.text().contains(test_support::BILLING_KEY));
    assert!(
        !format!("{response:?}").contains(test_support::BILLING_KEY),
        "{response:?}"
    );
    assert_eq!(
        w.call("GET", &get, Some(OWNER), None).await,
        (200, saved(test_support::BILLING_KEY, true))
    );
    assert_eq!(
        w.call(
            "GET",
            &format!("/organizations/connections/{}/CloudBillingSync", w.org),
            Some(OWNER),
            None
        )
        .await,
        (200, saved(test_support::BILLING_KEY, true))
    );
    assert_eq!(
        w.connect().await,
        (
            400,
            World::error(
                "The requested organization already has a connection of type CloudBillingSync. Only one of each connection type may exist per organization."
            )
        )
    );

    // H10.
    let other_key = "Zz9yXx8wVv7uTt6sRr5qPp4oNn3mLl";
    let update = |id: &str| format!("/organizations/connections/{id}");
    let off = format!(
        r#"{{"organizationId":"{}","type":1,"enabled":false,"config":{{"BillingSyncKey":"{other_key}"}}}}"#,
        w.org
    );
    assert_eq!(
        w.call(
            "PUT",
            &update(&uuid::Uuid::new_v4().to_string()),
            Some(OWNER),
            Some(&off)
        )
        .await,
        (404, World::error("Resource not found."))
    );
    assert_eq!(
        w.call("PUT", &update(&w.org.to_string()), Some(ADMIN), Some(&off))
            .await,
        (
            400,
            World::error("You do not have permission to update this connection.")
        )
    );
    let scim = off.replace(r#""type":1"#, r#""type":2"#);
    assert_eq!(
        w.call("PUT", &update(&w.org.to_string()), Some(OWNER), Some(&scim))
            .await,
        (400, World::error("The connection type cannot be changed."))
    );
    assert_eq!(
        w.call("PUT", &update(&w.org.to_string()), Some(OWNER), Some(&off))
            .await,
        (200, saved(other_key, false))
    );

    // H11.
    assert_eq!(
        w.call("DELETE", &update(&w.org.to_string()), Some(ADMIN), None)
            .await,
        (
            400,
            World::error(
                "You do not have permission to remove this connection of type CloudBillingSync."
            )
        )
    );
    assert_eq!(
        w.call("DELETE", &update(&w.org.to_string()), Some(OWNER), None)
            .await,
        (200, String::new())
    );
    assert_eq!(
        w.call("DELETE", &update(&w.org.to_string()), Some(OWNER), None)
            .await,
        (404, World::error("Resource not found."))
    );
}

#[tokio::test]
async fn h12_license_sync_and_h13_upload() {
    let w = World::new(false).await;
    let sync = format!("/organizations/licenses/self-hosted/{}/sync/", w.org);
    assert_eq!(
        w.call("POST", &sync, Some(OWNER), None).await,
        (404, World::error("Resource not found.")),
        "no connection yet"
    );
    w.connect().await;
    assert_eq!(
        w.call("POST", &sync, Some(ADMIN), None).await,
        (404, World::error("Resource not found."))
    );
    // While a sync holds the organization's lock, nothing is stored: the sync records its
    // state whole, so the two writes must not interleave.
    let now = chrono::Utc::now();
    let held = sponsorship_core::store::SyncLock {
        holder: "a daily sync".into(),
        token: "held".into(),
        acquired_at: now,
        expires_at: now + chrono::TimeDelta::minutes(5),
    };
    w.host()
        .store
        .try_lock_sync(w.org, &held, now)
        .await
        .unwrap();
    assert_eq!(
        w.call("POST", &sync, Some(OWNER), None).await,
        (
            400,
            World::error(
                "A sync of this organization is running: select Sync license again when it has finished."
            )
        )
    );
    let state = w.host().store.sync_state(w.org).await.unwrap();
    assert!(state.last_license_sync.is_none());
    w.host().store.unlock_sync(w.org, "held").await.unwrap();
    assert_eq!(
        w.call("POST", &sync, Some(OWNER), None).await,
        (200, String::new())
    );
    let again = w
        .host()
        .store
        .try_lock_sync(w.org, &held, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        again,
        sponsorship_core::store::LockOutcome::Acquired,
        "the license sync released its lock"
    );
    let connection = w
        .call(
            "GET",
            &format!("/organizations/connections/{}/1", w.org),
            Some(OWNER),
            None,
        )
        .await
        .1;
    assert!(
        !connection.contains(r#""LastLicenseSync":null"#),
        "{connection}"
    );
    assert!(
        connection.contains(r#""LastLicenseSync":"20"#) && connection.contains(r#"+00:00"}"#),
        "{connection}"
    );

    let off = World::new(true).await;
    off.connect().await;
    let sync_off = format!("/organizations/licenses/self-hosted/{}/sync", off.org);
    assert_eq!(
        off.call("POST", &sync_off, Some(OWNER), None).await,
        (
            400,
            World::error("Cloud communication is disabled in global settings")
        )
    );

    // H13: the license file as the web vault uploads it.
    let upload = |license: &str| {
        let boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"license\"; filename=\"bitwarden_organization_license.json\"\r\nContent-Type: application/json\r\n\r\n{license}\r\n--{boundary}--\r\n"
        );
        (format!("multipart/form-data; boundary={boundary}"), body)
    };
    let path = format!("/organizations/licenses/self-hosted/{}", w.org);
    let send = |token: &'static str, (content_type, body): (String, String)| {
        let api = w.api.clone();
        let path = path.clone();
        async move {
            let request = selfhost_api::HttpRequest::new(selfhost_api::Method::Post, &path)
                .header("Authorization", &format!("Bearer {token}"))
                .header("Content-Type", &content_type)
                .body(body);
            let response = api.handle(&request).await;
            (response.status, response.text())
        }
    };
    let license = serde_json::to_string(&w.license).unwrap();
    assert_eq!(send(OWNER, upload(&license)).await, (200, String::new()));
    assert_eq!(
        send(ADMIN, upload(&license)).await,
        (404, World::error("Resource not found."))
    );
    assert_eq!(
        send(OWNER, upload("not json")).await,
        (400, World::error("Invalid license"))
    );
    let padded = format!(
        "{license}{}",
        " ".repeat(selfhost_api::LICENSE_UPLOAD_LIMIT)
    );
    assert_eq!(
        send(OWNER, upload(&padded)).await,
        (400, World::error("Invalid license"))
    );
    // Another cloud organization's id under this license's signed token.
    let forged = license.replace(
        test_support::CLOUD_ORG_ID,
        "0b7c2f0e-1111-2222-3333-000000000000",
    );
    assert_ne!(forged, license);
    let (status, text) = send(OWNER, upload(&forged)).await;
    assert_eq!(status, 400);
    assert!(text.contains(r#""message":"Invalid license."#), "{text}");
}

#[tokio::test]
async fn h14_subscription_of_a_self_hosted_organization() {
    let w = World::new(false).await;
    let path = format!("/organizations/{}/subscription", w.org);
    assert_eq!(
        w.call("GET", &path, Some(ADMIN), None).await,
        (404, World::error("Resource not found."))
    );
    let (status, body) = w.call("GET", &path, Some(OWNER), None).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "organizationSubscription");
    assert_eq!(v["plan"]["object"], "plan");
    assert_eq!(v["plan"]["type"], 20);
    assert_eq!(v["plan"]["productTier"], 3);
    assert_eq!(v["planType"], 20);
    assert_eq!(v["seats"], 100);
    assert!(
        v["subscription"].is_null()
            && v["upcomingInvoice"].is_null()
            && v["customerDiscount"].is_null()
    );
    // .NET keeps 100 ns ticks.
    let expires = chrono::SubsecRound::trunc_subsecs(w.license.expires.unwrap(), 7);
    let time = |v: &serde_json::Value| {
        let text = v.as_str().unwrap();
        assert!(text.ends_with('Z'), "a UTC value: {text}");
        chrono::DateTime::parse_from_rfc3339(text).unwrap()
    };
    assert_eq!(time(&v["expiration"]), expires);
    assert_eq!(
        time(&v["expirationWithoutGracePeriod"]),
        expires - chrono::TimeDelta::days(60)
    );
}
