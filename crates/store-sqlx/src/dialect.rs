//! What differs between the backends: placeholders and the one-statement upserts. Every other
//! statement is written once, in SQL both understand.

use std::borrow::Cow;

/// A server database backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Backend {
    /// The backend a URL's scheme names, when this build has it.
    pub(crate) fn of_url(url: &url::Url) -> Option<Self> {
        match url.scheme() {
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => Some(Self::Postgres),
            #[cfg(feature = "mysql")]
            "mysql" | "mariadb" => Some(Self::MySql),
            _ => None,
        }
    }

    /// The backends this build supports, for an error.
    pub(crate) const fn compiled() -> &'static str {
        match (cfg!(feature = "postgres"), cfg!(feature = "mysql")) {
            (true, true) => "postgres:// and mysql://",
            (true, false) => "postgres://",
            (false, true) => "mysql://",
            (false, false) => "",
        }
    }

    /// The backend's name, as in `doctor`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::MySql => "MySQL/MariaDB",
        }
    }

    /// `sql` (written with `?` placeholders) in this backend's form: PostgreSQL numbers them
    /// (`$1`, `$2`, …). The statements of this crate hold no `?` inside literals.
    pub(crate) fn sql(self, sql: &str) -> Cow<'_, str> {
        match self {
            Self::MySql => Cow::Borrowed(sql),
            Self::Postgres => {
                let mut out = String::with_capacity(sql.len() + 16);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                Cow::Owned(out)
            }
        }
    }

    /// `INSERT … VALUES (…)` of `columns` into `table` that replaces the row with the same
    /// `key` (the first column) in one statement.
    pub(crate) fn upsert(self, table: &str, columns: &[&str]) -> String {
        let marks = vec!["?"; columns.len()].join(", ");
        let set: Vec<String> = columns[1..]
            .iter()
            .map(|c| match self {
                Self::Postgres => format!("{c} = EXCLUDED.{c}"),
                Self::MySql => format!("{c} = VALUES({c})"),
            })
            .collect();
        let conflict = match self {
            Self::Postgres => format!("ON CONFLICT ({}) DO UPDATE SET", columns[0]),
            Self::MySql => "ON DUPLICATE KEY UPDATE".to_owned(),
        };
        format!(
            "INSERT INTO {table} ({}) VALUES ({marks}) {conflict} {}",
            columns.join(", "),
            set.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        let sql = "UPDATE t SET a = ? WHERE b = ? AND c = ?";
        assert_eq!(
            Backend::Postgres.sql(sql),
            "UPDATE t SET a = $1 WHERE b = $2 AND c = $3"
        );
        assert_eq!(Backend::MySql.sql(sql), sql);
    }

    #[test]
    fn upserts_replace_all_but_the_key() {
        assert_eq!(
            Backend::Postgres.upsert("t", &["k", "a", "b"]),
            "INSERT INTO t (k, a, b) VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE SET a = EXCLUDED.a, b = EXCLUDED.b"
        );
        assert_eq!(
            Backend::MySql.upsert("t", &["k", "a"]),
            "INSERT INTO t (k, a) VALUES (?, ?) ON DUPLICATE KEY UPDATE a = VALUES(a)"
        );
    }
}
