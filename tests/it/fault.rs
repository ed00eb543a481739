//! A fault-injecting `ObjectStore` wrapper: counts every write-side operation (put, copy,
//! rename, delete) across all the stores of a run, and can "crash" at the k-th one, either
//! before it happens or right after. A crash makes that operation and every later one fail,
//! as if the process had died there.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use sluice::storage::StoreHook;

/// When to crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashAt {
    /// Never: only count.
    Never,
    /// Fail the k-th write (1-based) before it happens.
    Before(u64),
    /// Let the k-th write happen, then fail it and everything after.
    After(u64),
}

/// Shared counter and crash switch for every store of one run.
#[derive(Debug)]
pub struct Faults {
    crash: CrashAt,
    writes: AtomicU64,
    dead: AtomicBool,
    /// Turns create-only puts into plain overwrites, as a store without conditional puts does.
    ignore_create: bool,
}

impl Faults {
    pub fn new(crash: CrashAt) -> Arc<Self> {
        Arc::new(Self {
            crash,
            writes: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            ignore_create: false,
        })
    }

    /// A store that writes over an object a create-only put should leave alone.
    pub fn ignoring_create_only() -> Arc<Self> {
        Arc::new(Self {
            crash: CrashAt::Never,
            writes: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            ignore_create: true,
        })
    }

    /// Write operations seen so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Whether the run "crashed".
    pub fn crashed(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// A hook that wraps each store of a run.
    pub fn hook(self: &Arc<Self>) -> StoreHook {
        let faults = Arc::clone(self);
        Arc::new(move |inner| {
            Arc::new(FaultStore {
                inner,
                faults: Arc::clone(&faults),
            }) as Arc<dyn ObjectStore>
        })
    }

    fn dead_error(op: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "fault",
            source: format!("injected crash (at {op})").into(),
        }
    }

    fn check_alive(&self, op: &str) -> Result<()> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(Self::dead_error(op));
        }
        Ok(())
    }

    /// Called around a write: `before` returns whether to run it.
    fn before_write(&self, op: &str) -> Result<u64> {
        self.check_alive(op)?;
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if self.crash == CrashAt::Before(n) {
            self.dead.store(true, Ordering::SeqCst);
            return Err(Self::dead_error(op));
        }
        Ok(n)
    }

    fn after_write<T>(&self, n: u64, op: &str, result: Result<T>) -> Result<T> {
        if self.crash == CrashAt::After(n) {
            self.dead.store(true, Ordering::SeqCst);
            return Err(Self::dead_error(op));
        }
        result
    }
}

#[derive(Debug)]
struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    faults: Arc<Faults>,
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fault({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let n = self.faults.before_write("put")?;
        let opts = if self.faults.ignore_create {
            PutOptions {
                mode: object_store::PutMode::Overwrite,
                ..opts
            }
        } else {
            opts
        };
        let result = self.inner.put_opts(location, payload, opts).await;
        self.faults.after_write(n, "put", result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let n = self.faults.before_write("put_multipart")?;
        let result = self.inner.put_multipart_opts(location, opts).await;
        self.faults.after_write(n, "put_multipart", result)
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.faults.check_alive("get")?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.faults.check_alive("get_ranges")?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let faults = Arc::clone(&self.faults);
        let inner = Arc::clone(&self.inner);
        locations
            .then(move |path| {
                let faults = Arc::clone(&faults);
                let inner = Arc::clone(&inner);
                async move {
                    let path = path?;
                    let n = faults.before_write("delete")?;
                    let mut out =
                        inner.delete_stream(futures::stream::iter([Ok(path.clone())]).boxed());
                    let result = match out.next().await {
                        Some(r) => r,
                        None => Ok(path),
                    };
                    faults.after_write(n, "delete", result)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if let Err(e) = self.faults.check_alive("list") {
            return futures::stream::iter([Err(e)]).boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.faults.check_alive("list")?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let n = self.faults.before_write("copy")?;
        let result = self.inner.copy_opts(from, to, options).await;
        self.faults.after_write(n, "copy", result)
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let n = self.faults.before_write("rename")?;
        let result = self.inner.rename_opts(from, to, options).await;
        self.faults.after_write(n, "rename", result)
    }
}
