//! The database URL: which backend, and where (`sqlite://PATH`,
//! `postgres://…`), shown without its password.

use std::fmt;
use std::path::PathBuf;

use crate::StoreError;

/// Where the database is: `sqlite://PATH` (relative or absolute; also
/// `sqlite:PATH`) or `postgres://…` / `postgresql://…`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"));
        match path {
            Some(":memory:") | Some("") => Err(StoreError::Config(
                "a SQLite database needs a file path, e.g. sqlite://data/mooring.db (in-memory databases are not shared between connections)".into(),
            )),
            Some(path) => Ok(Self::Sqlite(PathBuf::from(path))),
            None => Err(StoreError::Config(format!(
                "database URL must start with sqlite:// or postgres://, got {:?}",
                redact(url)
            ))),
        }
    }

    /// The URL with any password replaced by `***`, for messages and logs.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => redact(url),
        }
    }
}

fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.chars().take(16).collect::<String>() + "…";
    };
    let (authority, tail) = rest
        .split_once('/')
        .map_or((rest, None), |(a, t)| (a, Some(t)));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{masked}@{host}")
        }
        None => authority.to_owned(),
    };
    // Query parameters may carry a password too.
    let tail = tail.map(|t| t.split_once('?').map_or(t, |(path, _)| path));
    match tail {
        Some(t) => format!("{scheme}://{authority}/{t}"),
        None => format!("{scheme}://{authority}"),
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_backends() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/mooring.db").ok(),
            Some(DatabaseUrl::Sqlite("data/mooring.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/m.db").ok(),
            Some(DatabaseUrl::Sqlite("/var/lib/m.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:m.db").ok(),
            Some(DatabaseUrl::Sqlite("m.db".into()))
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(matches!(
            DatabaseUrl::parse("postgresql://u@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(DatabaseUrl::parse("sqlite::memory:").is_err());
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
    }

    #[test]
    fn redacts_passwords() {
        let url = DatabaseUrl::parse("postgres://mooring:s3cret@db:5432/mooring?password=s3cret")
            .expect("valid");
        assert_eq!(url.redacted(), "postgres://mooring:***@db:5432/mooring");
        assert!(!format!("{url:?}").contains("s3cret"));
        let err = DatabaseUrl::parse("mysql://root:s3cret@db/x")
            .expect_err("refused")
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
