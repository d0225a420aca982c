//! Files in an S3-compatible store (AWS S3, MinIO, Ceph, R2, ...):
//! `STORAGE_URL=s3://bucket/prefix`, credentials and endpoint from the
//! usual AWS settings. Small files go up in one PUT, larger ones as a
//! multipart upload that is aborted on failure: the object appears whole
//! or not at all.

use std::str::FromStr;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use tokio::io::AsyncWriteExt;

use super::{check_key, ByteStream, Storage, StorageError};

/// The AWS_* settings given to the server, by their environment names
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`, ...). What they leave out comes from
/// the process environment and the platform as AWS SDKs find it (instance
/// or container credentials, web identity).
#[derive(Clone, Debug, Default)]
pub struct AwsSettings(pub Vec<(&'static str, crate::config::Secret)>);

pub struct S3Storage {
    store: Arc<dyn ObjectStore>,
    url: String,
}

impl S3Storage {
    pub fn open(url: &str, aws: &AwsSettings) -> Result<S3Storage, String> {
        let rest = url.trim_start_matches("s3://");
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{url:?}: name a bucket: s3://bucket/prefix"));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (name, value) in &aws.0 {
            let key = AmazonS3ConfigKey::from_str(&name.to_ascii_lowercase())
                .map_err(|e| format!("{name}: {e}"))?;
            builder = builder.with_config(key, value.expose());
        }
        let endpoint_is_http = aws
            .0
            .iter()
            .any(|(name, v)| *name == "AWS_ENDPOINT_URL" && v.expose().starts_with("http://"));
        if endpoint_is_http {
            builder = builder.with_allow_http(true);
        }
        let s3 = builder.build().map_err(|e| e.to_string())?;
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(S3Storage {
            store,
            url: url.to_owned(),
        })
    }

    fn path(key: &str) -> Result<Path, StorageError> {
        check_key(key)?;
        Path::parse(key).map_err(|e| StorageError::Failed(e.to_string()))
    }
}

fn failed(e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound,
        e => StorageError::Failed(e.to_string()),
    }
}

impl Storage for S3Storage {
    fn put<'a>(
        &'a self,
        key: &'a str,
        file: std::fs::File,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        async move {
            let path = Self::path(key)?;
            let mut from = tokio::fs::File::from_std(file);
            tokio::io::AsyncSeekExt::rewind(&mut from).await?;
            let mut to = BufWriter::new(self.store.clone(), path);
            let written = async {
                tokio::io::copy(&mut from, &mut to).await?;
                to.shutdown().await
            }
            .await;
            if let Err(e) = written {
                // A multipart upload begun for a large file is cancelled.
                if let Err(abort) = to.abort().await {
                    tracing::warn!(error = %abort, "could not abort an upload to the store");
                }
                return Err(StorageError::Failed(e.to_string()));
            }
            Ok(())
        }
        .boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<ByteStream, StorageError>> {
        async move {
            let found = self.store.get(&Self::path(key)?).await.map_err(failed)?;
            Ok(found.into_stream().map_err(std::io::Error::other).boxed())
        }
        .boxed()
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        async move {
            match self.store.delete(&Self::path(key)?).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(failed(e)),
            }
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StorageError>> {
        async move {
            let mut keys: Vec<String> = self
                .store
                .list(None)
                .map_ok(|meta| meta.location.to_string())
                .try_collect()
                .await
                .map_err(failed)?;
            keys.sort();
            Ok(keys)
        }
        .boxed()
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}
