//! The token-signing secret: from JWT_SECRET, or kept in DATA_DIR. Parsing
//! settings only decides which; [`JwtSecretSource::load`] reads the file, or
//! makes it (and the folder) the first time.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::ConfigError;

pub(super) const SECRET_FILE: &str = "jwt_secret";

/// The secret that signs tokens. Debug and Display never show it.
#[derive(Clone)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        JwtSecret(bytes.into())
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(..)")
    }
}

/// Where the token-signing secret comes from. Parsing settings only
/// decides this; [`JwtSecretSource::load`] is the step that may touch disk.
#[derive(Clone, Debug)]
pub enum JwtSecretSource {
    /// JWT_SECRET, already checked.
    Env(JwtSecret),
    /// The file kept in this data folder, made the first time it is needed.
    DataDir(PathBuf),
}

/// A secret ready to sign with.
#[derive(Debug)]
pub struct LoadedSecret {
    pub secret: JwtSecret,
    /// Made by this call (then the server says so): there was none yet.
    pub generated: bool,
}

impl JwtSecretSource {
    /// Where the secret comes from, for the start-up banner.
    pub fn origin(&self) -> String {
        match self {
            JwtSecretSource::Env(_) => "JWT_SECRET".to_owned(),
            JwtSecretSource::DataDir(dir) => dir.join(SECRET_FILE).display().to_string(),
        }
    }

    /// The secret: JWT_SECRET's, or the data folder's, which is made (the
    /// folder 0700, the file 0600) if missing. With JWT_SECRET set this
    /// touches nothing.
    pub fn load(&self) -> Result<LoadedSecret, ConfigError> {
        match self {
            JwtSecretSource::Env(secret) => Ok(LoadedSecret {
                secret: secret.clone(),
                generated: false,
            }),
            JwtSecretSource::DataDir(dir) => {
                let (secret, made) = load_or_create_secret(dir)?;
                Ok(LoadedSecret {
                    secret,
                    generated: matches!(made, Made::Now),
                })
            }
        }
    }
}

/// Creates the data folder if missing, readable by this user only: it
/// holds the signing secret and, by default, every chat.
pub fn ensure_private_dir(dir: &Path) -> Result<(), ConfigError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| ConfigError::DataDir {
        path: dir.to_owned(),
        source,
    })
}

pub(super) enum Made {
    Now,
    Before,
}

/// Reuses the secret in the data folder, or creates it once with mode 0600.
/// The secret is written whole to a private temporary file, then linked
/// into place: a second process starting at the same moment finds either
/// no secret (and its link fails, so it reads ours) or the whole one,
/// never half of it.
pub(super) fn load_or_create_secret(dir: &Path) -> Result<(JwtSecret, Made), ConfigError> {
    ensure_private_dir(dir)?;
    let path = dir.join(SECRET_FILE);
    let io_err = |source| ConfigError::DataDir {
        path: path.clone(),
        source,
    };
    if let Some(secret) = read_secret(&path)? {
        return Ok((secret, Made::Before));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io_err(std::io::Error::other(e.to_string())))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let temporary = dir.join(format!(".{SECRET_FILE}.{}", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(hex.as_bytes())?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, &path));
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok((JwtSecret::new(hex.into_bytes()), Made::Now)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another process got there first: use its secret.
            let secret = read_secret(&path)?.ok_or_else(|| io_err(e))?;
            Ok((secret, Made::Before))
        }
        Err(e) => Err(io_err(e)),
    }
}

fn read_secret(path: &Path) -> Result<Option<JwtSecret>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::DataDir {
                path: path.to_owned(),
                source,
            })
        }
    };
    let text = text.trim();
    if text.len() < 32 {
        return Err(ConfigError::Invalid {
            name: "JWT_SECRET",
            reason: format!(
                "{} is too short; delete it to make a new one",
                path.display()
            ),
        });
    }
    Ok(Some(JwtSecret::new(text.as_bytes().to_vec())))
}
