//! `sponsorctl`: the operator's tool for Families-for-Enterprise sponsorships on a self-hosted
//! server, with an embedded SQLite store. See the crate README for the operator's guide.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::exit)] // the binary prints and exits

mod billing_sync;
mod cli;
mod cloudcmd;
mod confirm;
mod demo;
mod doctor;
mod envcmd;
mod input;
mod license;
mod liveness;
mod logging;
mod member;
mod org;
mod output;
mod remote;
mod resolve;
mod sponsorship;
mod state;
mod status;
mod synccmd;

use std::process::ExitCode;

use clap::Parser;

use sponsorship_core::org::BillingSyncConfig;
use sponsorship_core::org::OrgRecord;
use sponsorship_core::schedule::ErrorCategory;
use sponsorship_core::secret::BillingSyncKey;
use store_sqlite::SqliteStore;

use crate::cli::{
    BillingSyncCommand, Cli, CloudCommand, Command, EnvCommand, LicenseCommand, MemberCommand,
    OrgCommand, SponsorshipCommand,
};
use crate::output::{CliError, Out, exit, print_error};
use crate::state::State;

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || !std::env::args_os().any(|a| a == "--json")
            {
                e.exit();
            }
            let v =
                serde_json::json!({"error": {"category": "usage", "message": usage_message(&e)}});
            eprintln!("{v}");
            return ExitCode::from(exit::USAGE);
        }
    };
    logging::init(cli.verbose, cli.json);
    let out = Out {
        json: cli.json,
        yes: cli.yes,
    };
    let code = match run(&cli) {
        Ok(code) => code,
        Err(e) => print_error(out.json, &e),
    };
    ExitCode::from(code)
}

/// A closed standard output (`sponsorctl sponsorship list | head -1`) ends the process
/// quietly with [`exit::CLOSED_PIPE`] instead of a "failed printing to stdout" panic: Rust
/// ignores SIGPIPE, so the write fails with EPIPE and `println!` panics; this hook turns that
/// one panic into the exit a tool killed by SIGPIPE would have. Every other panic is reported
/// as before.
fn quiet_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(i32::from(exit::CLOSED_PIPE));
        }
        report(info);
    }));
}

/// A usage error in one line, with what clap says after the headline (the missing argument,
/// the unexpected value), without the usage line and the help hint.
fn usage_message(e: &clap::Error) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .map(|l| l.trim_start_matches("error: "))
        .collect::<Vec<_>>()
        .join(" ")
}

fn open(cli: &Cli) -> anyhow::Result<State> {
    open_state(&cli.state)
}

/// Opens the state for a command that only reads: a state file is opened read-only (nothing
/// is created or written; a missing file reads as empty), so it works on a read-only file or
/// directory.
fn open_read(cli: &Cli) -> anyhow::Result<State> {
    if state::is_server(&cli.state) {
        return open_state(&cli.state);
    }
    Ok(State::Sqlite(SqliteStore::open_read_only(&cli.state)?))
}

/// Opens the state: a server database by its URL, or the state file, where a sync lock whose
/// holder was a `sponsorctl` of this host that no longer runs is taken over at once (see
/// [`liveness`]).
pub(crate) fn open_state(path: &std::path::Path) -> anyhow::Result<State> {
    if let Some(url) = path.to_str().filter(|_| state::is_server(path)) {
        return State::connect(url, runtime()?);
    }
    Ok(State::Sqlite(
        SqliteStore::open(path)?.take_over_gone_holders(liveness::holder_is_gone),
    ))
}

#[allow(clippy::too_many_lines)] // one arm per command
fn run(cli: &Cli) -> anyhow::Result<u8> {
    let out = Out {
        json: cli.json,
        yes: cli.yes,
    };
    // A server database's pool lives on the runtime: the whole command runs in its context,
    // so that connections dropped by synchronous code go back to the pool.
    let _runtime = if state::is_server(&cli.state) {
        Some(runtime()?.enter())
    } else {
        None
    };
    match &cli.command {
        Command::Org(OrgCommand::Add {
            name,
            plan,
            cloud_org_id,
        }) => org::org_add(&open(cli)?, out, name, plan, cloud_org_id.as_deref())?,
        Command::Org(OrgCommand::List) => org::org_list(&open_read(cli)?, out)?,
        Command::Member(MemberCommand::Add {
            org,
            email,
            status,
            role,
        }) => member::member_add(&open(cli)?, out, org, email, *status, *role)?,
        Command::Member(MemberCommand::Remove { org, member }) => {
            member::member_remove(&open(cli)?, out, org, member)?;
        }
        Command::Member(MemberCommand::SetStatus {
            org,
            member,
            status,
        }) => {
            member::member_set_status(&open(cli)?, out, org, member, *status)?;
        }
        Command::Member(MemberCommand::Import { org, file }) => {
            member::member_import(&open(cli)?, out, org, file)?;
        }
        Command::Member(MemberCommand::List { org }) => {
            member::member_list(&open_read(cli)?, out, org)?;
        }
        Command::Sponsorship(SponsorshipCommand::Offer {
            org,
            member,
            email,
            friendly_name,
        }) => sponsorship::offer(
            &open(cli)?,
            out,
            org,
            member,
            email,
            friendly_name.as_deref(),
        )?,
        Command::Sponsorship(SponsorshipCommand::Revoke { org, member }) => {
            sponsorship::revoke(&open(cli)?, out, org, member)?;
        }
        Command::Sponsorship(SponsorshipCommand::Import { org, file }) => {
            sponsorship::offer_import(&open(cli)?, out, org, file)?;
        }
        Command::Sponsorship(SponsorshipCommand::List(f)) => {
            sponsorship::list(&open_read(cli)?, out, f.org.as_deref())?;
        }
        Command::BillingSync(BillingSyncCommand::SetToken {
            org,
            token_file,
            verify,
        }) => {
            let check = |rec: &OrgRecord, key: &BillingSyncKey| -> anyhow::Result<()> {
                let Some(cloud) = rec.cloud_organization_id else {
                    return Err(CliError::of(
                        ErrorCategory::Config,
                        format!(
                            "--verify needs the cloud organization id: import the license first (`sponsorctl license import --org {} FILE`)",
                            output::shell_word(&rec.org.name)
                        ),
                    )
                    .into());
                };
                let (client, _) = remote::client_from_env(&cli.env_file)?;
                let billing = BillingSyncConfig {
                    billing_sync_key: key.clone(),
                    cloud_organization_id: cloud,
                    last_license_sync: None,
                };
                runtime()?
                    .block_on(client.verify_billing_sync_key(&billing))
                    .map_err(remote::cloud_error)
            };
            let verifier: Option<billing_sync::Verifier<'_>> =
                if *verify { Some(&check) } else { None };
            billing_sync::set_token(&open(cli)?, out, org, token_file.as_deref(), verifier)?;
        }
        Command::BillingSync(BillingSyncCommand::Show(o)) => {
            billing_sync::show_connection(&open_read(cli)?, out, &o.org)?;
        }
        Command::BillingSync(BillingSyncCommand::Enable(o)) => {
            billing_sync::set_enabled(&open(cli)?, out, &o.org, true)?;
        }
        Command::BillingSync(BillingSyncCommand::Disable(o)) => {
            billing_sync::set_enabled(&open(cli)?, out, &o.org, false)?;
        }
        Command::BillingSync(BillingSyncCommand::Delete(o)) => {
            billing_sync::delete(&open(cli)?, out, &o.org)?;
        }
        Command::Status(args) => {
            return status::status(
                &open_read(cli)?,
                out,
                args.filter.org.as_deref(),
                args.check,
            );
        }
        Command::Env(EnvCommand::Show) => return envcmd::show(&cli.env_file, out),
        Command::Env(EnvCommand::Check) => return envcmd::check(&cli.env_file, out),
        Command::Env(EnvCommand::EnableCloud(args)) => {
            return envcmd::enable_cloud_cmd(&cli.env_file, out, args);
        }
        Command::Sync(args) => {
            let db = open(cli)?;
            let rt = runtime()?;
            return if args.daemon {
                rt.block_on(synccmd::daemon((&db, &cli.state), &cli.env_file, out, args))
            } else {
                rt.block_on(synccmd::sync_cmd(&db, &cli.env_file, out, args))
            };
        }
        Command::License(LicenseCommand::Import { org, file }) => {
            let verifier = license::verifier(cli.trust_license_key.as_deref())?;
            return license::import(&open(cli)?, &cli.env_file, &verifier, out, org, file);
        }
        Command::License(LicenseCommand::Sync(o)) => {
            let db = open(cli)?;
            let verifier = license::verifier(cli.trust_license_key.as_deref())?;
            return runtime()?.block_on(license::license_sync(
                &db,
                &cli.env_file,
                &verifier,
                out,
                &o.org,
            ));
        }
        Command::Doctor => {
            return runtime()?.block_on(doctor::doctor(&cli.state, &cli.env_file, out));
        }
        Command::Cloud(CloudCommand::Serve {
            example_seed: true, ..
        }) => return cloudcmd::print_example_seed(),
        Command::Cloud(CloudCommand::Serve {
            seed,
            addr,
            data,
            allow_remote,
            ..
        }) => {
            let Some(seed) = seed else {
                return Err(
                    output::CliError::invalid("give --seed FILE (or --example-seed)").into(),
                );
            };
            if !addr.ip().is_loopback() {
                if !allow_remote {
                    return Err(output::CliError::invalid(format!(
                        "refusing to listen on {addr}, which is not a loopback address: the reference cloud is a test server whose keys and seeded passwords are public; pass --allow-remote to listen there anyway"
                    ))
                    .into());
                }
                eprintln!(
                    "warning: listening on {addr}, not loopback: anyone who reaches it can use the reference cloud's public test keys"
                );
            }
            return runtime()?.block_on(cloudcmd::serve(seed, *addr, data.clone()));
        }
        Command::Cloud(CloudCommand::Token {
            url,
            org,
            email,
            password_file,
            rotate,
            out: file,
        }) => {
            return runtime()?.block_on(cloudcmd::token(cloudcmd::TokenRequest {
                url,
                org: *org,
                email,
                password_file: password_file.as_deref(),
                rotate: *rotate,
                out: file.as_deref(),
            }));
        }
        Command::Cloud(CloudCommand::License {
            url,
            org,
            installation,
            out: file,
        }) => {
            return runtime()?.block_on(cloudcmd::license(
                url,
                *org,
                *installation,
                file.as_deref(),
            ));
        }
        Command::Cloud(CloudCommand::SigningKey { out: file }) => {
            return cloudcmd::signing_key(file.as_deref());
        }
        Command::Demo(args) => return runtime()?.block_on(demo::demo(args.keep)),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "sponsorctl", &mut script);
            // Printed like every other output, so a closed pipe ends it as it ends them.
            print!("{}", String::from_utf8(script)?);
        }
        Command::Man { out: dir } => {
            let written = write_man_pages(dir)?;
            if out.json {
                output::print_json(&serde_json::json!({ "pages": written }))?;
            } else {
                println!("Wrote {} man pages to {}.", written.len(), dir.display());
            }
        }
    }
    Ok(exit::OK)
}

/// `man --out DIR`: clap_mangen's page for the command and for every subcommand, named as
/// `man` looks them up (`sponsorctl-billing-sync-set-token.1`).
fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    fn walk(
        command: &clap::Command,
        name: &str,
        dir: &std::path::Path,
        written: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let mut text = Vec::new();
        clap_mangen::Man::new(command.clone())
            .title(name.to_uppercase())
            .render(&mut text)?;
        let file = format!("{name}.1");
        std::fs::write(dir.join(&file), text).map_err(|e| {
            CliError::invalid(format!("cannot write {}: {e}", dir.join(&file).display()))
        })?;
        written.push(file);
        // (clap's generated `help` subcommands get no page: `--help` is on every page)
        for sub in command.get_subcommands().filter(|c| c.get_name() != "help") {
            walk(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::invalid(format!("cannot create {}: {e}", dir.display())))?;
    let mut command = <Cli as clap::CommandFactory>::command();
    command.build();
    let mut written = Vec::new();
    walk(&command, "sponsorctl", dir, &mut written)?;
    Ok(written)
}

/// The process's one runtime (multi-threaded: a server database's synchronous steps block in
/// place on it).
fn runtime() -> anyhow::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    Ok(RUNTIME.get_or_init(|| rt))
}
