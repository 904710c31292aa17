//! Runs an emulator from a seed file until Ctrl-C (what `sponsorctl cloud serve` does).
//!
//! ```text
//! cargo run -p cloud-emulator --example serve -- seed.json [127.0.0.1:8080] [state.json]
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)] // a program: its output is the point

use std::net::SocketAddr;
use std::path::PathBuf;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seed_path = PathBuf::from(
        args.next()
            .ok_or("usage: serve SEED.json [ADDR] [DATA_FILE]")?,
    );
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let data_file = args.next().map(PathBuf::from);
    let seed = cloud_emulator::Seed::from_file(&seed_path)?;
    let running = cloud_emulator::serve(seed, addr, data_file).await?;
    println!("listening on http://{}", running.local_addr());
    tokio::signal::ctrl_c().await?;
    running.stop().await?;
    Ok(())
}
