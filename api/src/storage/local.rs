//! Files in a folder: DATA_DIR/files by default. A file is written beside
//! its final name and renamed into place once complete, so a reader never
//! sees part of one, and the partial file is removed if the write fails.

use std::io;
use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};

use super::{check_key, ByteStream, Storage, StorageError};

pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub fn new(root: PathBuf) -> Self {
        LocalStorage { root }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

/// Removes a partial file unless it was renamed into place.
struct Partial<'a> {
    path: &'a Path,
    done: bool,
}

impl Drop for Partial<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(self.path);
        }
    }
}

fn write_file(mut from: std::fs::File, dest: &Path) -> io::Result<()> {
    use std::io::{Seek, Write};
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut folder = std::fs::DirBuilder::new();
    folder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut folder, 0o700);
    folder.create(dir)?;
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let part = dir.join(format!(".{name}.{}.part", uuid::Uuid::new_v4().simple()));
    let mut guard = Partial {
        path: &part,
        done: false,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut to = options.open(&part)?;
    from.rewind()?;
    io::copy(&mut from, &mut to)?;
    to.flush()?;
    to.sync_all()?;
    std::fs::rename(&part, dest)?;
    guard.done = true;
    Ok(())
}

impl Storage for LocalStorage {
    fn put<'a>(
        &'a self,
        key: &'a str,
        file: std::fs::File,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        async move {
            let dest = self.path(key)?;
            // Blocking file I/O off the async threads; the closure owns
            // what it needs, so it finishes (or cleans up) on its own.
            tokio::task::spawn_blocking(move || write_file(file, &dest))
                .await
                .map_err(|e| StorageError::Failed(e.to_string()))??;
            Ok(())
        }
        .boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<ByteStream, StorageError>> {
        async move {
            let file = tokio::fs::File::open(self.path(key)?).await?;
            Ok(tokio_util::io::ReaderStream::new(file).boxed())
        }
        .boxed()
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        async move {
            let path = self.path(key)?;
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            // The session's folder goes with its last file (fails, and
            // stays, while others remain).
            if let Some(dir) = path.parent().filter(|d| *d != self.root) {
                let _ = tokio::fs::remove_dir(dir).await;
            }
            Ok(())
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StorageError>> {
        let root = self.root.clone();
        async move {
            tokio::task::spawn_blocking(move || list_files(&root))
                .await
                .map_err(|e| StorageError::Failed(e.to_string()))?
                .map_err(StorageError::from)
        }
        .boxed()
    }

    fn describe(&self) -> String {
        format!("folder {}", self.root.display())
    }
}

/// Every file two levels down (`<session>/<file>`), partial ones included.
fn list_files(root: &Path) -> io::Result<Vec<String>> {
    let mut keys = Vec::new();
    let sessions = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(keys),
        Err(e) => return Err(e),
    };
    for session in sessions {
        let session = session?;
        if !session.file_type()?.is_dir() {
            keys.push(session.file_name().to_string_lossy().into_owned());
            continue;
        }
        for file in std::fs::read_dir(session.path())? {
            keys.push(format!(
                "{}/{}",
                session.file_name().to_string_lossy(),
                file?.file_name().to_string_lossy()
            ));
        }
    }
    keys.sort();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;
    use std::io::Write;

    #[tokio::test]
    async fn files_go_in_whole_and_come_out_the_same() {
        let root = std::env::temp_dir().join(format!("sb-store-{}", uuid::Uuid::new_v4()));
        let store = LocalStorage::new(root.clone());
        let mut file = tempfile_with(b"hello file");
        file.flush().unwrap();
        store.put("s1/f1", file).await.unwrap();
        assert_eq!(store.list().await.unwrap(), vec!["s1/f1".to_owned()]);
        let bytes: Vec<u8> = store
            .get("s1/f1")
            .await
            .unwrap()
            .map_ok(|b| b.to_vec())
            .try_concat()
            .await
            .unwrap();
        assert_eq!(bytes, b"hello file");
        assert!(matches!(
            store.get("s1/none").await,
            Err(StorageError::NotFound)
        ));
        store.delete("s1/f1").await.unwrap();
        store.delete("s1/f1").await.unwrap();
        assert!(store.list().await.unwrap().is_empty());
        assert!(!root.join("s1").exists(), "the empty session folder goes");
        assert!(store.put("../escape", tempfile_with(b"x")).await.is_err());
        let _ = std::fs::remove_dir_all(root);
    }

    fn tempfile_with(bytes: &[u8]) -> std::fs::File {
        let path = std::env::temp_dir().join(format!("sb-src-{}", uuid::Uuid::new_v4()));
        let mut f = std::fs::File::create_new(&path).unwrap();
        f.write_all(bytes).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }
}
