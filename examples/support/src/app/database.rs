//! `--db`: where the token service keeps its state, a SQLite file or a PostgreSQL database.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Context as _;
use tessera_issuer::{PostgresStore, PostgresStoreOptions, SqliteStore};

/// Where the token service keeps its state.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (WAL mode), for one process, or several on one machine; the signing keys and the
    /// refresh-token secret live in the directory `<file>.keys/` beside it.
    Sqlite(PathBuf),
    /// A PostgreSQL database, for any number of instances: families, revocations, the login throttle,
    /// signing keys and the refresh-token secret all live in it.
    Postgres {
        /// `postgres://user:password@host:port/database`.
        url: String,
        /// Keeps the tables in this schema instead of the database's default one.
        schema: Option<String>,
    },
}

impl Database {
    /// Where the signing keys live: beside a SQLite file (so a restart keeps every token valid); `None`
    /// for PostgreSQL, which keeps them in the database for every instance.
    pub fn key_dir(&self) -> Option<PathBuf> {
        match self {
            Database::Sqlite(path) => {
                let mut dir = path.clone().into_os_string();
                dir.push(".keys");
                Some(PathBuf::from(dir))
            }
            Database::Postgres { .. } => None,
        }
    }

    /// Opens (or creates) the SQLite database.
    ///
    /// # Errors
    /// If this is not a SQLite database, or the file cannot be opened or migrated.
    pub async fn open_sqlite(&self) -> anyhow::Result<SqliteStore> {
        let Database::Sqlite(path) = self else {
            anyhow::bail!("{self} is not a SQLite database");
        };
        SqliteStore::open(path)
            .await
            .with_context(|| format!("opening the SQLite database {}", path.display()))
    }

    /// Connects to the PostgreSQL database and migrates it.
    ///
    /// # Errors
    /// If this is not a PostgreSQL database, or it cannot be reached or migrated.
    pub async fn open_postgres(&self) -> anyhow::Result<PostgresStore> {
        let Database::Postgres { url, schema } = self else {
            anyhow::bail!("{self} is not a PostgreSQL database");
        };
        let mut options = PostgresStoreOptions::new();
        if let Some(schema) = schema {
            options = options.schema(schema.clone());
        }
        PostgresStore::connect_with(url, options)
            .await
            .with_context(|| format!("connecting to the PostgreSQL database {self}"))
    }
}

impl From<PathBuf> for Database {
    fn from(path: PathBuf) -> Self {
        Database::Sqlite(path)
    }
}

impl FromStr for Database {
    type Err = String;

    /// `postgres://...` or `postgresql://...` is PostgreSQL; `sqlite://PATH`, `sqlite:PATH` or a plain
    /// path is a SQLite file.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.starts_with("postgres://") || input.starts_with("postgresql://") {
            return Ok(Database::Postgres {
                url: input.to_owned(),
                schema: None,
            });
        }
        let path = input
            .strip_prefix("sqlite://")
            .or_else(|| input.strip_prefix("sqlite:"))
            .unwrap_or(input);
        if path.is_empty() {
            return Err(
                "name a SQLite file (e.g. tessera.db) or a postgres://user:password@host/db URL"
                    .into(),
            );
        }
        Ok(Database::Sqlite(PathBuf::from(path)))
    }
}

impl fmt::Display for Database {
    /// The file, or the URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres { url, schema } => {
                match reqwest::Url::parse(url) {
                    Ok(mut url) if url.password().is_some() => {
                        // Only fails for URLs that cannot carry a password, and this one has one.
                        let _ = url.set_password(Some("***"));
                        write!(f, "{url}")?;
                    }
                    Ok(url) => write!(f, "{url}")?,
                    Err(_) => f.write_str("postgres://(unparsable URL)")?,
                }
                match schema {
                    Some(schema) => write!(f, " (schema {schema})"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl fmt::Debug for Database {
    // The URL may carry the database password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Database({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_name_their_database() {
        assert_eq!(
            "tessera.db".parse::<Database>(),
            Ok(Database::Sqlite("tessera.db".into()))
        );
        assert_eq!(
            "sqlite:///var/lib/t.db".parse::<Database>(),
            Ok(Database::Sqlite("/var/lib/t.db".into()))
        );
        assert_eq!(
            "sqlite:t.db".parse::<Database>(),
            Ok(Database::Sqlite("t.db".into()))
        );
        let postgres: Database = "postgresql://u:p@db/t".parse().unwrap();
        assert!(matches!(postgres, Database::Postgres { .. }));
        assert_eq!(postgres.key_dir(), None);
        assert_eq!(
            Database::Sqlite("a/t.db".into()).key_dir(),
            Some("a/t.db.keys".into())
        );
        assert!("sqlite:".parse::<Database>().is_err());
        assert!("".parse::<Database>().is_err());
    }

    #[test]
    fn the_database_password_is_never_shown() {
        let postgres: Database = "postgres://tessera:hunter2@db:5432/tessera"
            .parse()
            .unwrap();
        assert_eq!(
            postgres.to_string(),
            "postgres://tessera:***@db:5432/tessera"
        );
        assert!(!format!("{postgres:?}").contains("hunter2"));
    }
}
