//! From the env file and the process environment to a cloud client: the one place that reads
//! `HTTPS_PROXY` / `NO_PROXY` (libraries read no environment), and the mapping of cloud errors
//! to CLI errors.

use std::path::Path;

use cloud_client::{CloudClient, CloudConfig};
use env_config::{CloudSettings, EnvFile};
use sponsorship_core::ids::InstallationId;
use sponsorship_core::schedule::ErrorCategory;
use url::Url;

use crate::output::CliError;

/// The process's proxy settings (`HTTPS_PROXY`/`https_proxy`, `NO_PROXY`/`no_proxy`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ProxyEnv {
    pub(crate) https_proxy: Option<String>,
    pub(crate) no_proxy: Option<String>,
}

impl ProxyEnv {
    /// Reads the variables. The CLI is the only component that reads the environment.
    #[allow(clippy::disallowed_methods)] // the binary is where configuration comes from
    pub(crate) fn from_process() -> Self {
        let get = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
        };
        Self {
            https_proxy: get(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]),
            no_proxy: get(&["NO_PROXY", "no_proxy"]),
        }
    }

    /// The proxy URL, validated. A value without a scheme (`user:pw@host:port`, a form curl
    /// accepts) is read as curl reads it, as `http://…`. Errors never echo the value: it may
    /// hold the proxy's password.
    pub(crate) fn proxy_url(&self) -> anyhow::Result<Option<Url>> {
        self.https_proxy
            .as_deref()
            .map(|p| parse_proxy(p.trim()))
            .transpose()
    }
}

fn parse_proxy(raw: &str) -> anyhow::Result<Url> {
    let refused = |why: String| -> anyhow::Error {
        CliError::failure(
            "config",
            format!("HTTPS_PROXY is not a proxy URL ({why}): use http://[user:password@]host:port"),
        )
        .into()
    };
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| refused(e.to_string()))?;
    match url.scheme() {
        "http" | "https" | "socks5" | "socks5h" if url.host().is_some() => Ok(url),
        "http" | "https" | "socks5" | "socks5h" => Err(refused("no host".to_owned())),
        _ => Err(refused(
            "the scheme is not http, https, socks5 or socks5h".to_owned(),
        )),
    }
}

/// A proxy URL for display: credentials removed.
pub(crate) fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    if !shown.username().is_empty() {
        let _ = shown.set_username("REDACTED");
    }
    if shown.password().is_some() {
        let _ = shown.set_password(Some("REDACTED"));
    }
    shown.to_string()
}

/// Opens the env file (missing is an error that says where it was looked for).
pub(crate) fn open_env(path: &Path) -> anyhow::Result<EnvFile> {
    EnvFile::open(path).map_err(|e| {
        CliError::failure(
            "config",
            format!("{e} (set --env-file or SPONSORCTL_ENV_FILE)"),
        )
        .into()
    })
}

/// The settings a cloud call needs, checked.
pub(crate) fn cloud_config(
    settings: &CloudSettings,
    proxy: &ProxyEnv,
) -> anyhow::Result<CloudConfig> {
    if !settings.cloud_communication {
        return Err(CliError::of(
            ErrorCategory::Config,
            format!(
                "{}: run `sponsorctl env enable-cloud --region us|eu|gov`, then restart the server (./bitwarden.sh restart)",
                sponsorship_core::org::CLOUD_COMMUNICATION_DISABLED
            ),
        )
        .into());
    }
    let Some(id) = settings.installation_id else {
        return Err(CliError::of(
            ErrorCategory::Config,
            "the installation id is missing or not a GUID in the env file: get one for your region at https://bitwarden.com/host",
        )
        .into());
    };
    let Some(key) = settings.installation_key.clone() else {
        return Err(CliError::of(
            ErrorCategory::Config,
            "the installation key is missing or not 20 letters and digits in the env file: copy it from https://bitwarden.com/host",
        )
        .into());
    };
    let mut config = CloudConfig::new(
        id,
        key,
        settings.identity_uri.url.clone(),
        settings.api_uri.url.clone(),
    );
    concat!("sponsorctl/", env!("CARGO_PKG_VERSION")).clone_into(&mut config.user_agent);
    config.proxy = proxy.proxy_url()?;
    config.no_proxy.clone_from(&proxy.no_proxy);
    Ok(config)
}

/// A client for the env file's settings.
pub(crate) fn client_from_env(
    env_file: &Path,
) -> anyhow::Result<(CloudClient, Option<InstallationId>)> {
    let env = open_env(env_file)?;
    let settings = env.settings();
    let config = cloud_config(&settings, &ProxyEnv::from_process())?;
    let client = CloudClient::new(config).map_err(cloud_error)?;
    Ok((client, settings.installation_id))
}

/// The message for a license whose version this release does not support.
pub(crate) const UNSUPPORTED_VERSION: &str =
    "unsupported version: back up bwdata, update the server, then upload the license again";

/// A cloud error as a CLI error (exit 1, the core category).
#[allow(clippy::needless_pass_by_value)] // used as `map_err(cloud_error)`
pub(crate) fn cloud_error(e: cloud_client::Error) -> anyhow::Error {
    let category = e.category();
    if category == ErrorCategory::UnsupportedVersion {
        return CliError::of(category, format!("{UNSUPPORTED_VERSION} ({e})")).into();
    }
    CliError::of(category, e.to_string()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `user:pw@host:port` is a proxy on host:port with credentials (curl's reading), never a URL
    /// of scheme `user` whose "path" holds the password; nothing shown carries the password.
    #[test]
    fn a_proxy_without_a_scheme_is_read_as_curl_reads_it() {
        let env = |v: &str| ProxyEnv {
            https_proxy: Some(v.to_owned()),
            no_proxy: None,
        };
        let url = env("user:S3cretPw@proxy.example:3128")
            .proxy_url()
            .unwrap()
            .unwrap();
        assert_eq!(
            (url.scheme(), url.host_str(), url.port()),
            ("http", Some("proxy.example"), Some(3128))
        );
        assert_eq!(url.password(), Some("S3cretPw"));
        let shown = redact_url(&url);
        assert!(
            !shown.contains("S3cretPw") && !shown.contains("user"),
            "{shown}"
        );
        for bad in [
            "ftp://user:S3cretPw@proxy.example:21",
            "http://user:S3cretPw@:3128",
        ] {
            let err = format!("{:#}", env(bad).proxy_url().unwrap_err());
            assert!(!err.contains("S3cretPw"), "{err}");
        }
    }
}
