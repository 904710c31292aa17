//! The reference cloud's sync endpoint over loopback, per 1,000-item batch.
//!
//! `first_sync`: 100 batches of 1,000 new items against a fresh emulator (every item creates a
//! cloud row and queues an offer e-mail). `resync`: the same 100 batches again (every item
//! matches an existing row). `raw_baseline`: the same bodies POSTed to a bare axum route that
//! parses them into the wire type and echoes them (the floor a cloud can reach on this machine).
//! Bodies are serialized before timing; only the HTTP round trips are timed. A per-batch
//! summary (medians) is printed at the end.
//!
//! `cargo bench -p cloud-emulator --bench sync_http` runs 100 batches; in test mode
//! (`cargo test --benches`) two batches, to prove the bench runs. `SPONSOR_BENCH_BATCHES`
//! overrides the count.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a program: its output is the point
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss // figures for a printed summary
)]

use std::time::{Duration, Instant};

use cloud_emulator::client::default_http_client;
use cloud_emulator::{EmulatorOptions, RunningEmulator, Seed};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use sponsorship_core::ids::{CloudOrganizationId, MemberId};
use sponsorship_core::plan::PlanSponsorshipType;
use sponsorship_core::secret::RawSecret;
use sponsorship_core::wire::{SponsorshipSyncItem, SponsorshipSyncRequest};
use uuid::Uuid;

const BATCH: usize = 1000;
use test_support::{BILLING_KEY as KEY, INSTALLATION_ID as INSTALLATION, INSTALLATION_KEY};

/// `SPONSOR_BENCH_BATCHES` (a bench knob, not library configuration).
#[allow(clippy::disallowed_methods)]
fn batches() -> usize {
    let default = if std::env::args().any(|a| a == "--bench") {
        100
    } else {
        2
    };
    std::env::var("SPONSOR_BENCH_BATCHES")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

fn cloud_org() -> CloudOrganizationId {
    test_support::cloud_org_id()
}

fn seed() -> Seed {
    Seed::from_json(&format!(
        r#"{{"region":"US",
  "installations":[{{"id":"{INSTALLATION}","key":"{INSTALLATION_KEY}","region":"US","enabled":true}}],
  "organizations":[{{"id":"{}","name":"Acme","planType":20,"enabled":true,"billingSyncKey":"{KEY}"}}],
  "users":[{{"email":"owner@acme.example","password":"owner-pass","ownerOf":["{}"]}}]}}"#,
        cloud_org(),
        cloud_org()
    ))
    .unwrap()
}

/// The request bodies of `n` batches of new items.
fn bodies(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|b| {
            let batch = (0..BATCH)
                .map(|i| {
                    let k = b * BATCH + i;
                    let email = format!("family{k:06}@home.example");
                    SponsorshipSyncItem {
                        sponsoring_organization_user_id: MemberId::from_uuid(Uuid::from_u128(
                            (k as u128 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        )),
                        friendly_name: Some(email.clone()),
                        offered_to_email: Some(email),
                        plan_sponsorship_type: PlanSponsorshipType::FamiliesForEnterprise,
                        last_sync_date: None,
                        valid_until: None,
                        to_delete: false,
                    }
                })
                .collect();
            serde_json::to_vec(&SponsorshipSyncRequest {
                billing_sync_key: RawSecret::new(KEY),
                sponsoring_organization_cloud_id: cloud_org(),
                sponsorships_batch: batch,
            })
            .unwrap()
        })
        .collect()
}

struct Cloud {
    emulator: RunningEmulator,
    url: String,
    token: String,
}

async fn start_cloud(http: &reqwest::Client) -> Cloud {
    let emulator = cloud_emulator::start(seed(), EmulatorOptions::default())
        .await
        .unwrap();
    let response: serde_json::Value = http
        .post(emulator.base_url().join("connect/token").unwrap())
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "api.installation"),
            ("client_id", &format!("installation.{INSTALLATION}")),
            ("client_secret", INSTALLATION_KEY),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = response["access_token"].as_str().unwrap().to_owned();
    let url = emulator
        .base_url()
        .join("organization/sponsorship/sync")
        .unwrap()
        .to_string();
    Cloud {
        emulator,
        url,
        token,
    }
}

/// POSTs every body in turn; returns the time taken.
async fn post_all(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    bodies: &[Vec<u8>],
) -> Duration {
    let t = Instant::now();
    for body in bodies {
        let mut request = http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let bytes = response.bytes().await.unwrap();
        assert!(bytes.len() > body.len() / 4);
    }
    t.elapsed()
}

async fn echo(body: axum::body::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let request: SponsorshipSyncRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let out = serde_json::to_vec(&request).unwrap();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n = batches();
    let bodies = bodies(n);
    let http = default_http_client().unwrap();

    let echo_listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let echo_url = format!(
        "http://{}/organization/sponsorship/sync",
        echo_listener.local_addr().unwrap()
    );
    let echo_app =
        axum::Router::new().route("/organization/sponsorship/sync", axum::routing::post(echo));
    let echo_server = rt.spawn(async move {
        axum::serve(echo_listener, echo_app).await.unwrap();
    });

    let (mut first, mut again, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    {
        let mut group = criterion.benchmark_group("cloud_sync_http");
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_secs(1))
            .throughput(Throughput::Elements((n * BATCH) as u64));
        group.bench_function(BenchmarkId::new("first_sync", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let d = rt.block_on(async {
                        let cloud = start_cloud(&http).await;
                        let d = post_all(&http, &cloud.url, Some(&cloud.token), &bodies).await;
                        cloud.emulator.stop().await.unwrap();
                        d
                    });
                    first.push(d);
                    total += d;
                }
                total
            });
        });
        group.bench_function(BenchmarkId::new("resync", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let d = rt.block_on(async {
                        let cloud = start_cloud(&http).await;
                        post_all(&http, &cloud.url, Some(&cloud.token), &bodies).await;
                        let d = post_all(&http, &cloud.url, Some(&cloud.token), &bodies).await;
                        cloud.emulator.stop().await.unwrap();
                        d
                    });
                    again.push(d);
                    total += d;
                }
                total
            });
        });
        group.bench_function(BenchmarkId::new("raw_baseline", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let d = rt.block_on(post_all(&http, &echo_url, None, &bodies));
                    raw.push(d);
                    total += d;
                }
                total
            });
        });
        group.finish();
    }
    echo_server.abort();
    criterion.final_summary();

    let per_batch = |d: Duration| d.as_secs_f64() * 1000.0 / n as f64;
    let (f, r, b) = (median(&mut first), median(&mut again), median(&mut raw));
    println!("\nper {BATCH}-item batch over loopback, median of the runs ({n} batches a run):");
    println!(
        "  first sync   {:7.3} ms  ({:.1}x raw)",
        per_batch(f),
        f.as_secs_f64() / b.as_secs_f64()
    );
    println!(
        "  resync       {:7.3} ms  ({:.1}x raw)",
        per_batch(r),
        r.as_secs_f64() / b.as_secs_f64()
    );
    println!("  raw baseline {:7.3} ms", per_batch(b));
}
