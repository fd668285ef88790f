//! Reading a daemon's TOML configuration file: the part both daemons share
//! (each resolves its own relative paths and validates its own keys).

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Parses TOML text into `T` (whose `deny_unknown_fields` and missing keys
/// are reported by the TOML error, with line and column).
///
/// # Errors
///
/// [`Error::Toml`].
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T> {
    Ok(toml::from_str(text)?)
}

/// Reads the file at `path` and parses it with [`parse_toml`].
///
/// # Errors
///
/// [`Error::ReadConfig`], [`Error::Toml`].
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
        path: path.to_owned(),
        source,
    })?;
    parse_toml(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: String,
    }

    #[test]
    fn parses_and_names_what_is_wrong() {
        let ok: Sample = parse_toml("name = \"a\"").unwrap();
        assert_eq!(ok.name, "a");
        let err = parse_toml::<Sample>("nam = \"a\"").unwrap_err();
        assert!(matches!(err, Error::Toml(_)), "{err:?}");
        assert!(err.to_string().starts_with("configuration: "), "{err}");
        assert!(err.to_string().contains("unknown field"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let err = read_toml::<Sample>(&missing).unwrap_err();
        assert!(matches!(err, Error::ReadConfig { .. }), "{err:?}");
        assert!(err.to_string().contains("reading configuration"), "{err}");
        assert!(err.to_string().contains("missing.toml"), "{err}");
    }
}
