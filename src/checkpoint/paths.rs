//! The one place that names every object in a checkpoint (docs/design.md §2.1).

use super::{BatchId, Epoch};

/// `metadata`: the pipeline id and name, written once.
pub const METADATA: &str = "metadata";
/// `lock`: held by the running driver on local disk.
pub const LOCK: &str = "lock";
/// `lease`: kept by the running driver on an object store (`lease.rs`).
pub const LEASE: &str = "lease";
/// The offsets log folder.
pub const OFFSETS: &str = "offsets";
/// The commits log folder.
pub const COMMITS: &str = "commits";
/// The epochs folder: one create-only entry per run.
pub const EPOCHS: &str = "epochs";
/// The folder of query texts, by fingerprint.
pub const QUERIES: &str = "queries";
/// The folder of pipeline files, by fingerprint.
pub const PIPELINES: &str = "pipelines";
/// A files sink's log folder inside its output folder (not in a checkpoint; named here so a
/// files source can tell that the folder it reads is another pipeline's sink).
pub const SLUICE_DIR: &str = "_sluice";
/// `sink`: where the output of the latest run goes.
pub const SINK: &str = "sink";
/// `rewind`: there while a `sluice rewind` runs (and after one that was cut short).
pub const REWIND: &str = "rewind";
/// The sources' own logs.
pub const SOURCES: &str = "sources";
/// `failure`: how the last run that failed with a batch pending failed (walk 63: a batch
/// failing at every start looked like one waiting to run).
pub const FAILURE: &str = "failure";

/// `offsets/<N>`.
pub fn offsets(batch: BatchId) -> String {
    format!("{OFFSETS}/{}", batch.0)
}

/// `commits/<N>`.
pub fn commits(batch: BatchId) -> String {
    format!("{COMMITS}/{}", batch.0)
}

/// `epochs/<E>`.
pub fn epoch(epoch: Epoch) -> String {
    format!("{EPOCHS}/{}", epoch.0)
}

/// `queries/<fingerprint>.sql`.
pub fn query(fingerprint: &str) -> String {
    format!("{QUERIES}/{fingerprint}.sql")
}

/// `pipelines/<fingerprint>.yaml`.
pub fn pipeline(fingerprint: &str) -> String {
    format!("{PIPELINES}/{fingerprint}.yaml")
}

/// `sources/<name>`, the folder of one source's log.
pub fn source_dir(source: &str) -> String {
    format!("{SOURCES}/{source}")
}

/// The batch or epoch number of a log entry's file name, if it is one.
pub fn entry_number(file_name: &str) -> Option<u64> {
    if file_name.is_empty() || !file_name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    file_name.parse().ok()
}
