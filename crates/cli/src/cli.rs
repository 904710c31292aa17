//! The command line: global options and every subcommand (the names are the contract).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// sponsorctl: Families-for-Enterprise sponsorships on a self-hosted server.
///
/// Follows the four setup steps: enable cloud communication (`env`), paste the billing sync token
/// (`billing-sync`), offer sponsorships (`sponsorship`), sync (`sync`). Try `sponsorctl demo`.
#[derive(Debug, Parser)]
#[command(name = "sponsorctl", version, max_term_width = 100)]
pub(crate) struct Cli {
    /// The state: a SQLite file (created with mode 0600), or a server database
    /// (postgres://USER:PASSWORD@HOST/DB or mysql://…; its password is never shown).
    #[arg(
        long,
        global = true,
        env = "SPONSORCTL_STATE",
        hide_env_values = true,
        default_value = "sponsorctl.db",
        value_name = "FILE|URL"
    )]
    pub(crate) state: PathBuf,

    /// The server's environment override file.
    #[arg(
        long,
        global = true,
        env = "SPONSORCTL_ENV_FILE",
        default_value = "bwdata/env/global.override.env",
        value_name = "FILE"
    )]
    pub(crate) env_file: PathBuf,

    /// Also trust licenses signed with this public key (PEM). Only for the reference cloud
    /// (`sponsorctl cloud serve`, tests): Bitwarden's licensing key is always trusted.
    #[arg(
        long,
        global = true,
        env = "SPONSORCTL_LICENSE_TRUST_KEY",
        value_name = "FILE"
    )]
    pub(crate) trust_license_key: Option<PathBuf>,

    /// Machine-readable output on stdout; errors as {"error":{"category","message"}} on stderr.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Answer yes to every confirmation (replacing an offer the cloud has e-mailed, a stored
    /// billing sync token, removing a member with a sponsorship). Without it, such a command
    /// asks on a terminal and is refused elsewhere.
    #[arg(short = 'y', long, global = true)]
    pub(crate) yes: bool,

    /// More logging on stderr (-v: info, -vv: debug). Secrets are never logged.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Step 1: cloud communication in the server's env file.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Self-hosted organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Members of an organization.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Step 3: sponsorship offers.
    #[command(subcommand)]
    Sponsorship(SponsorshipCommand),
    /// Step 2: the billing sync token (connection) of an organization.
    #[command(subcommand, name = "billing-sync")]
    BillingSync(BillingSyncCommand),
    /// Step 4: send the sponsorships to the cloud and apply its answer.
    Sync(SyncArgs),
    /// Organization licenses.
    #[command(subcommand)]
    License(LicenseCommand),
    /// Per organization: billing sync, last sync, next due, counts per status.
    Status(StatusArgs),
    /// Checks configuration and connectivity; the output is safe to paste into a bug report.
    Doctor,
    /// The reference cloud (for tests and demos).
    #[command(subcommand)]
    Cloud(CloudCommand),
    /// The whole setup, offline, against an in-process reference cloud, in a few seconds.
    Demo(DemoArgs),
    /// Prints a shell completion script (`sponsorctl completions bash > /etc/bash_completion.d/sponsorctl`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Writes the man pages (sponsorctl.1 and one per subcommand) into a directory.
    Man {
        /// The directory (created when missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// `env …`
#[derive(Debug, Subcommand)]
pub(crate) enum EnvCommand {
    /// Shows the cloud-communication settings (secrets redacted).
    Show,
    /// Checks the settings (region, URLs, installation id and key).
    Check,
    /// Turns on cloud communication for a region and prints the change.
    EnableCloud(EnableCloudArgs),
}

/// The region argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RegionArg {
    /// bitwarden.com
    Us,
    /// bitwarden.eu
    Eu,
    /// bitwarden-gov.com
    Gov,
    /// Own identity and API URLs (`--identity-uri`, `--api-uri`).
    Custom,
}

/// `env enable-cloud`
#[derive(Debug, Args)]
pub(crate) struct EnableCloudArgs {
    /// The cloud region of the installation id.
    #[arg(long, value_enum)]
    pub(crate) region: RegionArg,
    /// Identity URL (custom region only).
    #[arg(long, value_name = "URL", required_if_eq("region", "custom"))]
    pub(crate) identity_uri: Option<String>,
    /// API URL (custom region only).
    #[arg(long, value_name = "URL", required_if_eq("region", "custom"))]
    pub(crate) api_uri: Option<String>,
    /// Print the change without writing the file.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `org …`
#[derive(Debug, Subcommand)]
pub(crate) enum OrgCommand {
    /// Creates an organization and prints its id.
    Add {
        /// Display name (unique).
        #[arg(long)]
        name: String,
        /// Plan: kebab-case name (enterprise-annually, families-annually, …) or number.
        #[arg(long)]
        plan: String,
        /// The organization's id in the cloud (normally taken from its license).
        #[arg(long, value_name = "UUID")]
        cloud_org_id: Option<String>,
    },
    /// Lists organizations.
    List,
}

/// Member status argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatusArg {
    /// May sponsor.
    Confirmed,
    /// Invited, not accepted.
    Invited,
    /// Accepted, not confirmed.
    Accepted,
    /// Provisioned (SCIM, Directory Connector), not yet invited.
    Staged,
    /// Access suspended (restorable); an existing sponsorship stays.
    Revoked,
}

impl StatusArg {
    /// The core status.
    pub(crate) const fn status(self) -> sponsorship_core::org::MemberStatus {
        use sponsorship_core::org::MemberStatus;
        match self {
            Self::Confirmed => MemberStatus::Confirmed,
            Self::Invited => MemberStatus::Invited,
            Self::Accepted => MemberStatus::Accepted,
            Self::Staged => MemberStatus::Staged,
            Self::Revoked => MemberStatus::Revoked,
        }
    }
}

/// Member role argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RoleArg {
    /// Owner.
    Owner,
    /// Admin.
    Admin,
    /// User.
    User,
}

/// `member …`
#[derive(Debug, Subcommand)]
pub(crate) enum MemberCommand {
    /// Adds a member and prints its id.
    Add {
        /// Organization id or name.
        #[arg(long)]
        org: String,
        /// The member's account e-mail.
        #[arg(long)]
        email: String,
        /// Membership status.
        #[arg(long, value_enum, default_value = "confirmed")]
        status: StatusArg,
        /// Role.
        #[arg(long, value_enum, default_value = "user")]
        role: RoleArg,
    },
    /// Removes a member; their sponsorships are revoked (the cloud learns at the next sync).
    Remove {
        /// Organization id or name.
        #[arg(long)]
        org: String,
        /// Member id or e-mail.
        member: String,
    },
    /// Changes a member's status: revoke or restore access, confirm. Only confirmed members
    /// may offer; a revoked member's sponsorship stays as it is.
    SetStatus {
        /// Organization id or name.
        #[arg(long)]
        org: String,
        /// Member id or e-mail.
        member: String,
        /// The new status.
        #[arg(long, value_enum)]
        status: StatusArg,
    },
    /// Adds confirmed members from a file: one e-mail per line (`#` comments and blank lines
    /// ignored); all or nothing.
    Import {
        /// Organization id or name.
        #[arg(long)]
        org: String,
        /// The file.
        file: PathBuf,
    },
    /// Lists the members of an organization.
    List {
        /// Organization id or name.
        #[arg(long)]
        org: String,
    },
}

/// `sponsorship …`
#[derive(Debug, Subcommand)]
pub(crate) enum SponsorshipCommand {
    /// A member offers a Families sponsorship (e-mailed by the cloud at the next sync).
    Offer {
        /// Organization id or name.
        #[arg(long)]
        org: String,
        /// Member id or e-mail.
        #[arg(long)]
        member: String,
        /// The recipient's e-mail.
        #[arg(long)]
        email: String,
        /// A label (defaults to the recipient's e-mail).
        #[arg(long)]
        friendly_name: Option<String>,
    },
    /// Revokes a member's sponsorship.
    Revoke {
        /// Organization id or name.
        #[arg(long)]
        org: String,
        /// Member id or e-mail.
        #[arg(long)]
        member: String,
    },
    /// Offers from a file: `member-email,recipient-email[,friendly name]` per line (`#`
    /// comments and blank lines ignored); all or nothing.
    Import {
        /// Organization id or name.
        #[arg(long)]
        org: String,
        /// The file.
        file: PathBuf,
    },
    /// Lists sponsorships.
    List(OrgFilter),
}

/// An optional organization.
#[derive(Debug, Args)]
pub(crate) struct OrgFilter {
    /// Organization id or name (all when omitted).
    #[arg(long)]
    pub(crate) org: Option<String>,
}

/// `status`
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The organizations.
    #[command(flatten)]
    pub(crate) filter: OrgFilter,
    /// For monitoring: exit 4 when the last sync of an organization with billing sync
    /// enabled failed (each one named on stderr), 0 otherwise.
    #[arg(long)]
    pub(crate) check: bool,
}

/// A required organization.
#[derive(Debug, Args)]
pub(crate) struct OrgArg {
    /// Organization id or name.
    #[arg(long)]
    pub(crate) org: String,
}

/// `billing-sync …`
#[derive(Debug, Subcommand)]
pub(crate) enum BillingSyncCommand {
    /// Stores the billing sync token, read from --token-file or standard input (never argv).
    SetToken {
        /// Organization id or name.
        #[arg(long)]
        org: String,
        /// File holding the token (default: standard input).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Check the token against the cloud before storing it.
        #[arg(long)]
        verify: bool,
    },
    /// Shows the connection (the token's last four characters only).
    Show(OrgArg),
    /// Switches billing sync on.
    Enable(OrgArg),
    /// Switches billing sync off (the token is kept).
    Disable(OrgArg),
    /// Deletes the stored connection and its token ("Delete" in the billing sync dialog).
    Delete(OrgArg),
}

/// `sync`
#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// Organization id or name (default: every organization with billing sync enabled).
    #[arg(long)]
    pub(crate) org: Option<String>,
    /// Run the daily schedule until SIGINT/SIGTERM.
    #[arg(long)]
    pub(crate) daemon: bool,
    /// How long an organization's lock outlives a sync that stops renewing it (killed,
    /// suspended, a paused VM): another sync takes the organization over after that. The lock
    /// is renewed before every batch, so each batch must be answered within it.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = lock_ttl)]
    pub(crate) lock_ttl: std::time::Duration,
}

/// A lock lifetime: `90s`, `10m`, `1h` (humantime), at least a second.
fn lock_ttl(text: &str) -> Result<std::time::Duration, String> {
    let ttl =
        humantime::parse_duration(text).map_err(|e| format!("{e} (for example 10m or 90s)"))?;
    if ttl < std::time::Duration::from_secs(1) {
        return Err("a lock must last at least 1s".to_owned());
    }
    Ok(ttl)
}

/// `license …`
#[derive(Debug, Subcommand)]
pub(crate) enum LicenseCommand {
    /// Uploads a license file by hand.
    Import {
        /// Organization id or name.
        #[arg(long)]
        org: String,
        /// The license file (JSON).
        file: PathBuf,
    },
    /// Fetches the current license from the cloud ("Sync license").
    Sync(OrgArg),
}

/// `cloud …`
#[derive(Debug, Subcommand)]
pub(crate) enum CloudCommand {
    /// Runs the reference cloud; the first line printed is `listening on http://ADDR`.
    Serve {
        /// Seed JSON (installations, organizations, users); `--example-seed` prints one.
        #[arg(long, value_name = "FILE", required_unless_present = "example_seed")]
        seed: Option<PathBuf>,
        /// Print an example seed (an installation, an Enterprise organization and its owner,
        /// a family) and exit.
        #[arg(long, conflicts_with_all = ["seed", "data", "allow_remote"])]
        example_seed: bool,
        /// Address to listen on (loopback unless --allow-remote).
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        /// Persist the cloud's state in this file.
        #[arg(long, value_name = "FILE")]
        data: Option<PathBuf>,
        /// Listen on a non-loopback address: the reference cloud is a test server (its test
        /// keys and seeded passwords are public), so anyone who reaches it can use them.
        #[arg(long)]
        allow_remote: bool,
    },
    /// As the cloud organization's owner: sign in and view (the first time: generate) or rotate
    /// the billing sync token. It goes to --out FILE or a pipe, never to the terminal.
    Token {
        /// The reference cloud (`cloud serve` prints it).
        #[arg(long)]
        url: url::Url,
        /// The cloud organization's id.
        #[arg(long)]
        org: sponsorship_core::ids::CloudOrganizationId,
        /// The owner's e-mail.
        #[arg(long)]
        email: String,
        /// A file with the owner's password (otherwise it is asked for, not shown).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Rotate the token: the old one stops working at once.
        #[arg(long)]
        rotate: bool,
        /// Write the token to this file (created 0600).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// As the owner: download the organization's license file for this installation.
    License {
        /// The reference cloud (`cloud serve` prints it).
        #[arg(long)]
        url: url::Url,
        /// The cloud organization's id.
        #[arg(long)]
        org: sponsorship_core::ids::CloudOrganizationId,
        /// The installation id the license is for (the env file's).
        #[arg(long)]
        installation: Option<sponsorship_core::ids::InstallationId>,
        /// Write it to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The public key the reference cloud signs licenses with, for --trust-license-key.
    SigningKey {
        /// Write it to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// `demo`
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Keep the demo's directory (state file, env file) and print where it is.
    #[arg(long)]
    pub(crate) keep: bool,
}
