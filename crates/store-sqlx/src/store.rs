//! The store: a pool, its backend, and the migrations.

use std::time::Duration;

use std::borrow::Cow;
use std::sync::{Arc, Once};

use sqlx_core::any::{Any, AnyPool, AnyPoolOptions};
use sqlx_core::migrate::{Migration, MigrationType, Migrator};
use sqlx_core::pool::PoolConnection;
use sqlx_core::row::Row as _;
use sqlx_core::sql_str::SqlSafeStr as _;

use crate::statements::Statements;
use crate::{Backend, Error};

/// The migrations of each backend, in order: (version, description, SQL). The files are
/// embedded in the binary.
#[cfg(feature = "postgres")]
const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "sponsorships",
        include_str!("../migrations/postgres/0001_sponsorships.sql"),
    ),
    (
        2,
        "billing sync connections",
        include_str!("../migrations/postgres/0002_billing_sync_connections.sql"),
    ),
    (
        3,
        "standalone host",
        include_str!("../migrations/postgres/0003_standalone_host.sql"),
    ),
];
#[cfg(feature = "mysql")]
const MYSQL: &[(i64, &str, &str)] = &[
    (
        1,
        "sponsorships",
        include_str!("../migrations/mysql/0001_sponsorships.sql"),
    ),
    (
        2,
        "billing sync connections",
        include_str!("../migrations/mysql/0002_billing_sync_connections.sql"),
    ),
    (
        3,
        "standalone host",
        include_str!("../migrations/mysql/0003_standalone_host.sql"),
    ),
];

/// Registers the compiled-in drivers with sqlx's `Any` layer (once per process; a host that
/// registered its own set first keeps it).
fn install_drivers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let drivers = &[
            #[cfg(feature = "postgres")]
            sqlx_postgres::any::DRIVER,
            #[cfg(feature = "mysql")]
            sqlx_mysql::any::DRIVER,
        ];
        if sqlx_core::any::driver::install_drivers(drivers).is_err() {
            tracing::debug!("sqlx drivers were installed by the host already");
        }
    });
}

/// How long a query waits for a free connection of the pool before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The sponsorship store on PostgreSQL or MySQL/MariaDB (see the [crate docs](crate)).
#[derive(Debug, Clone)]
pub struct SqlxStore {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// The database, without its password, for errors.
    pub(crate) label: String,
    pub(crate) sql: Arc<Statements>,
    migrator: Arc<Migrator>,
}

impl SqlxStore {
    /// Connects to `url` (`postgres://user:password@host:port/database` or
    /// `mysql://…`) with a pool of up to 10 connections and applies the migrations the
    /// database lacks. Errors name the database without its password.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(url, 10, ACQUIRE_TIMEOUT).await
    }

    /// [`connect`](Self::connect) with a pool of up to `max_connections`, where a query waits
    /// at most `acquire_timeout` for a connection (and the first connection as long).
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, Error> {
        let (backend, label) = parse(url)?;
        install_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect(url)
            .await
            .map_err(|source| Error::Connect {
                database: label.clone(),
                source,
            })?;
        Self::from_pool(pool, backend, label).await
    }

    /// Takes a host's own pool (its settings stay the host's) and applies the migrations the
    /// database lacks. The tables are `sponsorships`, `sync_state`, `sync_locks` and sqlx's
    /// `_sqlx_migrations`: give the store a database (or a PostgreSQL schema) of its own, or
    /// one where no table has these names. `label` names the database in errors.
    pub async fn from_pool(
        pool: AnyPool,
        backend: Backend,
        label: impl Into<String>,
    ) -> Result<Self, Error> {
        let store = Self {
            pool,
            backend,
            label: label.into(),
            sql: Arc::new(Statements::new(backend)),
            migrator: Arc::new(migrator(backend)),
        };
        store
            .migrator
            .run(&store.pool)
            .await
            .map_err(|source| Error::Migrate {
                database: store.label.clone(),
                source,
            })?;
        Ok(store)
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database, as errors name it (its URL without the password).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The pool, for a host that runs its own queries on the same database.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The schema version the database is at (the newest migration applied) and the one this
    /// release brings, for a readiness check such as `doctor`'s.
    pub async fn schema_version(&self) -> Result<(i64, i64), Error> {
        let row = self
            .sql
            .schema_version
            .query()
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.query_error(e))?;
        let applied: Option<i64> = row.try_get(0).map_err(|e| self.query_error(e))?;
        let known = self
            .migrator
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or_default();
        Ok((applied.unwrap_or_default(), known))
    }

    /// A connection of the pool.
    pub(crate) async fn acquire(&self) -> Result<PoolConnection<Any>, Error> {
        self.pool.acquire().await.map_err(|e| self.query_error(e))
    }

    pub(crate) fn query_error(&self, source: sqlx_core::Error) -> Error {
        Error::Query {
            database: self.label.clone(),
            source,
        }
    }

    pub(crate) fn corrupt(&self, message: impl Into<String>) -> Error {
        Error::Corrupt {
            database: self.label.clone(),
            message: message.into(),
        }
    }
}

/// The backend's migrations.
fn migrator(backend: Backend) -> Migrator {
    let files: &[(i64, &str, &'static str)] = match backend {
        #[cfg(feature = "postgres")]
        Backend::Postgres => POSTGRES,
        #[cfg(feature = "mysql")]
        Backend::MySql => MYSQL,
        #[allow(unreachable_patterns)]
        _ => &[],
    };
    Migrator::with_migrations(
        files
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Owned((*description).to_owned()),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// The backend and the label (URL without password) of a database URL.
fn parse(url: &str) -> Result<(Backend, String), Error> {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return Err(Error::UnsupportedUrl {
            url: "(a URL that does not parse)".to_owned(),
            compiled: Backend::compiled(),
        });
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    let label = parsed.to_string();
    match Backend::of_url(&parsed) {
        Some(backend) => Ok((backend, label)),
        None => Err(Error::UnsupportedUrl {
            url: label,
            compiled: Backend::compiled(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn labels_never_carry_the_password() {
        let (_, label) = parse("postgres://app:S3cret@db.example:5432/sponsor").unwrap();
        assert_eq!(label, "postgres://app:***@db.example:5432/sponsor");
        let err = parse("redis://u:S3cret@h/0").unwrap_err().to_string();
        assert!(
            !err.contains("S3cret") && err.contains("redis://u:***@h/0"),
            "{err}"
        );
        let err = parse("not a url S3cret").unwrap_err().to_string();
        assert!(!err.contains("S3cret"), "{err}");
    }
}
