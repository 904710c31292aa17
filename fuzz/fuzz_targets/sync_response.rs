//! Fuzzes the sync response path: any bytes are parsed as a `SponsorshipSyncResponse`; when they
//! parse, the response is applied to the receipts of a small planned sync (new offers, a
//! revocation, a superseded offer being withdrawn) and the changes to the rows. Nothing may
//! panic, and every sent item ends up either changed or reported as skipped.
#![no_main]

use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use sponsorship_core::ids::{MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::sponsorship::{Sponsorship, SupersededOffer};
use sponsorship_core::sync::{BatchReceipt, SkipReason, apply_change, apply_response, plan};
use sponsorship_core::wire::SponsorshipSyncResponse;

/// Member ids 1..=4 (`00000000-0000-0000-0000-00000000000N`), easy for the fuzzer to find.
fn rows() -> Vec<Sponsorship> {
    let org = OrganizationId::from_uuid(uuid::Uuid::from_u128(0xAA));
    let t = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
    (1..=4_u128)
        .map(|n| {
            Sponsorship {
                id: SponsorshipId::from_uuid(uuid::Uuid::from_u128(0x100 + n)),
                sponsoring_organization_id: Some(org),
                sponsoring_member_id: MemberId::from_uuid(uuid::Uuid::from_u128(n)),
                friendly_name: Some(format!("kid{n}@home.example")),
                offered_to_email: Some(format!("kid{n}@home.example")),
                plan_sponsorship_type: None,
                last_sync_date: (n >= 3).then_some(t),
                valid_until: (n == 3).then_some(t),
                to_delete: n == 3,
                is_admin_initiated: false,
                notes: None,
                revision: 2,
                awaiting_sync: true,
                superseded_offer: (n == 4).then(|| {
                    Box::new(SupersededOffer {
                        friendly_name: Some("old@home.example".into()),
                        offered_to_email: Some("old@home.example".into()),
                        last_sync_date: Some(t),
                    })
                }),
                revision_date: t,
            }
        })
        .collect()
}

fn receipts() -> &'static (Vec<Sponsorship>, Vec<BatchReceipt>) {
    static R: OnceLock<(Vec<Sponsorship>, Vec<BatchReceipt>)> = OnceLock::new();
    R.get_or_init(|| {
        let rows = rows();
        let receipts = plan(&rows, 1000).batches().map(|b| b.receipt()).collect();
        (rows, receipts)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(response) = serde_json::from_slice::<SponsorshipSyncResponse>(data) else {
        return;
    };
    let (rows, receipts) = receipts();
    for receipt in receipts {
        let application = apply_response(receipt, &response);
        assert_eq!(application.batch_number, receipt.number);
        // Every sent item is either changed or reported as not returned, never both.
        for sent in &receipt.sent {
            let changed = application
                .changes
                .iter()
                .filter(|c| c.sponsorship_id == sent.sponsorship_id)
                .count();
            let not_returned = application
                .skipped
                .iter()
                .filter(|s| {
                    s.sponsorship_id == sent.sponsorship_id
                        && s.reason == SkipReason::NotReturnedByCloud
                })
                .count();
            assert_eq!(changed + not_returned, 1, "{sent:?}");
        }
        assert!(application.changes.len() <= receipt.sent.len());
        // Every change names a sent item's row and member, at the revision it was sent with:
        // the store's compare-and-set then applies it to exactly that row.
        for change in &application.changes {
            assert!(
                receipt.sent.iter().any(|s| s.sponsorship_id == change.sponsorship_id
                    && s.member_id == change.member_id
                    && s.revision == change.expected_revision),
                "{change:?}"
            );
        }
        // Applying them with the store's rule never panics and never adds a row.
        let mut local = rows.clone();
        for change in &application.changes {
            let found = local.iter().position(|r| {
                r.id == change.sponsorship_id
                    && r.sponsoring_member_id == change.member_id
                    && r.revision == change.expected_revision
            });
            if let Some(i) = found {
                match apply_change(&local[i], &change.action) {
                    Some(row) => local[i] = row,
                    None => {
                        local.remove(i);
                    }
                }
            }
        }
        assert!(local.len() <= rows.len());
        for row in &local {
            let _ = row.ui_status();
        }
    }
});
