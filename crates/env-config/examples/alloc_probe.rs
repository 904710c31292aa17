//! Opens an env file, enables the EU region and renders it: a fixed amount of work per file,
//! for counting heap allocations with an external tool (`valgrind` prints "total heap usage").
//! Run it on a 40-line and a 10,000-line file: equal counts mean no allocation per line.
//!
//! ```text
//! cargo build --release -p env-config --example alloc_probe
//! valgrind target/release/examples/alloc_probe some.env
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)] // a program: its output is the point

use env_config::{CloudRegion, EnvFile};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or("usage: alloc_probe FILE")?;
    let mut file = EnvFile::open(&path)?;
    file.enable_cloud_communication(&CloudRegion::Eu)?;
    let rendered = file.render();
    println!(
        "{} lines, {} bytes rendered",
        file.line_count(),
        rendered.len()
    );
    Ok(())
}
