//! `sponsorctl`: the operator's tool for Families-for-Enterprise sponsorships on a self-hosted
//! server, with an embedded SQLite store. See the crate README for the operator's guide.

// Items used by the commands that land with the client libraries.
#![allow(dead_code)]

mod cli;
mod local;
mod output;
mod store;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{BillingSyncCommand, Cli, Command, MemberCommand, OrgCommand, SponsorshipCommand};
use crate::output::{CliError, Out, exit, print_error};
use crate::store::Db;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || !std::env::args().any(|a| a == "--json")
            {
                e.exit();
            }
            let message = e.kind().to_string();
            let detail = e.to_string();
            let first = detail.lines().next().unwrap_or(&message);
            let v = serde_json::json!({"error": {"category": "usage", "message": first.trim_start_matches("error: ")}});
            eprintln!("{v}");
            return ExitCode::from(exit::USAGE);
        }
    };
    init_tracing(cli.verbose);
    let out = Out { json: cli.json };
    let code = match run(&cli) {
        Ok(code) => code,
        Err(e) => print_error(out.json, &e),
    };
    ExitCode::from(code)
}

fn init_tracing(verbose: u8) {
    let ours = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // Only our crates get more verbose: HTTP internals stay at warn whatever -v says.
    let filter = format!(
        "warn,sponsorctl={ours},sponsorship_core={ours},cloud_client={ours},env_config={ours},cloud_emulator={ours}"
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(verbose >= 2)
        .try_init();
}

fn open(cli: &Cli) -> anyhow::Result<Db> {
    Ok(Db::open(&cli.state)?)
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let out = Out { json: cli.json };
    match &cli.command {
        Command::Org(OrgCommand::Add {
            name,
            plan,
            cloud_org_id,
        }) => local::org_add(&open(cli)?, out, name, plan, cloud_org_id.as_deref())?,
        Command::Org(OrgCommand::List) => local::org_list(&open(cli)?, out)?,
        Command::Member(MemberCommand::Add {
            org,
            email,
            status,
            role,
        }) => local::member_add(&open(cli)?, out, org, email, *status, *role)?,
        Command::Member(MemberCommand::Remove { org, member }) => {
            local::member_remove(&open(cli)?, out, org, member)?;
        }
        Command::Member(MemberCommand::List { org }) => {
            local::member_list(&open(cli)?, out, org)?;
        }
        Command::Sponsorship(SponsorshipCommand::Offer {
            org,
            member,
            email,
            friendly_name,
        }) => local::offer(
            &open(cli)?,
            out,
            org,
            member,
            email,
            friendly_name.as_deref(),
        )?,
        Command::Sponsorship(SponsorshipCommand::Revoke { org, member }) => {
            local::revoke(&open(cli)?, out, org, member)?;
        }
        Command::Sponsorship(SponsorshipCommand::List(f)) => {
            local::list(&open(cli)?, out, f.org.as_deref())?;
        }
        Command::BillingSync(BillingSyncCommand::SetToken {
            org,
            token_file,
            verify,
        }) => {
            if *verify {
                return Err(CliError::failure("config", "--verify is not available yet").into());
            }
            local::set_token(&open(cli)?, out, org, token_file.as_deref(), None)?;
        }
        Command::BillingSync(BillingSyncCommand::Show(o)) => {
            local::show_connection(&open(cli)?, out, &o.org)?;
        }
        Command::BillingSync(BillingSyncCommand::Enable(o)) => {
            local::set_enabled(&open(cli)?, out, &o.org, true)?;
        }
        Command::BillingSync(BillingSyncCommand::Disable(o)) => {
            local::set_enabled(&open(cli)?, out, &o.org, false)?;
        }
        Command::Status(f) => local::status(&open(cli)?, out, f.org.as_deref())?,
        Command::Env(_)
        | Command::Sync(_)
        | Command::License(_)
        | Command::Doctor
        | Command::Cloud(_)
        | Command::Demo(_) => {
            return Err(CliError::failure("config", "not available in this build yet").into());
        }
    }
    Ok(exit::OK)
}
