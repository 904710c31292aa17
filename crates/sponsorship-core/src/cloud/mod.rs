//! The cloud side: the sync algorithm of spec §7, redemption (§8.6, §9), recipient removal
//! (§8.5) and the billing-key status (§10.1), as pure rules plus an in-memory [`CloudLedger`]
//! that executes them. The reference cloud (`cloud-emulator`) runs exactly this code.
//!
//! # The real cloud's quirks, reproduced
//!
//! These rules are the real cloud's (bitwarden/server, `CloudSyncSponsorshipsCommand`), quirks
//! included, so that a self-hosted side tested against them copes with the real one. The fixes
//! belong on the self-hosted side ([`crate::sync`]).
//!
//! * **Two items for one member in one batch (14.2):** both are processed against the rows as
//!   they were before the batch: for a member without a row, two rows are created and two offers
//!   e-mailed, and from then on every sync of the organization fails with HTTP 500
//!   ([`CloudSyncError::DuplicateMemberRows`]).
//! * **A new recipient on an existing row (14.3):** only `lastSyncDate` changes; the cloud keeps
//!   the old recipient and friendly name and e-mails nobody.
//! * **`toDelete` echoed (14.4):** the answer's `toDelete` is the item's; a removal by the
//!   recipient (C7) is never reported back.
//! * **New row + `toDelete` (14.5):** an item with `toDelete = true` and a `lastSyncDate` for a
//!   member without a cloud row creates a row, e-mails its offer and answers
//!   `cloudSponsorshipRemoved = true`: an orphan offer.
//! * **No key stored (14.9):** [`check_billing_sync_key`] gives [`SyncRejection::NoKeyStored`],
//!   which the cloud answers with HTTP 500.
//! * **Blank recipients:** a row is created for an empty or blank `offeredToEmail`, but no offer
//!   is e-mailed (a mail transport refuses the address).
//!
//! | module | what |
//! |---|---|
//! | `rules` | the sync algorithm and the key check, as pure functions returning effects |
//! | `redemption` | offer tokens' claims and the redemption rule, returning its effect |
//! | `key_status` | the billing key's status in the cloud dialog |
//! | `ledger` | [`CloudLedger`]: the rows in memory, executing the rules' effects |
//! | `licensing` | [`LicenseSigner`]: licenses signed as the real cloud issues them |

mod key_status;
mod ledger;
mod licensing;
mod redemption;
mod rules;

pub use key_status::KeySyncStatus;
pub use ledger::CloudLedger;
pub use licensing::{LicenseSigner, TOKEN_LIFETIME};
pub use redemption::{
    OFFER_EXPIRED_TEXT, OfferClaims, OfferToSend, RedeemError, Redemption, RemoveError, redemption,
};
pub use rules::{
    CloudEffect, CloudOrganization, CloudSkipReason, CloudSponsorship, CloudSyncError,
    CloudSyncOutcome, DISABLED_GRACE, SPONSORED_PERIOD, STALE_OFFER_AGE, SyncRejection,
    check_billing_sync_key, process_sync_batch,
};
