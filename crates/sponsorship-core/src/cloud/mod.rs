//! The cloud side: the sync algorithm of spec §7, redemption (§8.6, §9), recipient removal
//! (§8.5) and the billing-key status (§10.1), as pure rules plus an in-memory [`CloudLedger`]
//! that executes them. The reference cloud (`cloud-emulator`) runs exactly this code.
//!
//! # Decisions on the spec's quirks (cloud side)
//!
//! * **Duplicate member ids in one batch (14.2):** the first item is processed; later ones are
//!   skipped (not returned) instead of failing the request with a 500.
//! * **E-mail change on an unredeemed row (14.3):** when an item for an existing, unredeemed row
//!   carries a different recipient, the row takes the new recipient and friendly name and a new
//!   offer e-mail goes out (old tokens die, since they are bound to the old address). Our own
//!   self-hosted side withdraws the old offer first, so this also serves reference servers.
//! * **Cloud-side removal reported back (14.4):** the response's `toDelete` is the item's
//!   `toDelete` *or* the cloud row's, so a recipient's removal (C7) shows on the self-hosted side.
//!   The field and its meaning stay wire-compatible: the reference self-hosted server copies it.
//! * **New row + toDelete (14.5):** an item with `toDelete = true` and a `lastSyncDate` but no
//!   cloud row means the row is already gone: nothing is created and the answer is
//!   `cloudSponsorshipRemoved = true`. No orphan offer, no e-mail.
//! * **No key stored (14.9)** is "Invalid Billing Sync Key", not a 500 (see [`check_billing_sync_key`]).
//!
//! | module | what |
//! |---|---|
//! | `rules` | the sync algorithm and the key check, as pure functions returning effects |
//! | `redemption` | offer tokens' claims and the redemption rule, returning its effect |
//! | `key_status` | the billing key's status in the cloud dialog |
//! | `ledger` | [`CloudLedger`]: the rows in memory, executing the rules' effects |

mod key_status;
mod ledger;
mod redemption;
mod rules;

pub use key_status::KeySyncStatus;
pub use ledger::CloudLedger;
pub use redemption::{
    OFFER_EXPIRED_TEXT, OfferClaims, OfferToSend, RedeemError, Redemption, RemoveError, redemption,
};
pub use rules::{
    CloudEffect, CloudOrganization, CloudSkipReason, CloudSponsorship, CloudSyncOutcome,
    DISABLED_GRACE, SPONSORED_PERIOD, STALE_OFFER_AGE, SyncRejection, check_billing_sync_key,
    process_sync_batch,
};
