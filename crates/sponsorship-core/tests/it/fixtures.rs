use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use sponsorship_core::cloud::{CloudLedger, CloudOrganization, OfferToSend};
use sponsorship_core::ids::{CloudOrganizationId, MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::org::{Member, MemberRole, MemberStatus, Organization};
use sponsorship_core::plan::PlanType;
use sponsorship_core::sponsorship::{OfferRequest, RowChange, Sponsorship, offer};
use sponsorship_core::store::AppliedBatch;
use sponsorship_core::sync::{
    self, BATCH_SIZE, BatchApplication, DuplicateMember, PlannedBatch, SkippedItem, apply_change,
};
use uuid::Uuid;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

pub fn hours(h: i64) -> DateTime<Utc> {
    t0() + TimeDelta::hours(h)
}

/// Deterministic ids: the n-th id of a kind.
pub fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(0x1000_0000_0000_4000_8000_0000_0000_0000 | n)
}

pub fn enterprise() -> Organization {
    Organization {
        id: OrganizationId::from_uuid(uuid(1)),
        name: "Acme".into(),
        plan_type: PlanType::EnterpriseAnnually,
        enabled: true,
        use_admin_sponsored_families: true,
    }
}

pub fn member(n: u128) -> Member {
    Member {
        id: MemberId::from_uuid(uuid(1_000 + n)),
        organization_id: enterprise().id,
        email: format!("member{n}@acme.example"),
        status: MemberStatus::Confirmed,
        role: MemberRole::User,
    }
}

pub fn cloud_org() -> CloudOrganization {
    CloudOrganization {
        id: CloudOrganizationId::from_uuid(uuid(2)),
        name: "Acme".into(),
        plan_type: PlanType::EnterpriseAnnually,
        enabled: true,
        expiration_date: None,
    }
}

pub fn families(n: u128) -> CloudOrganization {
    CloudOrganization {
        id: CloudOrganizationId::from_uuid(uuid(50_000 + n)),
        name: format!("Family {n}"),
        plan_type: PlanType::FamiliesAnnually,
        enabled: true,
        expiration_date: None,
    }
}

/// A row of member `m`'s offer to `to`, never synced, as the offer rule makes it (revision 1).
pub fn unsynced_row(m: u128, id: SponsorshipId, to: &str) -> Sponsorship {
    Sponsorship::new_offer(id, enterprise().id, member(m).id, to, t0())
}

pub fn request<'a>(m: &'a Member, to: &'a str) -> OfferRequest<'a> {
    OfferRequest {
        sponsor_email: &m.email,
        offered_to_email: to,
        friendly_name: None,
        admin_initiated: false,
        notes: None,
    }
}

/// Rows keyed by (member, id), the order the plan sends them in.
pub type Rows = BTreeMap<(MemberId, SponsorshipId), Sponsorship>;

/// The store contract in memory: each change applies only to the row of its (member, id) that
/// still has the expected revision, with the core's [`apply_change`].
pub fn apply(rows: &mut Rows, batch: &BatchApplication) -> AppliedBatch {
    let mut out = AppliedBatch::default();
    for change in &batch.changes {
        let key = (change.member_id, change.sponsorship_id);
        match rows.get(&key) {
            Some(row) if row.revision == change.expected_revision => {
                match apply_change(row, &change.action) {
                    Some(next) => {
                        rows.insert(key, next);
                    }
                    None => {
                        rows.remove(&key);
                    }
                }
                out.applied += 1;
            }
            _ => out.stale.push(change.sponsorship_id),
        }
    }
    out
}

/// A plan with every batch built (what a test looks at).
pub struct Planned {
    pub duplicates: Vec<DuplicateMember>,
    pub batches: Vec<PlannedBatch>,
}

impl Planned {
    /// Items over all batches.
    pub fn item_count(&self) -> usize {
        self.batches.iter().map(|b| b.items.len()).sum()
    }
}

/// Plans `rows` and builds every batch.
pub fn plan_all(rows: &[Sponsorship], batch_size: usize) -> Planned {
    let plan = sync::plan(rows, batch_size);
    let batches: Vec<PlannedBatch> = plan.batches().collect();
    Planned {
        duplicates: plan.duplicates,
        batches,
    }
}

/// The self-hosted rows of one organization, as a store would hold them.
#[derive(Default, Clone)]
pub struct SelfHosted {
    pub rows: Rows,
    next_id: u128,
}

impl SelfHosted {
    pub fn all(&self) -> Vec<Sponsorship> {
        self.rows.values().cloned().collect()
    }

    pub fn write(&mut self, change: RowChange) {
        match change {
            RowChange::Upsert(r) => {
                self.rows.insert((r.sponsoring_member_id, r.id), r);
            }
            RowChange::Delete(id) => {
                self.rows.retain(|&(_, row_id), _| row_id != id);
            }
        }
    }

    /// A row by id.
    pub fn row(&self, id: SponsorshipId) -> &Sponsorship {
        self.rows
            .values()
            .find(|r| r.id == id)
            .expect("row with this id")
    }

    pub fn new_id(&mut self) -> SponsorshipId {
        self.next_id += 1;
        SponsorshipId::from_uuid(uuid(100_000 + self.next_id))
    }

    pub fn offer(&mut self, m: &Member, to: &str, now: DateTime<Utc>) -> Sponsorship {
        let id = self.new_id();
        let out = offer(&enterprise(), m, &self.all(), &request(m, to), id, now).unwrap();
        self.write(RowChange::Upsert(out.sponsorship.clone()));
        out.sponsorship
    }

    pub fn by_member(&self, m: &Member) -> Option<&Sponsorship> {
        self.rows.values().find(|r| r.sponsoring_member_id == m.id)
    }
}

/// A cloud with one sponsoring organization.
#[derive(Clone)]
pub struct Cloud {
    pub org: CloudOrganization,
    pub ledger: CloudLedger,
    pub outbox: Vec<OfferToSend>,
    next_id: u128,
}

impl Default for Cloud {
    fn default() -> Self {
        Self {
            org: cloud_org(),
            ledger: CloudLedger::new(),
            outbox: Vec::new(),
            next_id: 0,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct RunReport {
    pub skipped: Vec<SkippedItem>,
    pub stale: usize,
    pub batches: usize,
}

/// One complete sync run: plan, process every batch in the cloud, apply each answer before the
/// next batch is built.
pub fn sync_run(
    sh: &mut SelfHosted,
    cloud: &mut Cloud,
    now: DateTime<Utc>,
    batch_size: usize,
) -> RunReport {
    let rows = sh.all();
    let plan = sync::plan(&rows, batch_size);
    let mut report = RunReport {
        skipped: Vec::new(),
        stale: 0,
        batches: plan.batch_count(),
    };
    let mut built = 0;
    for batch in plan.batches() {
        built += 1;
        let one = run_batches(sh, cloud, now, vec![batch]);
        report.skipped.extend(one.skipped);
        report.stale += one.stale;
    }
    assert_eq!(
        built, report.batches,
        "the plan yields the batches it announced"
    );
    report
}

fn run_batches(
    sh: &mut SelfHosted,
    cloud: &mut Cloud,
    now: DateTime<Utc>,
    batches: Vec<PlannedBatch>,
) -> RunReport {
    let mut report = RunReport {
        skipped: Vec::new(),
        stale: 0,
        batches: batches.len(),
    };
    for batch in batches {
        let base = cloud.next_id;
        let mut n = 0;
        let (outcome, offers) = cloud
            .ledger
            .sync_batch(&cloud.org, &batch.items, now, || {
                n += 1;
                SponsorshipId::from_uuid(uuid(9_000_000 + base + n))
            })
            .unwrap();
        cloud.next_id += n;
        cloud.outbox.extend(offers);
        let app = sync::apply_response(&batch.receipt(), &outcome.response);
        report.skipped.extend(app.skipped.iter().copied());
        report.stale += apply(&mut sh.rows, &app).stale.len();
    }
    report
}

pub fn sync_once(sh: &mut SelfHosted, cloud: &mut Cloud, now: DateTime<Utc>) -> RunReport {
    sync_run(sh, cloud, now, BATCH_SIZE)
}
