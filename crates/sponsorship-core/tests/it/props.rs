//! Property tests: the sync converges and never loses or duplicates a sponsorship, whatever the
//! starting states and whatever happens between runs; JSON round-trips.

use std::collections::BTreeMap;

use crate::fixtures::*;
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use sponsorship_core::cloud::{CloudSponsorship, OfferClaims};
use sponsorship_core::email::same_email;
use sponsorship_core::ids::{MemberId, SponsorshipId};
use sponsorship_core::plan::PlanSponsorshipType;
use sponsorship_core::sponsorship::{
    RowChange, Sponsorship, SupersededOffer, member_removed, offer, revoke,
};
use sponsorship_core::sync;
use sponsorship_core::wire::{
    SponsorshipSyncItem, SponsorshipSyncRequest, SponsorshipSyncResponse,
};

const MEMBERS: u128 = 6;

#[derive(Debug, Clone, Copy)]
enum ShStart {
    None,
    Requested,
    Sent,
    Replaced,
    Revoked,
    Active,
}

#[derive(Debug, Clone, Copy)]
enum CloudStart {
    None,
    Unredeemed(u8),
    Redeemed,
    RedeemedToDelete,
}

#[derive(Debug, Clone)]
enum Op {
    Offer(u128, u8),
    Revoke(u128),
    RemoveMember(u128),
    Redeem(usize),
    RecipientRemoves(usize),
    Sync,
    SyncLosingBatch(usize),
}

fn addr(m: u128, v: u8) -> String {
    format!("m{m}v{v}@home.example")
}

fn sh_start() -> impl Strategy<Value = ShStart> {
    prop_oneof![
        Just(ShStart::None),
        Just(ShStart::Requested),
        Just(ShStart::Sent),
        Just(ShStart::Replaced),
        Just(ShStart::Revoked),
        Just(ShStart::Active),
    ]
}

fn cloud_start() -> impl Strategy<Value = CloudStart> {
    prop_oneof![
        Just(CloudStart::None),
        (0u8..3).prop_map(CloudStart::Unredeemed),
        Just(CloudStart::Redeemed),
        Just(CloudStart::RedeemedToDelete),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..MEMBERS, 0u8..4).prop_map(|(m, v)| Op::Offer(m, v)),
        (0..MEMBERS).prop_map(Op::Revoke),
        (0..MEMBERS).prop_map(Op::RemoveMember),
        (0usize..8).prop_map(Op::Redeem),
        (0usize..4).prop_map(Op::RecipientRemoves),
        Just(Op::Sync),
        (0usize..3).prop_map(Op::SyncLosingBatch),
    ]
}

fn start_row(m: u128, s: ShStart, id: SponsorshipId) -> Option<Sponsorship> {
    let base = unsynced_row(m, id, &addr(m, 0));
    let synced = Some(t0() - TimeDelta::days(1));
    Some(match s {
        ShStart::None => return None,
        ShStart::Requested => base,
        ShStart::Sent => Sponsorship {
            last_sync_date: synced,
            awaiting_sync: false,
            ..base
        },
        ShStart::Replaced => Sponsorship {
            friendly_name: Some(addr(m, 1)),
            offered_to_email: Some(addr(m, 1)),
            superseded_offer: Some(Box::new(SupersededOffer {
                friendly_name: Some(addr(m, 0)),
                offered_to_email: Some(addr(m, 0)),
                last_sync_date: Some(t0() - TimeDelta::days(1)),
            })),
            ..base
        },
        ShStart::Revoked => Sponsorship {
            last_sync_date: synced,
            to_delete: true,
            ..base
        },
        ShStart::Active => Sponsorship {
            last_sync_date: synced,
            valid_until: Some(t0() + TimeDelta::days(300)),
            awaiting_sync: false,
            ..base
        },
    })
}

/// The cloud state a self-hosted start can have: the real cloud never changes a recipient
/// (QUIRK 14.3), so an unredeemed cloud row carries the offer the self-hosted side last sent, and
/// a self-hosted side without a row has no unredeemed cloud row it never withdrew.
fn consistent(sh: ShStart, cloud: CloudStart) -> CloudStart {
    match (sh, cloud) {
        (ShStart::None, CloudStart::Unredeemed(_)) => CloudStart::None,
        (_, CloudStart::Unredeemed(_)) => CloudStart::Unredeemed(0),
        (_, c) => c,
    }
}

fn seed_cloud(cloud: &mut Cloud, starts: &[(u128, CloudStart)]) {
    // Seed through the protocol itself so the ledger's indexes stay consistent.
    let items: Vec<SponsorshipSyncItem> = starts
        .iter()
        .filter_map(|(m, s)| match s {
            CloudStart::None => None,
            CloudStart::Unredeemed(_) | CloudStart::Redeemed | CloudStart::RedeemedToDelete => {
                let v = if let CloudStart::Unredeemed(v) = s {
                    *v
                } else {
                    0
                };
                Some(SponsorshipSyncItem {
                    sponsoring_organization_user_id: member(*m).id,
                    friendly_name: Some(addr(*m, v)),
                    offered_to_email: Some(addr(*m, v)),
                    plan_sponsorship_type: PlanSponsorshipType::default(),
                    last_sync_date: None,
                    valid_until: None,
                    to_delete: false,
                })
            }
        })
        .collect();
    let mut n = 0;
    let (_, offers) = cloud
        .ledger
        .sync_batch(&cloud.org, &items, t0() - TimeDelta::days(2), || {
            n += 1;
            SponsorshipId::from_uuid(uuid(3_000_000 + n))
        })
        .unwrap();
    cloud.outbox.extend(offers.iter().cloned());
    for (m, s) in starts {
        if matches!(s, CloudStart::Redeemed | CloudStart::RedeemedToDelete) {
            let o = offers.iter().find(|o| o.email == addr(*m, 0)).unwrap();
            let fam = families(1_000 + *m);
            cloud
                .ledger
                .redeem(
                    &OfferClaims::for_offer(o),
                    &o.email,
                    &fam,
                    true,
                    t0() - TimeDelta::days(2),
                )
                .unwrap();
            if matches!(s, CloudStart::RedeemedToDelete) {
                cloud
                    .ledger
                    .remove_sponsorship(fam.id, true, t0() - TimeDelta::days(2))
                    .unwrap();
            }
        }
    }
}

/// Rows and ledger without the timestamps every sync moves.
fn fingerprint(sh: &SelfHosted, cloud: &Cloud) -> (Vec<Sponsorship>, Vec<CloudSponsorship>, usize) {
    let strip = |r: &Sponsorship| Sponsorship {
        last_sync_date: None,
        ..r.clone()
    };
    let strip_c = |r: &&CloudSponsorship| CloudSponsorship {
        last_sync_date: None,
        ..(*r).clone()
    };
    (
        sh.rows.values().map(strip).collect(),
        cloud
            .ledger
            .of_organization(cloud.org.id)
            .iter()
            .map(strip_c)
            .collect(),
        cloud.outbox.len(),
    )
}

fn run_op(sh: &mut SelfHosted, cloud: &mut Cloud, op: &Op, now: DateTime<Utc>) {
    match op {
        Op::Offer(m, v) => {
            let mm = member(*m);
            let id = sh.new_id();
            if let Ok(out) = offer(
                &enterprise(),
                &mm,
                &sh.all(),
                &request(&mm, &addr(*m, *v)),
                id,
                now,
            ) {
                sh.write(RowChange::Upsert(out.sponsorship));
            }
        }
        Op::Revoke(m) => {
            if let Ok(change) = revoke(member(*m).id, &sh.all(), now) {
                sh.write(change);
            }
        }
        Op::RemoveMember(m) => {
            for change in member_removed(member(*m).id, &sh.all(), now) {
                sh.write(change);
            }
        }
        Op::Redeem(i) => {
            if let Some(o) = cloud.outbox.get(*i).cloned() {
                let _ = cloud.ledger.redeem(
                    &OfferClaims::for_offer(&o),
                    &o.email,
                    &families(*i as u128),
                    true,
                    now,
                );
            }
        }
        Op::RecipientRemoves(i) => {
            let _ = cloud
                .ledger
                .remove_sponsorship(families(*i as u128).id, true, now);
        }
        Op::Sync => {
            sync_run(sh, cloud, now, 2);
        }
        Op::SyncLosingBatch(k) => {
            // The cloud applies batch k but its answer is lost; the run stops there.
            let plan = plan_all(&sh.all(), 2);
            for (i, batch) in plan.batches.iter().enumerate() {
                let mut n = 0;
                let base = cloud.outbox.len() as u128 * 1000 + i as u128 * 10 + 7_000_000;
                let (outcome, offers) = cloud
                    .ledger
                    .sync_batch(&cloud.org, &batch.items, now, || {
                        n += 1;
                        SponsorshipId::from_uuid(uuid(
                            base + n + u128::from(now.timestamp().unsigned_abs()) * 100_000,
                        ))
                    })
                    .unwrap();
                cloud.outbox.extend(offers);
                if i == *k {
                    break;
                }
                apply(
                    &mut sh.rows,
                    &sync::apply_response(&batch.receipt(), &outcome.response),
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sync_converges_and_never_loses_or_duplicates(
        starts in proptest::collection::vec((sh_start(), cloud_start()), MEMBERS as usize),
        ops in proptest::collection::vec(op(), 0..24),
    ) {
        let mut sh = SelfHosted::default();
        let mut cloud = Cloud::default();
        for (m, (s, _)) in starts.iter().enumerate() {
            let id = sh.new_id();
            if let Some(row) = start_row(m as u128, *s, id) {
                sh.write(RowChange::Upsert(row));
            }
        }
        let cloud_starts: Vec<(u128, CloudStart)> = starts
            .iter()
            .enumerate()
            .map(|(m, (s, c))| (m as u128, consistent(*s, *c)))
            .collect();
        seed_cloud(&mut cloud, &cloud_starts);

        let mut now = t0();
        for op in &ops {
            now += TimeDelta::minutes(30);
            run_op(&mut sh, &mut cloud, op, now);
        }
        // Two clean runs reach the fixed point; a third changes nothing.
        for _ in 0..2 {
            now += TimeDelta::hours(1);
            sync_run(&mut sh, &mut cloud, now, 2);
        }
        let before = fingerprint(&sh, &cloud);
        now += TimeDelta::hours(1);
        let report = sync_run(&mut sh, &mut cloud, now, 2);
        prop_assert_eq!(&fingerprint(&sh, &cloud), &before, "not converged");
        prop_assert!(report.skipped.is_empty(), "skipped: {:?}", report.skipped);
        prop_assert_eq!(report.stale, 0);

        // No duplicates on either side.
        let mut per_member: BTreeMap<MemberId, usize> = BTreeMap::new();
        for r in sh.rows.values() {
            *per_member.entry(r.sponsoring_member_id).or_default() += 1;
        }
        prop_assert!(per_member.values().all(|n| *n == 1), "duplicate local rows: {per_member:?}");
        let mut cloud_per_member: BTreeMap<MemberId, usize> = BTreeMap::new();
        for r in cloud.ledger.of_organization(cloud.org.id) {
            *cloud_per_member.entry(r.sponsoring_organization_user_id).or_default() += 1;
        }
        prop_assert!(cloud_per_member.values().all(|n| *n == 1), "duplicate cloud rows");

        // Nothing lost: every local row is mirrored by its cloud row.
        for r in sh.rows.values() {
            prop_assert!(!r.awaiting_sync, "still awaiting sync: {r:?}");
            prop_assert!(r.superseded_offer.is_none());
            let c = cloud.ledger.by_member(cloud.org.id, r.sponsoring_member_id);
            let Some(c) = c else {
                return Err(TestCaseError::fail(format!("local row without cloud row: {r:?}")));
            };
            if c.is_redeemed() {
                prop_assert_eq!(r.valid_until, c.valid_until);
                // A local revoke reaches the cloud; a removal by the recipient never comes
                // back (QUIRK 14.4).
                prop_assert!(!r.to_delete || c.to_delete, "revoke not sent: {r:?}");
            } else {
                prop_assert!(!r.to_delete, "revoked offer not withdrawn: {r:?}");
                prop_assert!(r.valid_until.is_none());
                let (a, b) = (r.offered_to_email.as_deref().unwrap_or(""), c.offered_to_email.as_deref().unwrap_or(""));
                prop_assert!(same_email(a, b), "recipient differs: local {a} cloud {b}");
                // The current recipient has an offer e-mail for this very row.
                prop_assert!(cloud.outbox.iter().any(|o| o.sponsorship_id == c.id && same_email(&o.email, b)));
            }
        }
        // A cloud row whose member still has a local row is never removed behind its back.
        for c in cloud.ledger.of_organization(cloud.org.id) {
            if let Some(local) = sh.rows.values().find(|r| r.sponsoring_member_id == c.sponsoring_organization_user_id) {
                prop_assert_eq!(local.sponsoring_member_id, c.sponsoring_organization_user_id);
            }
        }
    }

    #[test]
    fn wire_json_round_trips(
        n in 0usize..20,
        to_delete in any::<bool>(),
        secs in proptest::option::of(0i64..4_000_000_000),
        nanos in 0u32..1_000_000_000,
        name in proptest::option::of("[ -~]{0,40}"),
    ) {
        let when = secs.map(|s| DateTime::from_timestamp(s, nanos).unwrap());
        let items: Vec<SponsorshipSyncItem> = (0..n).map(|i| SponsorshipSyncItem {
            sponsoring_organization_user_id: member(i as u128).id,
            friendly_name: name.clone(),
            offered_to_email: Some(addr(i as u128, 0)),
            plan_sponsorship_type: PlanSponsorshipType::default(),
            last_sync_date: when,
            valid_until: when,
            to_delete,
        }).collect();
        let req = SponsorshipSyncRequest {
            billing_sync_key: sponsorship_core::secret::RawSecret::new("k"),
            sponsoring_organization_cloud_id: cloud_org().id,
            sponsorships_batch: items.clone(),
        };
        let json = serde_json::to_string(&req).unwrap();
        let back: SponsorshipSyncRequest = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back.sponsorships_batch, items);
        let mut cloud = Cloud::default();
        let (outcome, _) = cloud.ledger.sync_batch(&cloud.org, &req.sponsorships_batch, t0(), SponsorshipId::new_random).unwrap();
        let json = serde_json::to_string(&outcome.response).unwrap();
        let back: SponsorshipSyncResponse = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, outcome.response);
    }
}

mod timestamps {
    use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
    use proptest::prelude::*;
    use sponsorship_core::wire::time;

    /// A timestamp with a fraction of 0, 3, 6 or 9 significant digits, or any nanoseconds.
    fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
        (
            -62_135_596_800_i64..253_402_300_799, // years 1 to 9999
            prop_oneof![
                Just(0u32),
                (0u32..1000).prop_map(|ms| ms * 1_000_000),
                (0u32..1_000_000).prop_map(|us| us * 1_000),
                0u32..1_000_000_000,
            ],
        )
            .prop_map(|(secs, nanos)| Utc.timestamp_opt(secs, nanos).single().expect("valid"))
    }

    /// chrono's RFC 3339 parser: what `time::parse_rfc3339` must agree with.
    fn parse_strict(s: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// chrono's general parsers: what `time::parse` did before its fast path.
    fn parse_general(s: &str) -> Option<DateTime<Utc>> {
        let s = s.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Some(t.with_timezone(&Utc));
        }
        [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M:%S%.f",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|n| n.and_utc())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The stack formatter writes exactly what chrono writes.
        #[test]
        fn format_matches_chrono(t in any_time()) {
            let ours = time::format(&t);
            prop_assert_eq!(&ours, &t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            let json = serde_json::to_string(&sponsorship_core::wire::SponsorshipSyncResponseItem {
                sponsoring_organization_user_id: sponsorship_core::ids::MemberId::from_uuid(uuid::Uuid::nil()),
                friendly_name: None,
                offered_to_email: None,
                plan_sponsorship_type: sponsorship_core::plan::PlanSponsorshipType::FamiliesForEnterprise,
                last_sync_date: Some(t),
                valid_until: None,
                to_delete: false,
                cloud_sponsorship_removed: false,
                is_admin_initiated: false,
            }).expect("serializes");
            prop_assert!(json.contains(&format!("\"lastSyncDate\":\"{ours}\"")), "{}", json);
        }

        /// The fast parser agrees with chrono's on every shape it takes, and the rest still
        /// parses through chrono.
        #[test]
        fn parse_matches_chrono(
            t in any_time(),
            shape in 0usize..6,
            digits in 1usize..=9,
        ) {
            let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            let fraction = format!("{:09}", t.timestamp_subsec_nanos());
            let text = match shape {
                0 => time::format(&t),
                1 => format!("{base}.{}Z", &fraction[..digits]),
                2 => format!("{base}.{}+00:00", &fraction[..digits]),
                3 => format!("{base}.{}", &fraction[..digits]),
                4 => format!("{base}+02:00"),
                _ => format!(" {base}.{}z ", &fraction[..digits]),
            };
            prop_assert_eq!(time::parse(&text), parse_general(&text), "{}", text);
        }

        /// Garbage never panics and never parses where chrono would not.
        #[test]
        fn parse_rejects_what_chrono_rejects(s in "[0-9T:.Z+ -]{0,32}") {
            prop_assert_eq!(time::parse(&s), parse_general(&s), "{}", s);
            prop_assert_eq!(time::parse_rfc3339(&s), parse_strict(&s), "{}", s);
        }

        /// The fixed six-digit form (what stores write) equals chrono's `Micros` form, and the
        /// strict parser reads every form back as chrono's RFC 3339 parser does.
        #[test]
        fn micros_form_and_strict_parse_match_chrono(
            t in any_time(),
            shape in 0usize..5,
            digits in 1usize..=9,
        ) {
            let micros = time::Rfc3339::new(&t, time::Fraction::Micros).expect("years 1-9999");
            prop_assert_eq!(micros.as_str(), t.to_rfc3339_opts(SecondsFormat::Micros, true));
            let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            let fraction = format!("{:09}", t.timestamp_subsec_nanos());
            let text = match shape {
                0 => micros.as_str().to_owned(),
                1 => format!("{base}.{}+00:00", &fraction[..digits]),
                2 => format!("{base}.{}", &fraction[..digits]),
                3 => format!("{base}-05:30"),
                _ => format!("{base}.{}z", &fraction[..digits]),
            };
            prop_assert_eq!(time::parse_rfc3339(&text), parse_strict(&text), "{}", text);
        }
    }

    #[test]
    fn edge_cases() {
        for text in [
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T23:59:60Z",
            "2026-11-24T12:00:00.Z",
            "2026-11-24T12:00:00.1234567890Z",
            "0000-01-01T00:00:00Z",
            "2026-11-24T12:00:00-00:00",
        ] {
            assert_eq!(time::parse(text), parse_general(text), "{text}");
        }
        assert_eq!(
            time::parse("2026-11-24T12:00:00.5"),
            Some(
                Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
                    + chrono::TimeDelta::milliseconds(500)
            )
        );
    }
}
