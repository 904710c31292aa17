//! The billing sync connection on each backend.

use chrono::{TimeDelta, TimeZone, Utc};
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::secret::BillingSyncKey;

use crate::servers::{MYSQL, POSTGRES, store};

/// A new connection starts enabled, a replaced key keeps the switch, switching a missing one
/// says so, delete finds it once, and the key never shows in `Debug`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_sync_connections_round_trip() {
    for variable in [POSTGRES, MYSQL] {
        let store = store(variable).await;
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + TimeDelta::microseconds(7);
        let org = OrganizationId::new_random();
        assert!(store.connection(org).await.unwrap().is_none());
        assert!(!store.set_enabled(org, false, now).await.unwrap());
        let key = BillingSyncKey::parse("Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd").unwrap();
        store.set_key(org, &key, now).await.unwrap();
        let c = store.connection(org).await.unwrap().unwrap();
        assert!(c.enabled, "{variable}");
        assert_eq!(c.updated_at, now, "{variable}");
        assert!(store.set_enabled(org, false, now).await.unwrap());
        let rotated = BillingSyncKey::parse("Zz3dEf6hIj9lMn2pQr5tUv8xYz1bQq").unwrap();
        let later = now + TimeDelta::hours(1);
        store.set_key(org, &rotated, later).await.unwrap();
        let c = store.connection(org).await.unwrap().unwrap();
        assert!(
            !c.enabled,
            "{variable}: a replaced key keeps the switch as it was"
        );
        assert_eq!(c.updated_at, later);
        assert_eq!(c.key.last_four(), "…1bQq");
        assert!(!format!("{c:?}").contains("Zz3dEf6hIj9lMn2pQr5tUv8xYz1bQq"));
        assert!(store.delete_connection(org).await.unwrap());
        assert!(store.connection(org).await.unwrap().is_none());
        assert!(!store.delete_connection(org).await.unwrap());
    }
}
