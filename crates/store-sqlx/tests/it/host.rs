//! The standalone host's tables and transactions, on each backend.

use chrono::{TimeZone, Utc};
use sponsorship_core::ids::{MemberId, OrganizationId};
use sponsorship_core::org::{Member, MemberRole, MemberStatus, OrgRecord, Organization};
use sponsorship_core::plan::PlanType;

use crate::servers::{MYSQL, POSTGRES, store};

fn acme(name: &str) -> OrgRecord {
    OrgRecord {
        org: Organization {
            id: OrganizationId::new_random(),
            name: name.to_owned(),
            plan_type: PlanType::EnterpriseAnnually,
            enabled: true,
            use_admin_sponsored_families: false,
        },
        cloud_organization_id: None,
        license: None,
    }
}

/// Organizations and members round-trip in a transaction; a dropped transaction writes
/// nothing; names and e-mails are unique without regard to case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organizations_and_members_in_transactions() {
    for variable in [POSTGRES, MYSQL] {
        let store = store(variable).await;
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let name = format!("Acme {}", OrganizationId::new_random());
        let rec = acme(&name);
        let member = Member {
            id: MemberId::new_random(),
            organization_id: rec.org.id,
            email: "Alice@Acme.example".to_owned(),
            status: MemberStatus::Confirmed,
            role: MemberRole::User,
        };
        // Dropped without commit: nothing lands.
        let mut tx = store.begin().await.unwrap();
        tx.insert_organization(&rec, now).await.unwrap();
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.organizations()
                .await
                .unwrap()
                .iter()
                .all(|o| o.org.id != rec.org.id),
            "{variable}: a dropped transaction wrote"
        );
        tx.insert_organization(&rec, now).await.unwrap();
        tx.insert_member(&member).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        let found = tx.organizations().await.unwrap();
        let org = found.iter().find(|o| o.org.id == rec.org.id).unwrap();
        assert_eq!(org.org.name, name);
        assert_eq!(tx.members(rec.org.id).await.unwrap(), vec![member.clone()]);
        assert!(
            tx.set_member_status(member.id, MemberStatus::Revoked)
                .await
                .unwrap()
        );
        assert_eq!(
            tx.members(rec.org.id).await.unwrap()[0].status,
            MemberStatus::Revoked
        );
        // Another organization with the same name in other case, another member with the
        // same e-mail in other case: refused by the keys.
        assert!(
            tx.insert_organization(&acme(&name.to_uppercase()), now)
                .await
                .is_err()
        );
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        let twin = Member {
            id: MemberId::new_random(),
            email: "alice@acme.EXAMPLE".to_owned(),
            ..member.clone()
        };
        assert!(tx.insert_member(&twin).await.is_err(), "{variable}");
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        tx.delete_member(member.id).await.unwrap();
        assert!(tx.members(rec.org.id).await.unwrap().is_empty());
        let counts = tx.status_counts(rec.org.id).await.unwrap();
        assert_eq!(
            counts,
            sponsorship_core::sponsorship::StatusCounts::default()
        );
        tx.commit().await.unwrap();
    }
}
