//! Parse + edit + render throughput of `EnvFile` on a Setup-sized (40-line) file and on a
//! 10,000-line file. Criterion reports MB/s through `Throughput::Bytes` (input size).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a program: its output is the point
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use env_config::{CloudRegion, EnvFile};

/// A file shaped like Setup's: `globalSettings__…=value` lines, a quoted connection string, a few
/// comments and blank lines (as an operator would add them).
fn env_text(lines: usize) -> String {
    let mut s = String::with_capacity(lines * 64);
    s.push_str("globalSettings__baseServiceUri__vault=https://vault.acme.example\n");
    s.push_str("globalSettings__baseServiceUri__cloudRegion=EU\n");
    s.push_str("globalSettings__sqlServer__connectionString=\"Data Source=tcp:mssql,1433;Initial Catalog=vault;Password=x\\\"y\"\n");
    s.push_str("globalSettings__installation__id=0b8e3f2a-6c1d-4e5f-9a7b-2c3d4e5f6a7b\n");
    s.push_str("globalSettings__installation__key=Q3rT7yU1iO5pA9sD2fG6\n");
    let mut i = 5;
    while i < lines {
        match i % 10 {
            0 => s.push_str("# operator note: changed for the mail relay\n"),
            5 => s.push('\n'),
            _ => {
                let _ = writeln!(
                    s,
                    "globalSettings__setting{i}__value=Vb6Nm2Qw8Er4Ty7Ui3Op{i}"
                );
            }
        }
        i += 1;
    }
    s
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_edit_render");
    for lines in [40_usize, 10_000] {
        let text = env_text(lines);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("{lines}_lines"), |b| {
            b.iter(|| {
                let mut file = EnvFile::parse(black_box(text.as_bytes())).unwrap();
                file.enable_cloud_communication(&CloudRegion::Eu).unwrap();
                black_box(file.render())
            });
        });
        group.bench_function(format!("{lines}_lines_parse_render_unedited"), |b| {
            b.iter(|| {
                let file = EnvFile::parse(black_box(text.as_bytes())).unwrap();
                black_box(file.render())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
