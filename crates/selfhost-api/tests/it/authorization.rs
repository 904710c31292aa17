//! Who may call what, per role and status: the reference server's answers, and 401/403 only
//! where it gives them (the web vault logs the user out on both).

use crate::fixture::*;

#[tokio::test]
async fn each_role_and_status_gets_the_reference_answer() {
    let w = World::new(false).await;
    w.connect().await;
    let org = w.org;
    // (method, path, body) of the calls only some members may make.
    let calls = [
        ("GET", format!("/organizations/connections/{org}/1"), None),
        (
            "GET",
            format!("/organization/sponsorship/self-hosted/{org}/sponsored"),
            None,
        ),
        (
            "DELETE",
            format!("/organization/sponsorship/self-hosted/{org}/nobody@home.example/revoke"),
            None,
        ),
        (
            "POST",
            format!("/organization/sponsorship/{org}/families-for-enterprise/resend"),
            None,
        ),
        ("GET", format!("/organizations/{org}/subscription"), None),
    ];
    // The expected status of each call, per member: owner, admin, custom, user, invited
    // owner, revoked admin, non-member.
    let expected: [(&str, [u16; 5]); 7] = [
        (OWNER, [200, 200, 400, 400, 200]),
        (ADMIN, [400, 200, 400, 400, 404]),
        (CUSTOM, [400, 200, 400, 400, 404]),
        (ALICE, [400, 401, 403, 403, 404]),
        (INVITED, [400, 401, 403, 403, 404]),
        (REVOKED, [400, 401, 403, 403, 404]),
        (STRANGER, [400, 401, 403, 403, 404]),
    ];
    for (token, statuses) in expected {
        for ((method, path, body), status) in calls.iter().zip(statuses) {
            let (got, text) = w.call(method, path, Some(token), *body).await;
            assert_eq!(got, status, "{token}: {method} {path}: {text}");
            if got == 403 {
                assert!(text.is_empty(), "a policy failure has no body");
            }
        }
    }
    // Nobody without a valid token gets anything but a bare 401.
    for (method, path, body) in &calls {
        assert_eq!(
            w.call(method, path, None, *body).await,
            (401, String::new())
        );
        assert_eq!(
            w.call(method, path, Some("forged"), *body).await,
            (401, String::new())
        );
    }
    // A known path with another method: 405; an unknown path: 404; neither logs out.
    assert_eq!(
        w.call(
            "PATCH",
            "/organizations/connections/enabled",
            Some(ALICE),
            None
        )
        .await
        .0,
        405
    );
    assert_eq!(
        w.call(
            "GET",
            "/organizations/nothing/here/at/all",
            Some(ALICE),
            None
        )
        .await
        .0,
        404
    );
}
