//! What a host's replicas and its daily runner rely on: offers of one member decided one at a
//! time, and the organizations the runner sees through `HostTargets`.

use std::sync::atomic::Ordering;

use cloud_client::runner::SyncTargets as _;
use selfhost_api::HostTargets;
use sponsorship_core::org::ConnectionError;
use sponsorship_core::store::SponsorshipStore as _;

use crate::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_offers_of_one_member_make_one_row() {
    let w = std::sync::Arc::new(World::new(false).await);
    w.host().store.slow_reads.store(true, Ordering::SeqCst);
    let mut tasks = Vec::new();
    for n in 0..8 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            w.offer(ALICE, &format!("kid{n}@home.example")).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().0, 200);
    }
    let rows = w.host().store.sponsorships(w.org).await.unwrap();
    assert_eq!(rows.len(), 1, "one member, one row: {rows:#?}");
}

#[tokio::test]
async fn the_daily_runner_sees_connected_organizations_as_the_core_judges_them() {
    let w = World::new(false).await;
    let targets = HostTargets(w.shared_host.clone());
    assert!(
        targets.sync_targets().await.unwrap().is_empty(),
        "no connection, nothing to sync"
    );
    w.connect().await;
    let ready = targets.sync_targets().await.unwrap();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].name, "Acme");
    let billing = ready[0].billing.as_ref().unwrap();
    assert_eq!(billing.cloud_organization_id, test_support::cloud_org_id());
    let off = format!(
        r#"{{"organizationId":"{}","type":1,"enabled":false,"config":{{"billingSyncKey":"{}"}}}}"#,
        w.org,
        test_support::BILLING_KEY
    );
    assert_eq!(
        w.call(
            "PUT",
            &format!("/organizations/connections/{}", w.org),
            Some(OWNER),
            Some(&off)
        )
        .await
        .0,
        200
    );
    let disabled = targets.sync_targets().await.unwrap();
    assert_eq!(
        disabled[0].billing.as_ref().unwrap_err(),
        &ConnectionError::Disabled(w.org)
    );
}
