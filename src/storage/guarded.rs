//! A store handed to a library that makes its own object-store calls (the Delta Lake sink's
//! `deltalake`), with the guarantees a write through a [`Location`](super::Location) has:
//! each write is a crash point ([`failpoint`](super::failpoint)), and on local disk each file
//! written is synced (with the folders the write made) before the write returns, so a later
//! write (a Delta log entry) never reaches the disk before the files it names.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt as _, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    UploadPart,
};

use super::failpoint::{self, Op};

/// What every copy of a [`Guarded`] store shares.
#[derive(Debug)]
struct Shared {
    inner: Arc<dyn ObjectStore>,
    /// The location as shown (`failpoint` logs name writes by it).
    display: String,
    /// The object-path prefix of the location in `inner`, left out of the names logged.
    prefix: Path,
    /// On local disk: the folder `inner`'s paths are relative to.
    local_base: Option<PathBuf>,
    /// On local disk: the location's folder (syncing climbs no higher), and whether to sync.
    local_root: Option<PathBuf>,
    sync: bool,
    /// Folders known to be on disk.
    durable: Arc<Mutex<HashSet<PathBuf>>>,
}

/// An object store whose writes are crash points and, on local disk, synced.
#[derive(Debug, Clone)]
pub(super) struct Guarded(Arc<Shared>);

impl Guarded {
    /// `inner`, whose paths are relative to local folder `local_base` when it is local disk;
    /// its location's objects are under `prefix`, shown as `display`; `local_root` is the
    /// location's own folder.
    pub(super) fn new(
        inner: Arc<dyn ObjectStore>,
        display: String,
        prefix: Path,
        local: Option<(PathBuf, PathBuf)>,
        sync: bool,
        durable: Arc<Mutex<HashSet<PathBuf>>>,
    ) -> Self {
        let (local_base, local_root) = match local {
            Some((base, root)) => (Some(base), Some(root)),
            None => (None, None),
        };
        Self(Arc::new(Shared {
            inner,
            display,
            prefix,
            local_base,
            local_root,
            sync,
            durable,
        }))
    }
}

impl Shared {
    fn local_file(&self, path: &Path) -> Option<PathBuf> {
        let base = self.local_base.as_ref()?;
        Some(
            path.parts()
                .fold(base.clone(), |p, part| p.join(part.as_ref())),
        )
    }

    /// `path` relative to the location, as the crash points name it.
    fn relative(&self, path: &Path) -> String {
        match path.prefix_match(&self.prefix) {
            Some(parts) => parts
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/"),
            None => path.to_string(),
        }
    }

    /// Syncs a file just written (and the folders the write may have made), or the folder
    /// of a file just removed; nothing off local disk or with syncing off.
    async fn sync(&self, path: &Path, removed: bool) -> object_store::Result<()> {
        let (true, Some(file), Some(root)) =
            (self.sync, self.local_file(path), self.local_root.clone())
        else {
            return Ok(());
        };
        let durable = Arc::clone(&self.durable);
        let synced = tokio::task::spawn_blocking(move || {
            if removed {
                match file.parent() {
                    Some(dir) if dir.exists() => {
                        super::sync_path(dir).map_err(|source| super::StorageError::Sync {
                            path: dir.to_path_buf(),
                            source,
                        })?;
                        failpoint::synced_dir(dir);
                        Ok(())
                    }
                    _ => Ok(()),
                }
            } else {
                super::sync_file_and_folders(&file, &root, &durable)
            }
        })
        .await
        .map_err(|e| object_store::Error::Generic {
            store: "sluice",
            source: Box::new(e),
        })?;
        synced.map_err(|e| object_store::Error::Generic {
            store: "sluice",
            source: Box::new(e),
        })
    }
}

impl std::fmt::Display for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.inner)
    }
}

#[async_trait]
impl ObjectStore for Guarded {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let s = &self.0;
        let file = s.local_file(location);
        let point = failpoint::before(
            Op::Put(file.as_deref()),
            &s.display,
            &s.relative(location),
            None,
        );
        let result = s.inner.put_opts(location, payload, opts).await;
        failpoint::after(point, result.is_ok());
        let done = result?;
        s.sync(location, false).await?;
        Ok(done)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload = self.0.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(GuardedUpload {
            store: self.clone(),
            location: location.clone(),
            upload,
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.0.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.0.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let store = self.clone();
        locations
            .then(move |path| {
                let store = store.clone();
                async move {
                    let path = path?;
                    let s = &store.0;
                    let file = s.local_file(&path);
                    let point = failpoint::before(
                        Op::Delete(file.as_deref()),
                        &s.display,
                        &s.relative(&path),
                        None,
                    );
                    let result = s.inner.delete(&path).await;
                    failpoint::after(point, result.is_ok());
                    result?;
                    s.sync(&path, true).await?;
                    Ok(path)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.inner.list(prefix)
    }

    // Forwarded: a Delta log is read from an offset, which cloud stores list from the server.
    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.0.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let s = &self.0;
        let file = s.local_file(to);
        let point = failpoint::before(Op::Put(file.as_deref()), &s.display, &s.relative(to), None);
        let result = s.inner.copy_opts(from, to, options).await;
        failpoint::after(point, result.is_ok());
        result?;
        s.sync(to, false).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let s = &self.0;
        let (from_file, to_file) = (s.local_file(from), s.local_file(to));
        let point = failpoint::before(
            Op::Rename(from_file.as_deref(), to_file.as_deref()),
            &s.display,
            &s.relative(from),
            Some(&s.relative(to)),
        );
        let result = s.inner.rename_opts(from, to, options).await;
        failpoint::after(point, result.is_ok());
        result?;
        s.sync(to, false).await?;
        s.sync(from, true).await
    }
}

/// A multipart upload whose completion is the write (a crash point, then synced).
#[derive(Debug)]
struct GuardedUpload {
    store: Guarded,
    location: Path,
    upload: Box<dyn MultipartUpload>,
}

#[async_trait]
impl MultipartUpload for GuardedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let s = &self.store.0;
        let file = s.local_file(&self.location);
        let point = failpoint::before(
            Op::Put(file.as_deref()),
            &s.display,
            &s.relative(&self.location),
            None,
        );
        let result = self.upload.complete().await;
        failpoint::after(point, result.is_ok());
        let done = result?;
        s.sync(&self.location, false).await?;
        Ok(done)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.upload.abort().await
    }
}
