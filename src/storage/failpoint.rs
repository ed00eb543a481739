//! Crash points that crash: a test ends a run for real at a chosen write, optionally as a power
//! loss, and recovers in a fresh process from what a disk would keep.
//!
//! Set in the environment of a `sluice` process (read once; without them a write costs one
//! look at a `OnceLock`):
//!
//! - `SLUICE_CRASH_AT=before:K` or `after:K`: the process aborts just before, or right after,
//!   the K-th write (1-based) made through any [`Location`](super::Location) of the run (a
//!   put, a rename or a delete). `before:K:TEXT` and `after:K:TEXT` count only the writes
//!   whose path contains `TEXT`. "After" is after the store made the write and before Sluice
//!   synced it. Before aborting it prints `sluice: crash point reached: ...` on standard error.
//! - `SLUICE_CRASH_POWER_LOSS=1`: at that crash, the writes to local disk that no sync has
//!   made durable are undone first, as a power loss leaves an ext4 or XFS disk: a file whose
//!   folder was synced but not its bytes comes back empty; a file, rename, delete or new
//!   folder whose folder was not synced since is undone. A missing fsync then shows as lost or
//!   damaged data in the test that crosses it.
//! - `SLUICE_STOP_AT=TEXT`: just before the first write whose description (`op path`, as the
//!   write log shows it) contains `TEXT`, the process stops itself (SIGSTOP, as a long GC pause
//!   or a frozen VM would stop it) after printing `sluice: stop point reached: ...` on
//!   standard error; a test resumes it with SIGCONT.
//! - `SLUICE_WRITE_LOG=FILE`: appends `N op path` for each write, so a test can count a run's
//!   writes and name each crash point.
//!
//! For tests only: nothing here acts unless those variables are set.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Where the crash point is, relative to its write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Before,
    After,
}

#[derive(Debug)]
struct Crash {
    when: When,
    /// 1-based, counting only writes whose path contains `filter`.
    k: u64,
    filter: Option<String>,
}

#[derive(Debug)]
struct Config {
    crash: Option<Crash>,
    power_loss: bool,
    log: Option<Mutex<std::fs::File>>,
    /// `SLUICE_STOP_AT`, until it is reached.
    stop: Mutex<Option<String>>,
    writes: AtomicU64,
    matching: AtomicU64,
    /// Local writes not yet undone by a sync, oldest first (power-loss mode only).
    journal: Mutex<Vec<Undo>>,
}

static CONFIG: OnceLock<Option<Config>> = OnceLock::new();

fn config() -> Option<&'static Config> {
    CONFIG.get_or_init(Config::from_env).as_ref()
}

impl Config {
    fn from_env() -> Option<Self> {
        let crash = std::env::var("SLUICE_CRASH_AT").ok().map(|spec| {
            let mut parts = spec.splitn(3, ':');
            let when = match parts.next() {
                Some("before") => When::Before,
                Some("after") => When::After,
                _ => panic!("SLUICE_CRASH_AT={spec}: expected before:K or after:K[:TEXT]"),
            };
            let k = parts
                .next()
                .and_then(|k| k.parse().ok())
                .filter(|k| *k > 0)
                .unwrap_or_else(|| panic!("SLUICE_CRASH_AT={spec}: K is a number from 1"));
            Crash {
                when,
                k,
                filter: parts.next().map(str::to_string),
            }
        });
        let power_loss = std::env::var_os("SLUICE_CRASH_POWER_LOSS").is_some();
        let log = std::env::var_os("SLUICE_WRITE_LOG").map(|file| {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)
                .unwrap_or_else(|e| panic!("SLUICE_WRITE_LOG {}: {e}", file.display()));
            Mutex::new(file)
        });
        let stop = std::env::var("SLUICE_STOP_AT").ok();
        if crash.is_none() && log.is_none() && stop.is_none() {
            return None;
        }
        Some(Self {
            crash,
            power_loss,
            log,
            stop: Mutex::new(stop),
            writes: AtomicU64::new(0),
            matching: AtomicU64::new(0),
            journal: Mutex::new(Vec::new()),
        })
    }
}

/// A write, as the crash points see it: its path on local disk where it has one.
#[derive(Debug, Clone, Copy)]
pub(super) enum Op<'a> {
    /// A put of an object (a file on local disk).
    Put(Option<&'a Path>),
    /// A rename of `from` to `to`.
    Rename(Option<&'a Path>, Option<&'a Path>),
    /// A delete.
    Delete(Option<&'a Path>),
    /// A write outside every store (a step of a Kafka transaction).
    External,
}

impl Op<'_> {
    fn name(&self) -> &'static str {
        match self {
            Op::Put(_) => "put",
            Op::Rename(..) => "rename",
            Op::Delete(_) => "delete",
            Op::External => "external",
        }
    }
}

/// What undoes one local write, and which syncs have made it durable.
#[derive(Debug)]
enum Undo {
    Put {
        file: PathBuf,
        previous: Option<Vec<u8>>,
        bytes_synced: bool,
        entry_synced: bool,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
        bytes: Vec<u8>,
        previous_to: Option<Vec<u8>>,
        entry_synced: bool,
    },
    Delete {
        file: PathBuf,
        previous: Vec<u8>,
        entry_synced: bool,
    },
    Mkdir {
        dir: PathBuf,
        entry_synced: bool,
    },
}

/// A write that has passed its "before" point.
#[derive(Debug)]
pub(super) struct Pending {
    what: String,
    crash_after: bool,
    undo: Vec<Undo>,
}

/// Called before every write of the location shown as `location`: `path` is the object's
/// path in it (and `to`, a rename's target), for the log and the filter.
pub(super) fn before(op: Op<'_>, location: &str, path: &str, to: Option<&str>) -> Option<Pending> {
    let config = config()?;
    let location = location.trim_end_matches('/');
    let path = match to {
        Some(to) => format!("{location}/{path} -> {location}/{to}"),
        None => format!("{location}/{path}"),
    };
    let n = config.writes.fetch_add(1, Ordering::SeqCst) + 1;
    let what = format!("write {n} ({} {path})", op.name());
    stop_if_asked(config, &format!("{} {path}", op.name()), &what);
    if let Some(log) = &config.log {
        let mut file = log.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(file, "{n} {} {path}", op.name());
    }
    let mut crash_after = false;
    if let Some(crash) = &config.crash
        && crash
            .filter
            .as_ref()
            .is_none_or(|f| path.contains(f.as_str()))
    {
        let m = config.matching.fetch_add(1, Ordering::SeqCst) + 1;
        if m == crash.k {
            match crash.when {
                When::Before => crash_now(config, &format!("before {what}")),
                When::After => crash_after = true,
            }
        }
    }
    let undo = if config.power_loss {
        undo_of(op)
    } else {
        Vec::new()
    };
    Some(Pending {
        what,
        crash_after,
        undo,
    })
}

/// Stops the process (SIGSTOP) at the first write whose description contains
/// `SLUICE_STOP_AT`'s text.
fn stop_if_asked(config: &Config, description: &str, what: &str) {
    let mut stop = lock(&config.stop);
    if stop
        .as_deref()
        .is_some_and(|text| description.contains(text))
    {
        *stop = None;
        drop(stop);
        crate::say!("sluice: stop point reached: before {what}");
        let _ = std::process::Command::new("kill")
            .args(["-STOP", &this_thread()])
            .status();
    }
}

/// This thread's id (`/proc/thread-self` names it), else the process's, as `kill` takes it.
///
/// The stop is sent to this thread's id so that this thread takes it: the kernel hands a
/// stop sent to the process to any one of its threads, which then stops every thread, and
/// until that one ran, this one went on and made the write it was to stop before (seen on a
/// loaded machine: a Delta commit landed while a test took the run for stopped). Sent to
/// this thread's id, the stop is still the whole process's, and this thread, waiting for
/// `kill` to end, takes it as that wait returns.
fn this_thread() -> String {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|link| link.file_name()?.to_str().map(str::to_string))
        .filter(|tid| tid.parse::<u32>().is_ok())
        .unwrap_or_else(|| std::process::id().to_string())
}

/// Crash points around a write made outside every store, such as a step of a Kafka
/// transaction: counted, logged and crashed at as store writes are (`location` and `what`
/// name it, e.g. `kafka://127.0.0.1:9092/out` and `commit batch 3`). Returns what `write`
/// returns.
pub fn external<R>(location: &str, what: &str, write: impl FnOnce() -> R) -> R {
    let point = before(Op::External, location, what, None);
    let result = write();
    after(point, true);
    result
}

/// [`external`] for a write that is a future, such as a PostgreSQL transaction's commit.
pub async fn external_async<F: std::future::Future>(
    location: &str,
    what: &str,
    write: F,
) -> F::Output {
    let point = before(Op::External, location, what, None);
    let result = write.await;
    after(point, true);
    result
}

/// Called after the store made the write (before it is synced); `wrote`: whether it changed
/// anything (a create-only put of an object already there did not).
pub(super) fn after(pending: Option<Pending>, wrote: bool) {
    let (Some(config), Some(pending)) = (config(), pending) else {
        return;
    };
    if config.power_loss && wrote {
        lock(&config.journal).extend(pending.undo);
    }
    if pending.crash_after {
        crash_now(config, &format!("after {}", pending.what));
    }
}

/// `file`'s bytes are on disk.
pub(super) fn synced_file(file: &Path) {
    with_journal(|journal| {
        for undo in journal {
            if let Undo::Put {
                file: f,
                bytes_synced,
                ..
            } = undo
                && f == file
            {
                *bytes_synced = true;
            }
        }
    });
}

/// `dir`'s entries are on disk: what was created, renamed or deleted in it stays so.
pub(super) fn synced_dir(dir: &Path) {
    with_journal(|journal| {
        for undo in journal {
            let (path, synced) = match undo {
                Undo::Put {
                    file, entry_synced, ..
                } => (file, entry_synced),
                Undo::Rename {
                    to, entry_synced, ..
                } => (to, entry_synced),
                Undo::Delete {
                    file, entry_synced, ..
                } => (file, entry_synced),
                Undo::Mkdir { dir, entry_synced } => (dir, entry_synced),
            };
            if path.parent() == Some(dir) {
                *synced = true;
            }
        }
    });
}

fn with_journal(f: impl FnOnce(&mut Vec<Undo>)) {
    if let Some(config) = config().filter(|c| c.power_loss) {
        f(&mut lock(&config.journal));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What undoes `op`, read before it happens: the bytes it replaces or removes, and the
/// folders it creates (outermost first).
fn undo_of(op: Op<'_>) -> Vec<Undo> {
    let new_dirs = |file: &Path| {
        let mut dirs: Vec<Undo> = file
            .ancestors()
            .skip(1)
            .take_while(|d| !d.exists())
            .map(|d| Undo::Mkdir {
                dir: d.to_path_buf(),
                entry_synced: false,
            })
            .collect();
        dirs.reverse();
        dirs
    };
    match op {
        Op::Put(Some(file)) => {
            let mut undo = new_dirs(file);
            undo.push(Undo::Put {
                file: file.to_path_buf(),
                previous: std::fs::read(file).ok(),
                bytes_synced: false,
                entry_synced: false,
            });
            undo
        }
        Op::Rename(Some(from), Some(to)) => {
            let Ok(bytes) = std::fs::read(from) else {
                return Vec::new();
            };
            let mut undo = new_dirs(to);
            undo.push(Undo::Rename {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
                bytes,
                previous_to: std::fs::read(to).ok(),
                entry_synced: false,
            });
            undo
        }
        Op::Delete(Some(file)) => match std::fs::read(file) {
            Ok(previous) => vec![Undo::Delete {
                file: file.to_path_buf(),
                previous,
                entry_synced: false,
            }],
            Err(_) => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn crash_now(config: &Config, what: &str) -> ! {
    let power_loss = if config.power_loss {
        let journal = std::mem::take(&mut *lock(&config.journal));
        let undone = journal.iter().filter(|u| !is_durable(u)).count();
        for undo in journal.into_iter().rev() {
            power_loss(undo);
        }
        format!(" with power loss ({undone} unsynced writes undone)")
    } else {
        String::new()
    };
    crate::say!("sluice: crash point reached: {what}{power_loss}");
    std::process::abort();
}

fn is_durable(undo: &Undo) -> bool {
    match undo {
        Undo::Put {
            bytes_synced,
            entry_synced,
            ..
        } => *bytes_synced && *entry_synced,
        Undo::Rename { entry_synced, .. }
        | Undo::Delete { entry_synced, .. }
        | Undo::Mkdir { entry_synced, .. } => *entry_synced,
    }
}

/// Puts back what a power loss would: best effort, as the process is about to end.
fn power_loss(undo: Undo) {
    let restore = |file: &Path, bytes: Option<&[u8]>| match bytes {
        Some(bytes) => {
            if let Some(parent) = file.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::fs::write(file, bytes);
        }
        None => {
            let _ = std::fs::remove_file(file);
        }
    };
    match undo {
        Undo::Put {
            file,
            previous,
            bytes_synced,
            entry_synced,
        } => {
            if !entry_synced {
                restore(&file, previous.as_deref());
            } else if !bytes_synced {
                restore(&file, Some(&[]));
            }
        }
        Undo::Rename {
            from,
            to,
            bytes,
            previous_to,
            entry_synced,
        } => {
            if !entry_synced {
                restore(&to, previous_to.as_deref());
                restore(&from, Some(&bytes));
            }
        }
        Undo::Delete {
            file,
            previous,
            entry_synced,
        } => {
            if !entry_synced {
                restore(&file, Some(&previous));
            }
        }
        Undo::Mkdir { dir, entry_synced } => {
            if !entry_synced {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}
