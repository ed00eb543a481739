//! A Spark file sink's log, `<folder>/_spark_metadata/`: which of the folder's data files
//! Spark's batches committed. Spark's file sink writes a batch's files straight into the
//! folder, then commits them by writing the batch's log entry; a batch that failed leaves its
//! files behind, never committed, and is written again under other names. Spark's own readers
//! of such a folder (`MetadataLogFileIndex`, which `spark.read` and `FileStreamSource` use)
//! read only the files the log names, and so does Sluice's files source. Layout (Spark's
//! `FileStreamSinkLog`, a `CompactibleFileStreamLog`):
//!
//! ```text
//!   _spark_metadata/<N>          v1, then one {"path", "size", "isDir", "modificationTime",
//!                                "blockReplication", "blockSize", "action"} per file batch N added
//!   _spark_metadata/<N>.compact  v1, then every file live up to batch N (every
//!                                `spark.sql.streaming.fileSink.log.compactInterval`th batch, 10)
//! ```
//!
//! `action` is `add` or `delete`; `path` is the file's full URI where Spark wrote it
//! (`file:/data/out/part-00000-<uuid>-c000.snappy.parquet`, `s3a://bucket/out/k=1/...`).

use std::collections::BTreeMap;

use crate::storage::{Location, StorageError};

use super::paths::entry_number;

/// The log's folder, below the sink's.
pub const FOLDER: &str = "_spark_metadata";

/// What a Spark sink log holds.
#[derive(Debug, Default)]
pub struct SinkLog {
    /// The entries read, `(batch, file)` with the file relative to the sink's folder, in batch
    /// order (a batch's `N.compact` after its `N`, which it folds).
    pub entries: Vec<(u64, String)>,
    /// The batches whose entry is a compact one.
    pub compact_entries: Vec<u64>,
    /// The files live now (added and not deleted): the logged path, and its size in bytes.
    pub live: BTreeMap<String, u64>,
    /// Per batch (not compact entries): the files it added and their bytes.
    pub per_batch: BTreeMap<u64, (usize, u64)>,
}

/// What can go wrong reading the log.
#[derive(Debug, thiserror::Error)]
pub enum SinkLogError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An entry does not parse.
    #[error("Spark's file sink log {file} line {line} does not read ({reason})")]
    Corrupt {
        /// The entry, as the store names it.
        file: String,
        /// The 1-based line at fault.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The JSON lines after `v1` of a Spark log entry `file` (Spark's `HDFSMetadataLog` format,
/// which its checkpoint's logs share); `-` (no offset yet) is `null`.
///
/// Errors: `file` does not start with `v1`, or a line is not JSON (1-based line named).
pub fn entry_lines(file: &str, text: &str) -> Result<Vec<serde_json::Value>, SinkLogError> {
    let corrupt = |line: usize, reason: String| SinkLogError::Corrupt {
        file: file.to_string(),
        line,
        reason,
    };
    let mut lines = text.lines();
    if lines.next() != Some("v1") {
        return Err(corrupt(1, "expected `v1`".into()));
    }
    lines
        .enumerate()
        .map(|(i, line)| match line {
            "-" => Ok(serde_json::Value::Null),
            _ => serde_json::from_str(line).map_err(|e| corrupt(i + 2, e.to_string())),
        })
        .collect()
}

/// The numbered entries (`N`, and `N.compact`) directly in `folder` of `location`, as
/// `(N, path relative to location)`, sorted.
///
/// Errors: the store's, listing.
pub async fn numbered(
    location: &Location,
    folder: &str,
) -> Result<Vec<(u64, String)>, StorageError> {
    let mut out = Vec::new();
    for meta in location.list(folder).await? {
        let relative = location.relative(&meta.location);
        let Some(name) = relative.strip_prefix(&format!("{folder}/")) else {
            continue;
        };
        if name.contains('/') {
            continue;
        }
        let number =
            entry_number(name).or_else(|| name.strip_suffix(".compact").and_then(entry_number));
        if let Some(n) = number {
            out.push((n, relative));
        }
    }
    out.sort();
    Ok(out)
}

/// The log of the Spark file sink whose folder is `location`, or `None` where it has no
/// entry. `whole`: every entry is read (for `per_batch`); otherwise only what the live files
/// need, the newest compact entry and those after it, as Spark's `allFiles` reads.
///
/// Errors: the store's; an entry that does not parse.
pub async fn read(location: &Location, whole: bool) -> Result<Option<SinkLog>, SinkLogError> {
    let mut entries = numbered(location, FOLDER).await?;
    if entries.is_empty() {
        // Spark's sink makes the folder as it starts, and its readers go by the log wherever
        // the folder is, so a log of no entry yet commits no file (the review: a first batch
        // that failed was read). An object store lists no empty folder.
        let made = location
            .local_root()
            .is_some_and(|root| root.join(FOLDER).is_dir());
        return Ok(made.then(SinkLog::default));
    }
    // The newest compact entry holds every file live up to it; later entries add to it.
    let newest_compact = entries
        .iter()
        .filter(|(_, f)| f.ends_with(".compact"))
        .map(|(n, _)| *n)
        .max();
    if !whole && let Some(compact) = newest_compact {
        entries.retain(|(n, f)| *n > compact || (*n == compact && f.ends_with(".compact")));
    }
    let mut log = SinkLog::default();
    for (n, file) in &entries {
        let is_compact = file.ends_with(".compact");
        if is_compact {
            log.compact_entries.push(*n);
        }
        let folded = newest_compact.is_some_and(|c| *n < c || (*n == c && !is_compact));
        let text = location
            .get(&location.path(file))
            .await?
            .map(|b| String::from_utf8_lossy(&b).to_string())
            .unwrap_or_default();
        let shown = format!("{location}/{file}");
        let mut added = (0, 0);
        for line in entry_lines(&shown, &text)? {
            let Some(path) = line.get("path").and_then(|p| p.as_str()) else {
                continue;
            };
            let size = line
                .get("size")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            if !is_compact {
                added.0 += 1;
                added.1 += size;
            }
            if folded {
                continue;
            }
            match line.get("action").and_then(|a| a.as_str()) {
                Some("delete") => {
                    log.live.remove(path);
                }
                _ => {
                    log.live.insert(path.to_string(), size);
                }
            }
        }
        if !is_compact {
            log.per_batch.insert(*n, added);
        }
    }
    log.entries = entries;
    Ok(Some(log))
}

/// The paths a file `logged` by its full URI may have below the sink's folder: every tail of
/// its path (`part-0.parquet`, `day=1/part-0.parquet`, `out/day=1/part-0.parquet`, ...), as
/// the names are on the store (the URI's escapes undone once: Spark escapes a partition
/// value's `:` as `%3A` in the folder's name, which the URI writes `%253A`). A file listed
/// below the folder is the logged one where its path is one of these: read by the tail, a
/// sink folder moved or copied elsewhere since (a bucket copied to local disk) is still read
/// by its log, whatever its own name (`region=eu` too).
pub fn below_folder(logged: &str) -> Vec<String> {
    let path =
        url::Url::parse(logged).map_or_else(|_| logged.to_string(), |u| u.path().to_string());
    let parts: Vec<String> = path
        .split('/')
        .filter(|part| !part.is_empty())
        .map(|part| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    (0..parts.len())
        .map(|start| parts[start..].join("/"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The review: a sink whose own folder is named `region=eu` was read as empty, its
    /// files taken for ones below a partition folder of that name.
    #[test]
    fn a_logged_uri_is_read_by_every_tail_of_its_path() {
        for (logged, below) in [
            (
                "file:///data/out/part-00000-38c2-c000.snappy.parquet",
                "part-00000-38c2-c000.snappy.parquet",
            ),
            (
                "file:/data/out/day=1/part-0.parquet",
                "day=1/part-0.parquet",
            ),
            (
                "s3a://bucket/out/day=1/hour=2/part-0.parquet",
                "day=1/hour=2/part-0.parquet",
            ),
            (
                "file:/data/out/k=a%253Ab/part%201.json",
                "k=a%3Ab/part 1.json",
            ),
            ("/data/out/part-0.json", "part-0.json"),
            ("file:/data/region=eu/part-0.json", "part-0.json"),
        ] {
            let tails = below_folder(logged);
            assert!(tails.contains(&below.to_string()), "{logged}: {tails:?}");
        }
        let tails = below_folder("file:/data/out/day=1/part-0.parquet");
        assert!(!tails.contains(&"day=2/part-0.parquet".to_string()));
    }

    #[tokio::test]
    async fn a_compact_entry_folds_the_ones_before_it_and_deletes_count() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let log = dir.path().join(FOLDER);
        std::fs::create_dir_all(&log).expect("the log folder");
        let line = |path: &str, action: &str| {
            format!(r#"{{"path":"file:/o/{path}","size":10,"isDir":false,"action":"{action}"}}"#)
        };
        let write = |name: &str, lines: &[String]| {
            std::fs::write(log.join(name), format!("v1\n{}\n", lines.join("\n")))
                .expect("an entry written");
        };
        write("0", &[line("a", "add")]);
        write("1", &[line("b", "add")]);
        // The compact entry left `a` out: it was deleted by then.
        write("1.compact", &[line("b", "add")]);
        write("2", &[line("c", "add"), line("b", "delete")]);
        let location = Location::open(&dir.path().display().to_string(), false, false, None)
            .expect("a local folder");
        let newest = read(&location, false).await.expect("read").expect("a log");
        let live: Vec<&str> = newest.live.keys().map(String::as_str).collect();
        assert_eq!(live, ["file:/o/c"]);
        assert_eq!(newest.entries.len(), 2, "{:?}", newest.entries);
        let whole = read(&location, true).await.expect("read").expect("a log");
        assert_eq!(whole.live, newest.live);
        assert_eq!(whole.compact_entries, [1]);
        assert_eq!(whole.per_batch.get(&2), Some(&(2, 20)));
        std::fs::write(log.join("3"), "v2\n").expect("an entry written");
        let err = read(&location, false)
            .await
            .expect_err("v2 does not read")
            .to_string();
        assert!(err.contains("_spark_metadata/3 line 1"), "{err}");
        assert!(
            read(
                &Location::open(&log.display().to_string(), false, false, None)
                    .expect("a local folder"),
                false
            )
            .await
            .expect("read")
            .is_none()
        );
    }
}
