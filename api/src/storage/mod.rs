//! The file store: where the bytes of uploaded files live. One small
//! trait, [`Storage`], with two backends: a folder ([`local`], under
//! DATA_DIR by default, so the embedded start needs nothing) and any
//! S3-compatible store ([`s3`], `STORAGE_URL=s3://bucket/prefix`).
//!
//! A key is `<session id>/<attachment id>`. `put` stores a whole file or
//! nothing: a reader never sees half a file, and a failed or cancelled
//! write leaves no object behind.

pub mod local;
pub mod s3;

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

/// A stored file's bytes, as they are read.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no such file in the store")]
    NotFound,
    #[error("file store: {0}")]
    Failed(String),
}

impl From<io::Error> for StorageError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => StorageError::NotFound,
            _ => StorageError::Failed(e.to_string()),
        }
    }
}

/// Where files are kept.
pub trait Storage: Send + Sync {
    /// Stores the whole of `file`, from its start, under `key`: all of it
    /// or nothing.
    fn put<'a>(
        &'a self,
        key: &'a str,
        file: std::fs::File,
    ) -> BoxFuture<'a, Result<(), StorageError>>;
    /// The bytes stored under `key`.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<ByteStream, StorageError>>;
    /// Removes `key`; a key already gone is not an error.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StorageError>>;
    /// Every key in the store (for checks and tests; not on request paths).
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StorageError>>;
    /// Where it is, for the start-up log.
    fn describe(&self) -> String;
}

/// The store STORAGE_URL names: `s3://bucket[/prefix]`, a folder, or
/// (unset) `files` in the data folder. `aws` holds the AWS_* settings.
pub fn open(
    url: Option<&str>,
    data_dir: &std::path::Path,
    aws: &s3::AwsSettings,
) -> Result<Arc<dyn Storage>, String> {
    match url.map(str::trim).filter(|u| !u.is_empty()) {
        None => Ok(Arc::new(local::LocalStorage::new(data_dir.join("files")))),
        Some(url) if url.starts_with("s3://") => Ok(Arc::new(s3::S3Storage::open(url, aws)?)),
        Some(url) => {
            let path = url.strip_prefix("file://").unwrap_or(url);
            if path.contains("://") {
                return Err(format!(
                    "{url:?}: use s3://bucket/prefix, or a folder (file:///path)"
                ));
            }
            Ok(Arc::new(local::LocalStorage::new(path.into())))
        }
    }
}

/// Keys are made here (`<uuid>/<uuid>`), never by clients; a backend
/// still refuses anything else, so a bug cannot reach outside the store.
fn check_key(key: &str) -> Result<(), StorageError> {
    let valid = !key.is_empty()
        && key.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        });
    if valid {
        Ok(())
    } else {
        Err(StorageError::Failed(format!("invalid key {key:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_store() {
        assert!(check_key("0b5e/1a2b-3c").is_ok());
        for bad in [
            "",
            "../x",
            "a/../b",
            "/abs",
            "a//b",
            "a/.hidden",
            "a\\b",
            "a b",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }
}
