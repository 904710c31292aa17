//! `cloud …`: the reference cloud as a process (`serve`, with an example seed), and its owner's
//! side of the setup: sign in, view or rotate the billing sync token, download the license,
//! and the key its licenses are signed with. All of it is the reference cloud's, for trying the
//! flow without Bitwarden's cloud; `sponsorctl` never does these against the real one.

use std::io::{IsTerminal as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cloud_emulator::Seed;
use cloud_emulator::client::EmulatorClient;
use secrecy::ExposeSecret as _;
use sponsorship_core::ids::{CloudOrganizationId, InstallationId};

use crate::input::{TOKEN_LIMIT, read_text};
use crate::output::{CliError, exit};

/// The example seed `cloud serve --example-seed` prints: an installation, an Enterprise
/// organization with its owner and a family with a Families organization. Its keys and
/// passwords are public examples, as the reference cloud's own test keys are.
pub(crate) fn example_seed() -> serde_json::Value {
    serde_json::json!({
        "region": "US",
        "installations": [{
            "id": "4b4b3c35-0c6e-4d8e-9c63-5a0a7c1e2f10",
            "key": "ExampleKey1234567890",
            "region": "US"
        }],
        "organizations": [
            {"id": "9a7e1c2b-3d4f-4a5b-8c6d-7e8f9a0b1c2d", "name": "Acme Corp", "planType": 20},
            {"id": "1f2e3d4c-5b6a-4798-8a6b-5c4d3e2f1a0b", "name": "Dana's Family", "planType": 22}
        ],
        "users": [
            {"email": "owner@acme.example", "password": "owner-example-password",
             "ownerOf": ["9a7e1c2b-3d4f-4a5b-8c6d-7e8f9a0b1c2d"]},
            {"email": "dana@home.example", "password": "dana-example-password",
             "ownerOf": ["1f2e3d4c-5b6a-4798-8a6b-5c4d3e2f1a0b"]}
        ],
        "allowRegistration": true
    })
}

/// `cloud serve --example-seed`: the example seed, checked by the seed parser before it is
/// printed.
pub(crate) fn print_example_seed() -> anyhow::Result<u8> {
    let text = serde_json::to_string_pretty(&example_seed())?;
    Seed::from_json(&text).context("the example seed does not parse")?;
    println!("{text}");
    Ok(exit::OK)
}

/// `cloud serve`
pub(crate) async fn serve(
    seed: &Path,
    addr: std::net::SocketAddr,
    data: Option<PathBuf>,
) -> anyhow::Result<u8> {
    let seed = Seed::from_file(seed)?;
    let running = cloud_emulator::serve(seed, addr, data).await?;
    println!("listening on http://{}", running.local_addr());
    std::io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    running.stop().await?;
    Ok(exit::OK)
}

/// Where a secret or a file the command fetched goes: `--out FILE` (created `0600`), else
/// stdout, but never a terminal when it is a secret.
fn deliver(out_file: Option<&Path>, text: &str, secret: bool, what: &str) -> anyhow::Result<()> {
    if let Some(path) = out_file {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| CliError::invalid(format!("cannot write {}: {e}", path.display())))?;
        f.write_all(text.as_bytes())?;
        eprintln!("Wrote {what} to {}.", path.display());
        return Ok(());
    }
    if secret && std::io::stdout().is_terminal() {
        return Err(CliError::invalid(format!(
            "{what} would show on the terminal: give --out FILE, or pipe it into `sponsorctl billing-sync set-token --org ORG`"
        ))
        .into());
    }
    print!("{text}");
    Ok(())
}

/// The owner's password: from `--password-file`, or typed at a prompt that does not echo.
fn owner_password(file: Option<&Path>) -> anyhow::Result<String> {
    if let Some(path) = file {
        return Ok(read_text(path, TOKEN_LIMIT, "the password file")?
            .trim_end_matches(['\r', '\n'])
            .to_owned());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::invalid(
            "the owner's password is read from --password-file or typed at a terminal",
        )
        .into());
    }
    Ok(rpassword::prompt_password(
        "Password of the cloud organization's owner (not shown): ",
    )?)
}

fn client(url: &url::Url) -> anyhow::Result<EmulatorClient> {
    EmulatorClient::new(url.clone()).map_err(|e| CliError::invalid(format!("{url}: {e}")).into())
}

/// What `cloud token` needs.
pub(crate) struct TokenRequest<'a> {
    pub(crate) url: &'a url::Url,
    pub(crate) org: CloudOrganizationId,
    pub(crate) email: &'a str,
    pub(crate) password_file: Option<&'a Path>,
    pub(crate) rotate: bool,
    pub(crate) out: Option<&'a Path>,
}

/// `cloud token`: the owner signs in and views (generating it the first time) or rotates the
/// organization's billing sync token, as on the cloud's Billing → Subscription page.
pub(crate) async fn token(request: TokenRequest<'_>) -> anyhow::Result<u8> {
    let password = owner_password(request.password_file)?;
    let client = client(request.url)?;
    let session = client
        .login(request.email, &password)
        .await
        .map_err(|e| CliError::failure("cloud", format!("signing in as {}: {e}", request.email)))?;
    let key = if request.rotate {
        client
            .rotate_billing_sync_key(&session, request.org, &password)
            .await
    } else {
        client
            .billing_sync_key(&session, request.org, &password)
            .await
    }
    .map_err(|e| {
        CliError::failure(
            "cloud",
            format!("the billing sync token of {}: {e}", request.org),
        )
    })?;
    deliver(
        request.out,
        &format!("{}\n", key.api_key.expose_secret()),
        true,
        "the billing sync token",
    )?;
    Ok(exit::OK)
}

/// `cloud license`: the organization's license file, as the owner downloads it for a
/// self-hosted installation.
pub(crate) async fn license(
    url: &url::Url,
    org: CloudOrganizationId,
    installation: Option<InstallationId>,
    out: Option<&Path>,
) -> anyhow::Result<u8> {
    let json = client(url)?
        .license_json(org, installation)
        .await
        .map_err(|e| CliError::failure("cloud", format!("the license of {org}: {e}")))?;
    deliver(
        out,
        &format!("{}\n", serde_json::to_string_pretty(&json)?),
        false,
        "the license",
    )?;
    Ok(exit::OK)
}

/// `cloud signing-key`: the public key the reference cloud signs its licenses with, for
/// `--trust-license-key`.
pub(crate) fn signing_key(out: Option<&Path>) -> anyhow::Result<u8> {
    deliver(
        out,
        &cloud_emulator::license_signing_key_pem(),
        false,
        "the reference cloud's license signing key",
    )?;
    Ok(exit::OK)
}
