//! Where Sluice's bytes live: an object store plus a prefix, opened from a local path or a URL.
//!
//! Invariants:
//! - every checkpoint and sink write goes through an [`ObjectStore`], so the same code runs on
//!   local disk, S3, GCS, Azure and in memory;
//! - on local disk, object_store 0.13 writes a temporary file and links it into place but never
//!   syncs; [`Location::sync`] syncs the file, its folder, and each folder the write created up
//!   to one already on disk, so a write counts only once it is on disk (when syncing is on);
//! - tests can wrap every store a run opens (see [`StoreHook`]) to count or fail its operations,
//!   and crash a run for real at any write (see [`failpoint`]).

pub mod failpoint;
mod guarded;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use url::Url;

/// Wraps each object store a run opens; used by tests to inject faults.
pub type StoreHook = Arc<dyn Fn(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> + Send + Sync>;

/// Why a location could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The path or URL is not something Sluice can open.
    #[error("cannot open `{location}`: {reason}")]
    Open {
        /// The path or URL as written.
        location: String,
        /// Why.
        reason: String,
    },
    /// A local path that should be a folder (a checkpoint, a sink's or a source's folder) is a
    /// file, or lies under one.
    #[error("cannot open `{location}`: {file} is a file, not a folder; give a folder")]
    NotAFolder {
        /// The path as written.
        location: String,
        /// The file: the path itself (`it`), or the folder above it that is a file.
        file: String,
    },
    /// The URL's scheme names no store Sluice reads (`hdfs://`).
    #[error(
        "cannot open `{location}`: `{scheme}://` is not a store Sluice reads; use a local path \
         (or file://), s3:// (s3a://), gs://, az:// (abfs://, abfss://, azure://, adl://), \
         http:// or https:// (WebDAV), or memory://"
    )]
    UnknownScheme {
        /// The path or URL as written.
        location: String,
        /// Its scheme.
        scheme: String,
    },
    /// An object-store operation failed.
    #[error("{op} `{path}` failed: {source}{hint}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The object's full path, with its store (`s3://bucket/ckpt/offsets/3`).
        path: String,
        /// The store's error.
        source: Box<object_store::Error>,
        /// What the error means, when Sluice can tell (empty otherwise).
        hint: String,
    },
    /// The store answered with an error of its own (S3's `<Code>`): a bucket that does not
    /// exist, credentials it refused.
    #[error("{op} `{path}` failed: {reason}")]
    Refused {
        /// What was being done.
        op: &'static str,
        /// The object's full path, with its store.
        path: String,
        /// The store's answer, and what to do about it.
        reason: String,
    },
    /// The store asked the cloud's instance metadata service for credentials and got none:
    /// no credentials were given.
    #[error(
        "{op} `{path}` failed: no credentials were found for {store}. Give them in the \
         environment (S3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; GCS: \
         GOOGLE_SERVICE_ACCOUNT or GOOGLE_APPLICATION_CREDENTIALS; Azure: \
         AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_KEY), \
         or run where the cloud's instance metadata service serves them"
    )]
    NoCredentials {
        /// What was being done.
        op: &'static str,
        /// The object's full path, with its store.
        path: String,
        /// The store (`s3://bucket`).
        store: String,
    },
    /// The store writes over an object that a create-only put should have left alone.
    #[error(
        "`{location}` does not refuse a second create-only write of the same object (a \
         conditional put, If-None-Match), so two runs could both write one log entry and each \
         take it for its own. Use a store that refuses it (S3, GCS, Azure, local disk, \
         moto), or set `fencing: external-lock` in the pipeline if something outside Sluice \
         runs one driver at a time"
    )]
    NoCreateOnly {
        /// The location as written.
        location: String,
    },
    /// A local folder holds a file whose name object_store does not take as a path (one with a
    /// control character, a newline say), so the folder cannot be listed.
    #[error(
        "listing `{path}` failed: {reason}; rename that file, or move it out of the folder \
         (a folder is listed whole: nothing in it is read until then)"
    )]
    BadName {
        /// The folder, with its store.
        path: String,
        /// object_store's words, its control characters escaped (`\n`).
        reason: String,
    },
    /// A local folder could not be walked: a symbolic-link loop, a folder that cannot be read.
    #[error("listing `{path}` failed: {what}")]
    Walk {
        /// The folder or link.
        path: PathBuf,
        /// What stopped the walk, with what to do about it.
        what: String,
    },
    /// Syncing a local file to disk failed.
    #[error("syncing `{path}` to disk failed: {source}")]
    Sync {
        /// The local path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// An object store and the prefix under which one checkpoint, source or sink lives.
#[derive(Debug, Clone)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// The folder on local disk, for stores that are local.
    local_root: Option<PathBuf>,
    /// The path or URL as the user wrote it (secrets redacted).
    display: String,
    /// The store's root (`s3://bucket`, a local folder), which object paths are under.
    root: String,
    /// An object store's URL as written (no secret: `url_secret` refuses those), which a
    /// library given this location's store is given too: rebuilt from the root and prefix, it
    /// would lose a port and, for `https://` URLs, the container or bucket in their path.
    url: Option<Url>,
    sync: bool,
    /// Local folders whose own entry in their parent is known to be on disk (synced after they
    /// were created), so syncing a file stops climbing there.
    durable_dirs: Arc<Mutex<HashSet<PathBuf>>>,
    /// What wraps every store opened for this location (fault injection in tests).
    hook: Hook,
}

/// A [`StoreHook`], where one was given (shown by `Debug` only as there or not).
#[derive(Clone, Default)]
struct Hook(Option<StoreHook>);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Some(hook)"
        } else {
            "None"
        })
    }
}

impl Location {
    /// Opens a local path (relative to the working directory) or an object-store URL
    /// (`file://`, `s3://`, `gs://`, `az://`, `memory://`). A local folder is created when
    /// `create` is set; otherwise it must exist.
    pub fn open(
        spec: &str,
        create: bool,
        sync: bool,
        hook: Option<&StoreHook>,
    ) -> Result<Self, StorageError> {
        let shown = crate::secret::redact_url(spec);
        let fail = |reason: String| StorageError::Open {
            location: shown.clone(),
            reason,
        };
        if let Some(why) = crate::secret::url_secret(spec) {
            return Err(fail(why));
        }
        let url = if spec.contains("://") {
            Some(Url::parse(spec).map_err(|e| fail(e.to_string()))?)
        } else {
            None
        };
        let (store, prefix, local_root, root): (Arc<dyn ObjectStore>, Path, Option<PathBuf>, _) =
            match url.as_ref().map(|u| u.scheme()) {
                None | Some("file") => {
                    let dir = match &url {
                        Some(u) => u
                            .to_file_path()
                            .map_err(|()| fail("not a local file URL".into()))?,
                        None => PathBuf::from(spec),
                    };
                    // The path, or the nearest folder above it that is there, is a file.
                    let absolute = std::path::absolute(&dir).unwrap_or_else(|_| dir.clone());
                    if let Some(file) = absolute
                        .ancestors()
                        .find(|d| d.exists())
                        .filter(|d| !d.is_dir())
                    {
                        let file = if file == absolute {
                            "it".to_string()
                        } else {
                            format!("`{}`", file.display())
                        };
                        return Err(StorageError::NotAFolder {
                            location: shown,
                            file,
                        });
                    }
                    if create && !dir.is_dir() {
                        let absolute =
                            std::path::absolute(&dir).map_err(|e| fail(e.to_string()))?;
                        let new: Vec<PathBuf> = absolute
                            .ancestors()
                            .take_while(|d| !d.exists())
                            .map(PathBuf::from)
                            .collect();
                        std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
                        if sync {
                            // Each new folder's entry must survive a power loss too.
                            for folder in &new {
                                if let Some(parent) = folder.parent() {
                                    sync_path(parent).map_err(|e| fail(e.to_string()))?;
                                }
                            }
                        }
                    } else if !dir.is_dir() {
                        return Err(fail(match std::path::absolute(&dir) {
                            // Say where a relative path was looked for.
                            Ok(absolute) if dir.is_relative() => format!(
                                "no such folder ({}: relative paths resolve against the \
                                 folder sluice runs in)",
                                absolute.display()
                            ),
                            _ => "no such folder".into(),
                        }));
                    }
                    let dir = dir.canonicalize().map_err(|e| fail(e.to_string()))?;
                    // Automatic cleanup removes folders emptied by a delete (the sink's staging).
                    let store = LocalFileSystem::new_with_prefix(&dir)
                        .map_err(|e| fail(e.to_string()))?
                        .with_automatic_cleanup(true);
                    let root = dir.display().to_string();
                    (Arc::new(store), Path::default(), Some(dir), root)
                }
                Some("memory") => (
                    Arc::new(InMemory::new()),
                    Path::default(),
                    None,
                    "memory://".to_string(),
                ),
                Some(scheme) => {
                    let url = url.as_ref().expect("the scheme came from this URL");
                    if object_store::ObjectStoreScheme::parse(url).is_err() {
                        return Err(StorageError::UnknownScheme {
                            location: shown,
                            scheme: scheme.to_string(),
                        });
                    }
                    let (store, prefix) = open_cloud(url).map_err(fail)?;
                    // `abfss://container@account...` names its container before the `@`.
                    let user = match url.username() {
                        "" => String::new(),
                        container => format!("{container}@"),
                    };
                    let root = format!("{scheme}://{user}{}", url.host_str().unwrap_or_default());
                    (store, prefix, None, root)
                }
            };
        let store = match hook {
            Some(hook) => hook(store),
            None => store,
        };
        let url = url.filter(|u| !matches!(u.scheme(), "file" | "memory"));
        Ok(Self {
            store,
            prefix,
            local_root,
            display: shown,
            root,
            url,
            sync,
            durable_dirs: Arc::default(),
            hook: Hook(hook.cloned()),
        })
    }

    /// This location as a library that takes a store and a table URL wants it (the Delta
    /// Lake sink's `deltalake`): a store whose paths start at the root of its file system or
    /// bucket, and the URL of this location in it (`file:///abs/folder/`, `s3://bucket/prefix`,
    /// `memory:///`). The store's writes are crash points and, on local disk, synced when this
    /// location syncs, as this location's own writes are.
    ///
    /// Errors: [`StorageError::Open`] where the location has no URL (a local folder whose
    /// path is not valid UTF-8).
    pub fn library_store(&self) -> Result<(Arc<dyn ObjectStore>, Url), StorageError> {
        let fail = |reason: String| StorageError::Open {
            location: self.display.clone(),
            reason,
        };
        let (inner, url, local): (Arc<dyn ObjectStore>, Url, _) = match &self.local_root {
            Some(root) => {
                let url = Url::from_directory_path(root)
                    .map_err(|()| fail("the folder has no file:// URL".into()))?;
                let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
                let store = match &self.hook.0 {
                    Some(hook) => hook(store),
                    None => store,
                };
                let base = PathBuf::from("/");
                (store, url, Some((base, root.clone())))
            }
            None if self.url.is_some() => {
                let mut url = self.url.clone().expect("checked");
                if !url.path().ends_with('/') {
                    let path = format!("{}/", url.path());
                    url.set_path(&path);
                }
                (Arc::clone(&self.store), url, None)
            }
            None => {
                // `memory://` has no bucket.
                let base = match self.root.strip_suffix("://") {
                    Some(scheme) => format!("{scheme}:///"),
                    None => format!("{}/", self.root),
                };
                let text = match self.prefix.as_ref() {
                    "" => base,
                    prefix => format!("{base}{prefix}/"),
                };
                let url = Url::parse(&text).map_err(|e| fail(e.to_string()))?;
                (Arc::clone(&self.store), url, None)
            }
        };
        let prefix = match &self.local_root {
            Some(root) => Path::from_absolute_path(root).map_err(|e| fail(e.to_string()))?,
            None => self.prefix.clone(),
        };
        let store = guarded::Guarded::new(
            inner,
            self.display.clone(),
            prefix,
            local,
            self.sync,
            Arc::clone(&self.durable_dirs),
        );
        Ok((Arc::new(store), url))
    }

    /// The full path of `relative` (slash-separated) under this location.
    /// Names that came from a listing are taken as they are (no second percent-encoding);
    /// names that are not valid object paths are encoded part by part.
    pub fn path(&self, relative: &str) -> Path {
        let relative = relative.trim_matches('/');
        let full = match self.prefix.as_ref() {
            "" => relative.to_string(),
            prefix => format!("{prefix}/{relative}"),
        };
        Path::parse(&full).unwrap_or_else(|_| {
            relative
                .split('/')
                .filter(|s| !s.is_empty())
                .fold(self.prefix.clone(), |p, part| p.join(part))
        })
    }

    /// `path` relative to this location's prefix, slash-separated.
    pub fn relative(&self, path: &Path) -> String {
        match path.prefix_match(&self.prefix) {
            Some(parts) => parts
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/"),
            None => path.to_string(),
        }
    }

    /// The local folder, when the store is local disk.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// On local disk: the files a write killed part-way left under the folder (paths relative
    /// to it, sorted). object_store writes a local file as `NAME#N` and renames it to `NAME`
    /// once whole, and lists no such name, so a killed write's `NAME#N` is never read, only
    /// left. Empty on other stores (their writes are whole or absent).
    pub fn staged_leftovers(&self) -> Vec<String> {
        let Some(root) = &self.local_root else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let mut folders = vec![root.clone()];
        while let Some(folder) = folders.pop() {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                // Not through symbolic links: only what is the folder's own.
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let path = entry.path();
                if kind.is_dir() {
                    folders.push(path);
                } else if kind.is_file()
                    && staged_name(&entry.file_name().to_string_lossy())
                    && let Ok(relative) = path.strip_prefix(root)
                {
                    found.push(relative.to_string_lossy().to_string());
                }
            }
        }
        found.sort();
        found
    }

    /// The file on local disk that holds `path`, when the store is local disk.
    fn local_file(&self, path: &Path) -> Option<PathBuf> {
        let root = self.local_root.as_ref()?;
        Some(
            path.parts()
                .fold(root.clone(), |p, part| p.join(part.as_ref())),
        )
    }

    /// Writes `bytes` to `path`, replacing what is there, and syncs it.
    pub async fn put(&self, path: &Path, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.put_mode(path, bytes, PutMode::Overwrite)
            .await
            .map(|_| ())
    }

    /// Creates `path` with `bytes`; `Ok(false)` when the object already exists.
    pub async fn put_if_absent(&self, path: &Path, bytes: Vec<u8>) -> Result<bool, StorageError> {
        self.put_mode(path, bytes, PutMode::Create).await
    }

    async fn put_mode(
        &self,
        path: &Path,
        bytes: Vec<u8>,
        mode: PutMode,
    ) -> Result<bool, StorageError> {
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        let file = self.local_file(path);
        let point = failpoint::before(
            failpoint::Op::Put(file.as_deref()),
            &self.display,
            &self.relative(path),
            None,
        );
        let result = self
            .store
            .put_opts(path, PutPayload::from(bytes), opts)
            .await;
        failpoint::after(point, result.is_ok());
        match result {
            Ok(_) => {
                self.sync(path).await?;
                Ok(true)
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                // Another process may have crashed right after writing it, before syncing it:
                // this run goes on from it, so it must be on disk too.
                self.sync(path).await?;
                Ok(false)
            }
            Err(source) => Err(self.io_err("writing", path, source)),
        }
    }

    /// Starts writing `path` in parts as they come ([`StreamedPut`]), replacing what is there
    /// once finished: memory holds one part at a time, not the whole object. Nothing is
    /// visible at `path` before [`StreamedPut::finish`], which is the write's one crash point,
    /// as [`Location::put`] is (the parts before it go to a temporary file on local disk, an
    /// unfinished multipart upload on object stores).
    pub fn put_streamed(&self, path: &Path) -> StreamedPut {
        StreamedPut {
            // Parts of 8 MiB (S3's minimum is 5), at most 2 uploading at once: what a file
            // being written holds stays small and fixed, whatever the store's speed.
            writer: Some(
                object_store::buffered::BufWriter::with_capacity(
                    Arc::clone(&self.store),
                    path.clone(),
                    8 << 20,
                )
                .with_max_concurrency(2),
            ),
            location: self.clone(),
            path: path.clone(),
            size: 0,
        }
    }

    /// The object `relative` of a local folder as the store lists it (its size, modification
    /// time and ETag), read from the file system without a request; `None` for another
    /// store, or where the file is not there.
    pub fn local_meta(&self, relative: &str) -> Option<object_store::ObjectMeta> {
        let root = self.local_root()?;
        let meta = std::fs::metadata(root.join(relative)).ok()?;
        Some(local_object_meta(self.path(relative), &meta))
    }

    /// Checks that the store refuses a second create-only write of the same object, with a
    /// probe object under `_sluice_probe/` that it deletes afterwards.
    pub async fn check_create_only(&self) -> Result<(), StorageError> {
        let path = self.path(&format!("_sluice_probe/{}", uuid::Uuid::new_v4()));
        let create = || PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let refused = |e: object_store::Error| match e {
            object_store::Error::NotImplemented { .. }
            | object_store::Error::NotSupported { .. } => Ok(false),
            other => Err(self.io_err(
                "writing a probe (to learn whether the store refuses a second write of a file)",
                &path,
                other,
            )),
        };
        let honoured = match self
            .store
            .put_opts(&path, PutPayload::from_static(b"probe"), create())
            .await
        {
            Ok(_) => match self
                .store
                .put_opts(&path, PutPayload::from_static(b"probe"), create())
                .await
            {
                Err(object_store::Error::AlreadyExists { .. }) => Ok(true),
                Ok(_) => Ok(false),
                Err(e) => refused(e),
            },
            Err(e) => refused(e),
        };
        // The probe's own failure is the one to report (its clean-up would fail the same way),
        // but the clean-up is tried all the same.
        let cleaned = self.delete(&path).await;
        // Probes a killed run left behind (one lives for milliseconds): deleted once they are
        // ten minutes old, so that a folder listed whole does not collect them (walk 75).
        if let Ok(left) = self
            .store
            .list(Some(&self.path("_sluice_probe")))
            .try_collect::<Vec<_>>()
            .await
        {
            let stale = chrono::Utc::now() - chrono::Duration::minutes(10);
            for probe in left.iter().filter(|p| p.last_modified < stale) {
                let _ = self.store.delete(&probe.location).await;
            }
        }
        self.remove_empty_folder("_sluice_probe");
        let honoured = honoured?;
        cleaned?;
        if honoured {
            Ok(())
        } else {
            Err(StorageError::NoCreateOnly {
                location: self.display.clone(),
            })
        }
    }

    /// Reads an object as `options` ask (a range, say), with what the store said of it as it
    /// read it; `Ok(None)` when it does not exist. The store's own error otherwise.
    async fn fetch(
        &self,
        path: &Path,
        options: object_store::GetOptions,
    ) -> Result<Option<(bytes::Bytes, object_store::ObjectMeta)>, object_store::Error> {
        match self.store.get_opts(path, options).await {
            Ok(result) => {
                let meta = result.meta.clone();
                Ok(Some((result.bytes().await?, meta)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a whole object; `Ok(None)` when it does not exist.
    pub async fn get(&self, path: &Path) -> Result<Option<bytes::Bytes>, StorageError> {
        Ok(self.get_with_meta(path).await?.map(|(bytes, _)| bytes))
    }

    /// Reads the first `limit` bytes of an object (all of it where it is no larger), with its
    /// whole size; `Ok(None)` when it does not exist.
    pub async fn get_prefix(
        &self,
        path: &Path,
        limit: u64,
    ) -> Result<Option<(bytes::Bytes, u64)>, StorageError> {
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(0..limit)),
            ..Default::default()
        };
        match self.fetch(path, options).await {
            Ok(read) => Ok(read.map(|(bytes, meta)| (bytes, meta.size))),
            Err(e) => {
                // A range of an empty object is refused by some stores: it is empty. Any
                // other failure is said as it is (not answered by reading all of it).
                match self.store.head(path).await {
                    Ok(meta) if meta.size == 0 => Ok(Some((bytes::Bytes::new(), 0))),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    _ => Err(self.io_err("reading", path, e)),
                }
            }
        }
    }

    /// Reads a whole object with what the store said of it as it read it (size, modification
    /// time, ETag, version); `Ok(None)` when it does not exist.
    pub async fn get_with_meta(
        &self,
        path: &Path,
    ) -> Result<Option<(bytes::Bytes, object_store::ObjectMeta)>, StorageError> {
        self.fetch(path, object_store::GetOptions::default())
            .await
            .map_err(|e| self.io_err("reading", path, e))
    }

    /// The size in bytes of the object at `path` (without reading it); `None` where there is
    /// none.
    pub async fn size_of(&self, path: &Path) -> Result<Option<u64>, StorageError> {
        match self.store.head(path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.io_err("checking", path, e)),
        }
    }

    /// Whether an object exists (without reading it).
    pub async fn exists(&self, path: &Path) -> Result<bool, StorageError> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.io_err("checking", path, e)),
        }
    }

    /// On an object store, whether this location's own path names an object with content: a
    /// file given where a folder (a prefix) is read, which lists as an empty folder. Always
    /// false on local disk, where [`Location::open`] refuses a file as a folder. Best effort:
    /// a store that will not say (a policy that grants reads under the prefix only) and an
    /// empty object (Azure Data Lake's folder, which `head` finds) count as no object.
    pub async fn is_an_object(&self) -> bool {
        self.own_object().await.is_some()
    }

    /// On an object store, the object this location's own path names, where it names one with
    /// content (a file given as the location, as [`Location::is_an_object`] finds it); `None`
    /// on local disk, for a prefix, or where the store will not say.
    pub async fn own_object(&self) -> Option<object_store::ObjectMeta> {
        if self.local_root.is_some() || self.prefix.as_ref().is_empty() {
            return None;
        }
        self.store
            .head(&self.prefix)
            .await
            .ok()
            .filter(|meta| meta.size > 0)
    }

    /// Lists the objects under `relative`, recursively, sorted by path.
    pub async fn list(
        &self,
        relative: &str,
    ) -> Result<Vec<object_store::ObjectMeta>, StorageError> {
        let prefix = self.path(relative);
        let mut items: Vec<_> = match self.store.list(Some(&prefix)).try_collect().await {
            Ok(items) => items,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e @ object_store::Error::InvalidPath { .. }) if self.local_root.is_some() => {
                return Err(StorageError::BadName {
                    path: format!("{}/{prefix}", self.root.trim_end_matches('/')),
                    reason: escaped(&e.to_string()),
                });
            }
            Err(e) => return Err(self.io_err("listing", &prefix, e)),
        };
        // An object store's "folder" (a zero-byte key ending in `/`, as the S3 console's
        // "Create folder" and Hadoop's s3a make one) is listed under the folder's path, where
        // no object is: not an object, as Spark and DuckDB skip it (audit 87: a source logged
        // it as an input file, and every run of its batch then failed, "gone").
        // A folder with objects under it is one without asking; a hidden name (`_SUCCESS`),
        // which readers leave out anyway, is not asked of (the review of audit 87: a HEAD per
        // marker per plan).
        if self.local_root.is_none() && items.iter().any(|meta| meta.size == 0) {
            let folders: std::collections::BTreeSet<String> = items
                .iter()
                .flat_map(|meta| {
                    let path = meta.location.as_ref();
                    path.match_indices('/')
                        .map(|(at, _)| path[..at].to_string())
                        .collect::<Vec<_>>()
                })
                .collect();
            let mut kept = Vec::with_capacity(items.len());
            for meta in items {
                let name = meta.location.filename().unwrap_or_default();
                let marker = meta.size == 0
                    && (folders.contains(meta.location.as_ref())
                        || (!hidden(name)
                            && matches!(
                                self.store.head(&meta.location).await,
                                Err(object_store::Error::NotFound { .. })
                            )));
                if !marker {
                    kept.push(meta);
                }
            }
            items = kept;
        }
        items.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(items)
    }

    /// Lists the objects under this location whose path below it has no part (file or folder
    /// name) that `left_out` leaves out, recursively, sorted by path.
    ///
    /// On local disk a left-out folder is never entered and a left-out file never made a path
    /// of, so what is under a hidden name (a symbolic-link loop, a name object_store does not
    /// take, a producer's temporary file) does not stop the listing; symbolic links are
    /// followed (as object_store does), a dangling one is passed over, and a loop is an error
    /// naming the link; a file reached by several paths through links is listed once (object
    /// store lists it under each): under its own path where that is below this location, else
    /// under the first link in path order. Files that are not
    /// regular files (FIFOs, sockets) are passed over, as
    /// are object_store's own staged `NAME#N` files. Each file's metadata is the walk's own
    /// (one `stat`), as object_store gives it. Other stores list as [`Location::list`].
    ///
    /// # Errors
    /// [`StorageError::BadName`] for a visible name object_store does not take as a path;
    /// [`StorageError::Walk`] for a local folder that cannot be read, or a link loop;
    /// [`StorageError::Io`] when an object store cannot be listed.
    pub async fn list_visible(
        &self,
        left_out: fn(&str) -> bool,
    ) -> Result<Vec<object_store::ObjectMeta>, StorageError> {
        let Some(root) = self.local_root.clone() else {
            let mut items = self.list("").await?;
            items.retain(|meta| !self.relative(&meta.location).split('/').any(left_out));
            return Ok(items);
        };
        let (walked, staged) = tokio::task::spawn_blocking({
            let root = root.clone();
            move || walk_visible(&root, left_out)
        })
        .await
        .map_err(|e| StorageError::Walk {
            path: root.clone(),
            what: format!("the listing stopped: {e}"),
        })??;
        say_staged_left_out(&staged);
        let base = Path::from_absolute_path(&root).map_err(|e| StorageError::BadName {
            path: escaped(&root.display().to_string()),
            reason: escaped(&e.to_string()),
        })?;
        let mut items = Vec::with_capacity(walked.len());
        let linked = walked.iter().any(|(_, _, real)| real.is_some());
        // The real paths of the files reached without a link.
        let direct: std::collections::HashSet<PathBuf> = if linked {
            walked
                .iter()
                .filter(|(_, _, real)| real.is_none())
                .map(|(file, _, _)| file.clone())
                .collect()
        } else {
            Default::default()
        };
        for (file, meta, real) in walked {
            let full = Path::from_absolute_path(&file).map_err(|e| StorageError::BadName {
                path: escaped(&file.display().to_string()),
                reason: escaped(&e.to_string()),
            })?;
            let below = full.prefix_match(&base).map(Path::from_iter);
            items.push((local_object_meta(below.unwrap_or(full), &meta), real));
        }
        items.sort_by(|a, b| a.0.location.cmp(&b.0.location));
        // One file reached by several paths (through symbolic links) is one file: listed
        // once, under its own path where that is below the root, else the first link's.
        if linked {
            let mut seen = std::collections::HashSet::new();
            items.retain(|(_, real)| match real {
                None => true,
                Some(real) => !direct.contains(real) && seen.insert(real.clone()),
            });
        }
        Ok(items.into_iter().map(|(meta, _)| meta).collect())
    }

    /// Deletes an object; a missing object is not an error. The delete is not synced: a
    /// power loss may bring the object back, so nothing may depend on its absence.
    pub async fn delete(&self, path: &Path) -> Result<(), StorageError> {
        let file = self.local_file(path);
        let point = failpoint::before(
            failpoint::Op::Delete(file.as_deref()),
            &self.display,
            &self.relative(path),
            None,
        );
        let result = self.store.delete(path).await;
        failpoint::after(point, result.is_ok());
        if let Some(file) = &file {
            // Automatic cleanup may have removed the folders the delete emptied.
            self.forget_removed_dirs(file);
        }
        match result {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.io_err("deleting", path, e)),
        }
    }

    /// [`Location::delete`], then, on local disk when syncing, syncs the folder it was in, so
    /// that it stays deleted through a power loss (what a rewind takes back must).
    ///
    /// Errors: [`Location::delete`]'s, and [`StorageError::Sync`].
    pub async fn delete_durably(&self, path: &Path) -> Result<(), StorageError> {
        self.delete(path).await?;
        let parts: Vec<_> = path.parts().collect();
        let parent = Path::from_iter(parts[..parts.len().saturating_sub(1)].iter().cloned());
        self.sync_folder(&parent).await
    }

    /// Renames an object, replacing the target, and syncs the target.
    pub async fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        let (from_file, to_file) = (self.local_file(from), self.local_file(to));
        let point = failpoint::before(
            failpoint::Op::Rename(from_file.as_deref(), to_file.as_deref()),
            &self.display,
            &self.relative(from),
            Some(&self.relative(to)),
        );
        let result = self.store.rename(from, to).await;
        failpoint::after(point, result.is_ok());
        if let Some(file) = &from_file {
            self.forget_removed_dirs(file);
        }
        result.map_err(|e| self.io_err("renaming", from, e))?;
        self.sync(to).await
    }

    /// The error of operation `op` on `path`, naming the store; a store that did not answer in
    /// time, or that found no credentials, is said so.
    fn io_err(&self, op: &'static str, path: &Path, source: object_store::Error) -> StorageError {
        // The store's error and its causes (a timeout is a cause of "error sending request").
        let mut text = source.to_string();
        let mut cause = std::error::Error::source(&source);
        while let Some(e) = cause {
            text.push_str(&format!(": {e}"));
            cause = e.source();
        }
        let path = format!("{}/{path}", self.root.trim_end_matches('/'));
        // The URL paths of the clouds' instance metadata services (AWS IMDS, GCE metadata,
        // Azure managed identity), where a store goes for credentials when none were given.
        let metadata_service = [
            "/latest/api/token",
            "/latest/meta-data/",
            "/computeMetadata/",
            "/metadata/identity/oauth2/",
        ]
        .iter()
        .any(|p| text.contains(p));
        if metadata_service && self.local_root.is_none() {
            return StorageError::NoCredentials {
                op,
                path,
                store: self.root.clone(),
            };
        }
        // An S3 error answer (XML): its code and message, not the whole body.
        let tag = |name: &str| {
            let open = format!("<{name}>");
            let start = text.find(&open)? + open.len();
            let end = text[start..].find(&format!("</{name}>"))? + start;
            Some(text[start..end].to_string())
        };
        if let Some(code) = tag("Code") {
            let said = tag("Message").map_or(code.clone(), |m| format!("{code}: {m}"));
            let advice = match code.as_str() {
                "NoSuchBucket" => format!(
                    ". Make the bucket `{}` first, or fix the URL",
                    tag("BucketName").unwrap_or_else(|| self.root.clone())
                ),
                "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "ExpiredToken"
                | "InvalidToken" => ". Check the credentials in the environment \
                     (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and what they \
                     may do in the bucket"
                    .to_string(),
                _ => String::new(),
            };
            return StorageError::Refused {
                op,
                path,
                reason: format!("the store answered {said}{advice}"),
            };
        }
        let plain_http = ["AWS_ENDPOINT", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|e| e.starts_with("http://")))
            && std::env::var_os("AWS_ALLOW_HTTP").is_none();
        let hint = if text.contains("builder error") && plain_http {
            " (the endpoint is plain http://: set AWS_ALLOW_HTTP=true to allow it)".to_string()
        } else if text.contains("Connection refused") || text.contains("connection refused") {
            " (the store refused the connection: check its address, AWS_ENDPOINT say, and that \
             it is running)"
                .to_string()
        } else if self.local_root.is_some()
            && matches!(op, "reading" | "listing" | "checking")
            && (text.contains("Permission denied") || text.contains("Operation not permitted"))
        {
            // Read, not written: the file's (or a folder's above it) read permission.
            " (this user may not read it: its permissions, or those of a folder above it)"
                .to_string()
        } else if self.local_root.is_some()
            && (text.contains("Permission denied")
                || text.contains("Operation not permitted")
                || text.contains("Read-only file system"))
        {
            // The folder the file goes in, or the nearest one above it that is there: the
            // one whose permissions refused (a folder inside the checkpoint may be another
            // owner's than the checkpoint's own).
            let folder = std::path::Path::new(&path)
                .ancestors()
                .skip(1)
                .find(|d| d.is_dir())
                .map_or_else(|| self.root.clone(), |d| d.display().to_string());
            format!(
                " (the folder {folder} cannot be written here: its permissions, an immutable flag \
                 or a read-only file system; Sluice writes its files there)"
            )
        } else if text.contains("No space left on device") {
            format!(" (the disk of {} is full)", self.root)
        } else if text.contains("File system loop found") {
            " (a symbolic link in the folder points to a folder above it: Sluice follows \
             symbolic links, so remove that link or point it elsewhere)"
                .to_string()
        } else if text.contains("timed out") {
            format!(
                " (no answer within {}; SLUICE_STORE_TIMEOUT sets how long to wait)",
                humantime::format_duration(store_timeout_or_default())
            )
        } else if [
            "InvalidContentType",
            "corrupt message",
            "wrong version number",
        ]
        .iter()
        .any(|words| text.contains(words))
        {
            // TLS spoken to a server of plain HTTP (walk 110: said as no server answering).
            " (a server answered, but not in TLS: the endpoint is https://, and the store there \
             speaks plain HTTP; write it http://, and for S3 set AWS_ALLOW_HTTP=true)"
                .to_string()
        } else if text.contains("error sending request") || text.contains("dns error") {
            // Reached no server at all (no route, no name): say which one it tried.
            let endpoint = ["AWS_ENDPOINT", "AWS_ENDPOINT_URL"]
                .iter()
                .find_map(|v| std::env::var(v).ok());
            match endpoint {
                Some(endpoint) => format!(
                    " (no server answered at {endpoint}: check AWS_ENDPOINT and that the store \
                     is running and reachable from here)"
                ),
                None => " (no server answered; AWS_ENDPOINT is not set, so the public AWS \
                         endpoint was tried: for another S3 store (MinIO, a local server), set \
                         AWS_ENDPOINT to its address)"
                    .to_string(),
            }
        } else {
            String::new()
        };
        StorageError::Io {
            op,
            path,
            source: Box::new(source),
            hint,
        }
    }

    /// Drops from the durable folders those above `file` that are gone.
    fn forget_removed_dirs(&self, file: &std::path::Path) {
        let mut durable = self.durable_dirs.lock().unwrap_or_else(|e| e.into_inner());
        if durable.is_empty() {
            return;
        }
        for dir in file.ancestors().skip(1) {
            if durable.contains(dir) && !dir.is_dir() {
                durable.remove(dir);
            }
        }
    }

    /// Removes the folder `relative` and everything in it, on local disk, including what
    /// listing does not show (an unfinished streamed write's temporary `name#N` files); nothing
    /// to do on object stores, where listing shows every object.
    pub fn remove_local_tree(&self, relative: &str) {
        self.remove_local_dir(relative, |d| std::fs::remove_dir_all(d));
    }

    /// Removes the folder `relative` if it is empty, on local disk (object stores have no
    /// folders to remove).
    pub fn remove_empty_folder(&self, relative: &str) {
        // Not empty, or already gone: both fine.
        self.remove_local_dir(relative, |d| std::fs::remove_dir(d));
    }

    /// Removes the local folder `relative` with `remove` and forgets the durable folders under
    /// it; nothing to do on object stores.
    fn remove_local_dir(
        &self,
        relative: &str,
        remove: fn(&std::path::Path) -> std::io::Result<()>,
    ) {
        if let Some(dir) = self.local_file(&self.path(relative))
            && remove(&dir).is_ok()
        {
            self.durable_dirs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|d| !d.starts_with(&dir));
        }
    }

    /// On local disk, when syncing: syncs folder `path` (relative to the location; the root
    /// where empty), so that what was deleted in it stays deleted through a power loss. A
    /// folder that is not there (its last entry deleted, and the folder with it) is made gone
    /// for good by syncing the nearest folder above it that is there.
    ///
    /// Errors: [`StorageError::Sync`] where the folder's `fsync` fails.
    pub async fn sync_folder(&self, path: &Path) -> Result<(), StorageError> {
        if !self.sync {
            return Ok(());
        }
        let (Some(dir), Some(root)) = (self.local_file(path), self.local_root.clone()) else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || {
            // A folder its last delete removed (the store cleans empty folders up): its
            // removal is made durable in the nearest folder above that is there (the review of
            // audit 88b: a `_sluice/manifest/` emptied by a rewind came back whole).
            let mut dir = dir.as_path();
            loop {
                match sync_path(dir) {
                    Ok(()) => {
                        failpoint::synced_dir(dir);
                        return Ok(());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        failpoint::synced_dir(dir);
                        match dir.parent() {
                            Some(parent) if dir != root && parent.starts_with(&root) => {
                                dir = parent;
                            }
                            _ => return Ok(()),
                        }
                    }
                    Err(source) => {
                        return Err(StorageError::Sync {
                            path: dir.to_path_buf(),
                            source,
                        });
                    }
                }
            }
        })
        .await
        .map_err(|e| StorageError::Sync {
            path: PathBuf::from(&self.display),
            source: std::io::Error::other(e),
        })?
    }

    /// Syncs a local object, its folder, and each folder above it that the write may have
    /// created (up to one known to be on disk) to disk; nothing to do on other stores or with
    /// syncing off.
    pub async fn sync(&self, path: &Path) -> Result<(), StorageError> {
        if !self.sync {
            return Ok(());
        }
        let (Some(root), Some(file)) = (self.local_root.clone(), self.local_file(path)) else {
            return Ok(());
        };
        let durable = Arc::clone(&self.durable_dirs);
        tokio::task::spawn_blocking(move || sync_file_and_folders(&file, &root, &durable))
            .await
            .map_err(|e| StorageError::Sync {
                path: PathBuf::from(&self.display),
                source: std::io::Error::other(e),
            })?
    }
}

/// An object written in parts ([`Location::put_streamed`]): on an object store a multipart
/// upload once it outgrows one part, on local disk a temporary file renamed into place.
///
/// Dropped unfinished (a failed batch, a partition stopped because another failed), it
/// aborts its upload, so an object store keeps no unfinished multipart upload.
pub struct StreamedPut {
    /// `None` once finished or aborted.
    writer: Option<object_store::buffered::BufWriter>,
    location: Location,
    path: Path,
    size: u64,
}

impl Drop for StreamedPut {
    fn drop(&mut self) {
        if let (Some(mut writer), Ok(runtime)) =
            (self.writer.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(async move {
                let _ = writer.abort().await;
            });
        }
    }
}

impl StreamedPut {
    fn writer(&mut self) -> &mut object_store::buffered::BufWriter {
        self.writer
            .as_mut()
            .expect("a streamed put is used until finished or aborted")
    }

    /// Appends `bytes`.
    pub async fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StorageError> {
        self.size += bytes.len() as u64;
        match self.writer().put(bytes).await {
            Ok(()) => Ok(()),
            Err(source) => {
                let _ = self.writer().abort().await;
                self.writer = None;
                Err(self.location.io_err("writing", &self.path, source))
            }
        }
    }

    /// Gives up the object: nothing appears at its path (an object store's multipart upload
    /// is aborted).
    pub async fn abort(mut self) {
        if let Some(mut writer) = self.writer.take()
            && let Err(e) = writer.abort().await
        {
            tracing::debug!("aborting the write of {}: {e}", self.path);
        }
    }

    /// Completes the object, syncs it (on local disk) and returns its size in bytes.
    pub async fn finish(mut self) -> Result<u64, StorageError> {
        use tokio::io::AsyncWriteExt;
        let mut writer = self.writer.take().expect("a streamed put is finished once");
        let file = self.location.local_file(&self.path);
        let point = failpoint::before(
            failpoint::Op::Put(file.as_deref()),
            &self.location.display,
            &self.location.relative(&self.path),
            None,
        );
        let result = writer.shutdown().await;
        failpoint::after(point, result.is_ok());
        if let Err(source) = result {
            // Not aborted: a writer whose shutdown began panics if aborted (object_store's
            // `BufWriter`), and its upload's parts are no longer its own to give up. An
            // unfinished multipart upload stays on the store (invisible; a lifecycle rule
            // that aborts incomplete uploads removes it).
            return Err(self.location.io_err(
                "writing",
                &self.path,
                object_store::Error::Generic {
                    store: "streamed write",
                    source: Box::new(source),
                },
            ));
        }
        self.location.sync(&self.path).await?;
        Ok(self.size)
    }
}

/// The location as the user wrote it (its secrets redacted), but for a trailing `/`, so that a
/// file named after it (`{location}/{file}`) reads `in/a.json`, not `in//a.json`; a root (`/`,
/// `file:///`) is shown whole.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let trimmed = self.display.trim_end_matches('/');
        if trimmed.is_empty() || trimmed.ends_with(':') {
            f.write_str(&self.display)
        } else {
            f.write_str(trimmed)
        }
    }
}

/// Syncs `file`, its folder, and the folders above up to `root` or to one in `durable`: a
/// folder the write created is on disk only once its own parent is synced.
fn sync_file_and_folders(
    file: &std::path::Path,
    root: &std::path::Path,
    durable: &Mutex<HashSet<PathBuf>>,
) -> Result<(), StorageError> {
    let err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| StorageError::Sync { path, source }
    };
    sync_path(file).map_err(err(file))?;
    failpoint::synced_file(file);
    let Some(mut dir) = file.parent() else {
        return Ok(());
    };
    sync_path(dir).map_err(err(dir))?;
    failpoint::synced_dir(dir);
    while dir != root && dir.starts_with(root) {
        if durable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(dir)
        {
            break;
        }
        let Some(parent) = dir.parent() else {
            break;
        };
        sync_path(parent).map_err(err(parent))?;
        failpoint::synced_dir(parent);
        durable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dir.to_path_buf());
        dir = parent;
    }
    Ok(())
}

/// `fsync` of a file or folder.
fn sync_path(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all())
}

/// How long one object-store operation may wait without an answer, retries included, unless
/// `SLUICE_STORE_TIMEOUT` says otherwise.
pub const DEFAULT_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long one object-store operation may wait: `SLUICE_STORE_TIMEOUT` (a duration such as
/// `30s` or `2m`), or [`DEFAULT_STORE_TIMEOUT`]. Each request times out after it, and a failed
/// request is retried only while it has not passed since the first, so a store that never
/// answers fails an operation after one to two times this (object_store's own default is
/// three minutes of retries).
///
/// Errors: the variable's value is not a positive duration.
pub fn store_timeout() -> Result<std::time::Duration, String> {
    match std::env::var("SLUICE_STORE_TIMEOUT") {
        Err(_) => Ok(DEFAULT_STORE_TIMEOUT),
        Ok(text) => match crate::duration::parse_duration(text.trim()) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(format!(
                "SLUICE_STORE_TIMEOUT=`{text}` is not a positive duration (say `30s` or `2m`)"
            )),
            Err(e) => Err(format!("SLUICE_STORE_TIMEOUT: {e}")),
        },
    }
}

/// [`store_timeout`], or [`DEFAULT_STORE_TIMEOUT`] where `SLUICE_STORE_TIMEOUT` does not read
/// (the run refuses such a value when it opens a store).
pub fn store_timeout_or_default() -> std::time::Duration {
    store_timeout().unwrap_or(DEFAULT_STORE_TIMEOUT)
}

/// Opens a cloud store from a URL, configured from the environment the way each cloud's own
/// tools are (`AWS_*`, `GOOGLE_*`, `AZURE_*`), with requests and retries bounded by
/// [`store_timeout`] (a request timeout set in the environment, `AWS_TIMEOUT` say, wins).
/// The words by which an error of [`credentials_half_given`] is known (a files source then
/// names no path to fix).
pub(crate) const HALF_GIVEN: &str = " is set and ";

/// A store builder's error `text`, with what to do where it is S3's key id without its
/// secret, or the secret without its id (walk 110: "Missing SecretAccessKey", then "create
/// the folder").
fn credentials_half_given(text: String) -> String {
    let half = |given: &str, missing: &str| {
        format!(
            "{text}: {given}{HALF_GIVEN}{missing} is not; set both (or neither, where the \
             instance's role gives the credentials)"
        )
    };
    if text.contains("Missing SecretAccessKey") {
        half("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    } else if text.contains("Missing AccessKeyId") {
        half("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
    } else {
        text
    }
}

fn open_cloud(url: &Url) -> Result<(Arc<dyn ObjectStore>, Path), String> {
    use object_store::ClientConfigKey;
    use object_store::aws::AmazonS3ConfigKey;
    use object_store::azure::AzureConfigKey;
    use object_store::gcp::GoogleConfigKey;
    let timeout = store_timeout()?;
    let retry = object_store::RetryConfig {
        retry_timeout: timeout,
        ..Default::default()
    };
    let request = humantime::format_duration(timeout).to_string();
    let connect =
        humantime::format_duration(timeout.min(std::time::Duration::from_secs(5))).to_string();
    let prefix = Path::from_url_path(url.path()).map_err(|e| e.to_string())?;
    // Each cloud's builder, from its environment, bounded by the timeout where its own
    // environment variable (`AWS_TIMEOUT`, say) does not set one.
    macro_rules! bounded {
        ($builder:expr, $key:path, $env:literal) => {{
            let mut builder = $builder.with_url(url.as_str()).with_retry(retry);
            for (key, name, value) in [
                (ClientConfigKey::Timeout, "TIMEOUT", &request),
                (ClientConfigKey::ConnectTimeout, "CONNECT_TIMEOUT", &connect),
            ] {
                if std::env::var_os(format!("{}_{name}", $env)).is_none() {
                    builder = builder.with_config($key(key), value);
                }
            }
            Arc::new(
                builder
                    .build()
                    .map_err(|e| credentials_half_given(e.to_string()))?,
            )
        }};
    }
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => bounded!(
            object_store::aws::AmazonS3Builder::from_env(),
            AmazonS3ConfigKey::Client,
            "AWS"
        ),
        "gs" => bounded!(
            object_store::gcp::GoogleCloudStorageBuilder::from_env(),
            GoogleConfigKey::Client,
            "GOOGLE"
        ),
        "az" | "abfs" | "abfss" | "azure" => bounded!(
            object_store::azure::MicrosoftAzureBuilder::from_env(),
            AzureConfigKey::Client,
            "AZURE"
        ),
        _ => {
            let options = [("timeout", &request), ("connect_timeout", &connect)];
            let (store, prefix) =
                object_store::parse_url_opts(url, options).map_err(|e| e.to_string())?;
            return Ok((Arc::from(store), prefix));
        }
    };
    Ok((store, prefix))
}

/// The local folders this process's runs write (checkpoint, sink, late-rows sink), each as
/// its real path with what it is: a source folder's symbolic link into one would feed a run
/// its own output, which the listing refuses ([`walk_visible`]).
static OUTPUT_FOLDERS: Mutex<Vec<(PathBuf, &'static str)>> = Mutex::new(Vec::new());

/// Records `folder` (a path or URL as written; only a local folder counts, made yet or not)
/// as what a run writes, `what` (`"the sink's folder"`).
pub fn register_output_folder(folder: &str, what: &'static str) {
    let path = match folder.strip_prefix("file://") {
        Some(path) => path,
        None if folder.contains("://") => return,
        None => folder,
    };
    // A folder not made yet (a sink before its first batch) is where its nearest existing
    // parent really is, with the rest of the path as written.
    let path = std::path::Path::new(path);
    let mut rest = Vec::new();
    let mut at = path;
    let real = loop {
        if let Ok(real) = std::fs::canonicalize(at) {
            break Some(rest.iter().rev().fold(real, |p, part| p.join(part)));
        }
        match (at.file_name(), at.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                at = if parent.as_os_str().is_empty() {
                    std::path::Path::new(".")
                } else {
                    parent
                };
            }
            _ => break None,
        }
    };
    if let Some(real) = real {
        let mut folders = OUTPUT_FOLDERS.lock().unwrap_or_else(|e| e.into_inner());
        if !folders.iter().any(|(f, _)| *f == real) {
            folders.push((real, what));
        }
    }
}

/// The output folder ([`register_output_folder`]) that real path `file` is in, if any.
fn output_folder_of(file: &std::path::Path) -> Option<(PathBuf, &'static str)> {
    OUTPUT_FOLDERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(folder, _)| file.starts_with(folder))
        .cloned()
}

/// A file the walk found: its path under the root as walked, its metadata, and, where a
/// symbolic link is on the way, the path it really is (else the walked path is).
type Walked = (PathBuf, std::fs::Metadata, Option<PathBuf>);

/// The files under local folder `root` (a canonical path) whose names `left_out` keeps,
/// following symbolic links and not entering left-out folders (see
/// [`Location::list_visible`]).
fn walk_visible(
    root: &std::path::Path,
    left_out: fn(&str) -> bool,
) -> Result<(Vec<Walked>, Vec<PathBuf>), StorageError> {
    use std::os::unix::fs::MetadataExt;
    let walk_err = |path: &std::path::Path, e: std::io::Error| StorageError::Walk {
        path: path.to_path_buf(),
        what: e.to_string(),
    };
    let top = match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => meta,
        Ok(_) => return Ok((Vec::new(), Vec::new())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(walk_err(root, e)),
    };
    // Each folder with the (device, inode) of every folder from the root down to it, so a
    // link back to one of them is seen as the loop it is, and whether a symbolic link is on
    // the way (else a path under the canonical root is the file's real path).
    let mut folders = vec![(
        root.to_path_buf(),
        vec![((top.dev(), top.ino()), root.to_path_buf())],
        false,
    )];
    let mut files = Vec::new();
    let mut staged = Vec::new();
    while let Some((folder, above, linked)) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            // Removed while walking: as if listed a moment later.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(walk_err(&folder, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| walk_err(&folder, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if left_out(&name) {
                continue;
            }
            let path = entry.path();
            let linked = linked || entry.file_type().is_ok_and(|t| t.is_symlink());
            // Through a symbolic link to what it names; a dangling link is passed over.
            let meta = match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                // Links that lead to each other, never to a file.
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(StorageError::Walk {
                        path,
                        what: "this symbolic link leads, through links, back to itself, never \
                               to a file or folder: remove it (or the one it names), point it \
                               elsewhere, or give it a name starting with `.` or `_` so it is \
                               left out"
                            .to_string(),
                    });
                }
                Err(e) => return Err(walk_err(&path, e)),
            };
            if meta.is_dir() {
                let id = (meta.dev(), meta.ino());
                if let Some((_, again)) = above.iter().find(|(seen, _)| *seen == id) {
                    return Err(StorageError::Walk {
                        path,
                        what: format!(
                            "through symbolic links this leads back to `{}`, a folder it is \
                             in, so the folder would never end: remove that link (or the one \
                             on the way), point it elsewhere, or give it a name starting with \
                             `.` or `_` so it is left out",
                            again.display()
                        ),
                    });
                }
                let mut below = above.clone();
                below.push((id, path.clone()));
                folders.push((path, below, linked));
            } else if meta.is_file() && staged_name(&name) {
                // A write in progress is renamed within moments; one left a minute is a
                // file of that name, which the store cannot read (walk 79).
                if meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > std::time::Duration::from_secs(60))
                {
                    staged.push(path);
                }
            } else if meta.is_file() {
                let real = if linked {
                    match std::fs::canonicalize(&path) {
                        Ok(real) => Some(real),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(walk_err(&path, e)),
                    }
                } else {
                    None
                };
                if let Some((folder, what)) = real.as_deref().and_then(output_folder_of) {
                    return Err(StorageError::Walk {
                        path,
                        what: format!(
                            "through a symbolic link this file is in {what}, {}, which the run \
                             writes: read, it would feed the run its own output again at every \
                             batch. Remove the link (or the one on the way), point it \
                             elsewhere, or give it a name starting with `.` or `_` so it is \
                             left out",
                            folder.display()
                        ),
                    });
                }
                files.push((path, meta, real));
            }
        }
    }
    Ok((files, staged))
}

/// What object_store's local store says of a file (its `head` and `list`): size, modification
/// time, and the ETag `{inode:x}-{mtime in µs:x}-{size:x}` (Apache's scheme, object_store
/// 0.13's `local.rs`), so that a file listed here compares equal to the same file read or
/// listed through the store. `local_meta_is_object_store_s` holds the two together.
fn local_object_meta(location: Path, meta: &std::fs::Metadata) -> object_store::ObjectMeta {
    use std::os::unix::fs::MetadataExt;
    let modified = meta.modified().ok();
    let mtime = modified
        .and_then(|m| m.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    object_store::ObjectMeta {
        location,
        last_modified: modified.map(Into::into).unwrap_or_default(),
        size: meta.len(),
        e_tag: Some(format!("{:x}-{mtime:x}-{:x}", meta.ino(), meta.len())),
        version: None,
    }
}

/// Whether a file name is object_store's staged `NAME#N` (the text after the first `#` all
/// digits, `NAME` perhaps empty: object_store 0.13's `is_valid_file_path`): a local write not
/// finished, which object_store never lists nor reads.
fn staged_name(name: &str) -> bool {
    name.split_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A name object_store reads for staged name `name` (`stem#N`): the number before the
/// extension, so that a pattern on it still matches (`b.json#1` is `b-1.json`); `file-N` where
/// there is no stem.
fn readable_name(name: &str) -> String {
    let (stem, n) = name.split_once('#').unwrap_or((name, ""));
    match stem.rsplit_once('.') {
        _ if stem.is_empty() => format!("file-{n}"),
        Some((base, extension)) if !base.is_empty() => format!("{base}-{n}.{extension}"),
        _ => format!("{stem}-{n}"),
    }
}

/// Warns, once a process for each, of files named as object_store names a write in progress
/// (`b#1`, `data.json#2`) and older than that: a file of such a name is not read, as the
/// store refuses its name, so it is left out, and said rather than passed over in silence.
fn say_staged_left_out(files: &[PathBuf]) {
    static SAID: std::sync::Mutex<Option<std::collections::HashSet<PathBuf>>> =
        std::sync::Mutex::new(None);
    if files.is_empty() {
        return;
    }
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    let said = said.get_or_insert_with(Default::default);
    // Quoted for a POSIX shell: the name may hold spaces, `#` and quotes.
    let quoted =
        |path: &std::path::Path| format!("'{}'", path.display().to_string().replace('\'', "'\\''"));
    for file in files {
        if said.insert(file.clone()) {
            let name = file
                .file_name()
                .map(|n| readable_name(&n.to_string_lossy()))
                .unwrap_or_default();
            tracing::warn!(
                "{} is not read: a name that ends in `#` and digits is how the storage library \
                 (object_store) names a file while it is written, and it neither lists nor \
                 reads such a file. Rename it to have it read: `mv -n {} {}`",
                escaped(&file.display().to_string()),
                quoted(file),
                quoted(&file.with_file_name(name))
            );
        }
    }
}

/// `text` with its control characters escaped (`\n`), for a message on one line.
fn escaped(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Whether a file or folder under a source's (or table's) folder is left out, with all below
/// it, by Spark's rule (`shouldFilterOutPathName`): its name starts with `.`, or with `_` but
/// holds no `=` (temporary and metadata files, as Spark's and Hadoop's readers leave
/// `_SUCCESS` and `.crc` files; `_k=1` is a partition folder), or ends with `._COPYING_` (a
/// file `hadoop fs -put` is still copying, renamed when done: audit 91b, read twice).
pub fn hidden(name: &str) -> bool {
    name.starts_with('.')
        || (name.starts_with('_') && !name.contains('='))
        || name.ends_with("._COPYING_")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose multipart uploads fail as they complete, as a store that goes away at
    /// the end of a large write does.
    #[derive(Debug)]
    struct FailingCompletion(Arc<dyn ObjectStore>);

    impl std::fmt::Display for FailingCompletion {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "FailingCompletion({})", self.0)
        }
    }

    #[derive(Debug)]
    struct FailingUpload(Box<dyn object_store::MultipartUpload>);

    #[async_trait::async_trait]
    impl object_store::MultipartUpload for FailingUpload {
        fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
            self.0.put_part(data)
        }

        async fn complete(&mut self) -> object_store::Result<object_store::PutResult> {
            Err(object_store::Error::Generic {
                store: "test",
                source: "connection reset while completing the upload".into(),
            })
        }

        async fn abort(&mut self) -> object_store::Result<()> {
            self.0.abort().await
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for FailingCompletion {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.0.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            let upload = self.0.put_multipart_opts(location, opts).await?;
            Ok(Box::new(FailingUpload(upload)))
        }

        async fn get_opts(
            &self,
            location: &Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.0.get_opts(location, options).await
        }

        async fn get_ranges(
            &self,
            location: &Path,
            ranges: &[std::ops::Range<u64>],
        ) -> object_store::Result<Vec<bytes::Bytes>> {
            self.0.get_ranges(location, ranges).await
        }

        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
            self.0.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.0.list(prefix)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.0.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.0.copy_opts(from, to, options).await
        }

        async fn rename_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::RenameOptions,
        ) -> object_store::Result<()> {
            self.0.rename_opts(from, to, options).await
        }
    }

    /// Walk 47 (3): a store that went away as a large file's upload completed made the run
    /// panic (exit 101, "Already shut down", from aborting a writer whose shutdown had
    /// begun). It is an error naming the file, and nothing appears at its path.
    #[tokio::test]
    async fn a_streamed_write_that_fails_as_it_completes_is_an_error_not_a_panic() {
        let hook: StoreHook =
            Arc::new(|inner| Arc::new(FailingCompletion(inner)) as Arc<dyn ObjectStore>);
        let location =
            Location::open("memory://bucket/out", true, false, Some(&hook)).expect("memory store");
        let path = location.path("part-0.parquet");
        let mut put = location.put_streamed(&path);
        // More than one part (8 MiB), so that the write is a multipart upload.
        for _ in 0..3 {
            put.write(bytes::Bytes::from(vec![7u8; 4 << 20]))
                .await
                .expect("a part");
        }
        let said = put
            .finish()
            .await
            .expect_err("the completion fails")
            .to_string();
        assert!(said.contains("part-0.parquet"), "{said}");
        assert!(!location.exists(&path).await.expect("exists"));
    }

    /// Walk 31 (8): a sink folder that cannot be written (`chattr +i`, a read-only mount) was
    /// said in the store's words ("Generic LocalFileSystem error: Unable to create dir ...:
    /// Operation not permitted"), under "probing". The folder is named as not writable.
    #[test]
    fn a_folder_that_cannot_be_written_is_named_as_such() {
        let dir = tempfile::tempdir().expect("temp dir");
        let location =
            Location::open(dir.path().to_str().expect("utf-8"), false, false, None).expect("open");
        for words in [
            "Operation not permitted",
            "Permission denied",
            "Read-only file system",
        ] {
            let error = object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(std::io::Error::other(format!(
                    "Unable to create dir {}/_sluice_probe: {words}",
                    dir.path().display()
                ))),
            };
            let said = location
                .io_err("writing a probe", &location.path("_sluice_probe/x"), error)
                .to_string();
            assert!(
                said.contains(&format!(
                    "(the folder {} cannot be written here",
                    location.root
                )),
                "{said}"
            );
        }
    }

    /// object_store's error for a local file the OS refused (EACCES).
    fn permission_denied() -> object_store::Error {
        object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "Permission denied (os error 13)",
            )),
        }
    }

    /// Walk 75: probes of runs killed mid-check stayed in `_sluice_probe/` for good. One ten
    /// minutes old goes at the next check; a newer one (another run's, mid-check) stays.
    #[tokio::test]
    async fn a_probe_a_killed_run_left_is_deleted_by_a_later_check() {
        let dir = tempfile::tempdir().expect("temp dir");
        let probes = dir.path().join("_sluice_probe");
        std::fs::create_dir_all(&probes).expect("dirs");
        for (name, age) in [("old", 3600), ("new", 0)] {
            let file = std::fs::File::create(probes.join(name)).expect("probe");
            file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(age))
                .expect("mtime");
        }
        let location =
            Location::open(dir.path().to_str().expect("utf-8"), false, false, None).expect("open");
        location.check_create_only().await.expect("create-only");
        assert!(!probes.join("old").exists(), "the old probe stayed");
        assert!(probes.join("new").exists(), "a new probe went");
    }

    /// Walk 35 (4): a folder inside the checkpoint that refused a write was said as the
    /// checkpoint's own folder; the folder the file goes in is named.
    #[test]
    fn the_folder_that_refused_a_write_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("state/aggregate")).expect("dirs");
        let location =
            Location::open(dir.path().to_str().expect("utf-8"), false, false, None).expect("open");
        let error = permission_denied();
        let said = location
            .io_err(
                "writing",
                &location.path("state/aggregate/7.delta.parquet"),
                error,
            )
            .to_string();
        assert!(
            said.contains(&format!(
                "(the folder {} cannot be written here",
                dir.path().join("state/aggregate").display()
            )),
            "{said}"
        );
    }

    /// Walk 32 (3): an input file this user may not read was said as a folder that "cannot be
    /// written here". A read refused names the read permission.
    #[test]
    fn a_file_that_cannot_be_read_is_not_said_to_be_unwritable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let location =
            Location::open(dir.path().to_str().expect("utf-8"), false, false, None).expect("open");
        let error = permission_denied();
        let said = location
            .io_err("reading", &location.path("in/a.jsonl"), error)
            .to_string();
        assert!(
            said.contains("(this user may not read it: its permissions")
                && !said.contains("cannot be written"),
            "{said}"
        );
    }

    /// What the walk says of a file is what object_store's own `list` and `head` say of it
    /// (the files source compares a file's listing with the one its log holds), names with
    /// spaces, `%` and unicode and a file behind a symbolic link included.
    #[tokio::test]
    async fn local_meta_is_object_store_s() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("sub dir")).expect("dir");
        std::fs::write(dir.path().join("a.json"), "{}\n").expect("file");
        std::fs::write(dir.path().join("sub dir/b %20 é.json"), "{}\n{}\n").expect("file");
        let elsewhere = tempfile::tempdir().expect("temp dir");
        std::fs::write(elsewhere.path().join("c.json"), "{}\n").expect("file");
        std::os::unix::fs::symlink(
            elsewhere.path().join("c.json"),
            dir.path().join("link.json"),
        )
        .expect("link");
        let loc =
            Location::open(dir.path().to_str().expect("utf-8"), false, false, None).expect("open");
        let walked = loc.list_visible(|_| false).await.expect("walk");
        let listed = loc.list("").await.expect("list");
        assert_eq!(walked, listed);
        assert_eq!(walked.len(), 3);
        for meta in &walked {
            let head = loc.store.head(&meta.location).await.expect("head");
            assert_eq!(meta, &head);
        }
    }

    /// A file reached by several paths through symbolic links (a link to a sibling folder, to
    /// a file beside it) is listed once, under its own path; a file only a link reaches is
    /// listed under the link's path.
    #[tokio::test]
    async fn a_file_reached_through_links_is_listed_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("in");
        std::fs::create_dir_all(root.join("a")).expect("dir");
        std::fs::write(root.join("a/x.json"), "{}\n").expect("file");
        std::fs::write(root.join("y.json"), "{}\n").expect("file");
        std::os::unix::fs::symlink(root.join("a"), root.join("b")).expect("link");
        std::os::unix::fs::symlink(root.join("y.json"), root.join("z.json")).expect("link");
        std::os::unix::fs::symlink(root.join("y.json"), root.join("w.json")).expect("link");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).expect("dir");
        std::fs::write(outside.join("o.json"), "{}\n").expect("file");
        std::os::unix::fs::symlink(&outside, root.join("c")).expect("link");
        let loc = Location::open(root.to_str().expect("utf-8"), false, false, None).expect("open");
        let walked = loc.list_visible(|_| false).await.expect("walk");
        let names: Vec<String> = walked.iter().map(|m| loc.relative(&m.location)).collect();
        assert_eq!(names, ["a/x.json", "c/o.json", "y.json"]);
    }

    /// A library given this location's store is given the URL as written: for `https://`
    /// cloud URLs the bucket or container is part of the path, and a port is kept, so that
    /// the library's own prefix is this location's.
    #[tokio::test]
    async fn a_library_is_given_the_url_as_written() {
        for spec in [
            "s3://bucket/tables/t",
            "https://s3.us-east-1.amazonaws.com/bucket/tables/t",
            "https://acct.blob.core.windows.net/cont/tables/t",
            "http://127.0.0.1:8080/dav/t",
        ] {
            let location = Location::open(spec, false, false, None).expect(spec);
            let (_, url) = location.library_store().expect(spec);
            assert_eq!(url.as_str().trim_end_matches('/'), spec);
            let (_, prefix) = object_store::ObjectStoreScheme::parse(&url).expect(spec);
            assert_eq!(prefix, location.path(""), "{spec}");
        }
    }

    #[tokio::test]
    async fn create_only_writes_refuse_to_overwrite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let loc =
            Location::open(dir.path().to_str().expect("utf-8"), false, true, None).expect("open");
        let p = loc.path("offsets/0");
        assert!(loc.put_if_absent(&p, b"one".to_vec()).await.expect("first"));
        assert!(
            !loc.put_if_absent(&p, b"two".to_vec())
                .await
                .expect("second")
        );
        assert_eq!(
            loc.get(&p).await.expect("get").as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(loc.relative(&p), "offsets/0");
        assert!(dir.path().join("offsets/0").is_file());
    }

    #[test]
    fn missing_local_folder_is_an_error_unless_created() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("nope");
        let spec = missing.to_str().expect("utf-8");
        assert!(Location::open(spec, false, false, None).is_err());
        assert!(Location::open(spec, true, false, None).is_ok());
    }
}
