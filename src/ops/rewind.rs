//! Rewinding a checkpoint: make batch `N` the last committed batch, taking the later batches
//! back from the sink, the state and the logs, so the next run computes them again.
//!
//! Later batches are taken back newest first, and within a batch the sink's files and the
//! state version go before `commits/N` and `offsets/N`: an interrupted rewind leaves a
//! checkpoint whose newest batch is pending (and runs again), or can simply be repeated.

use crate::Error;
use crate::checkpoint::{BatchId, Checkpoint, CheckpointError, LogListing, paths, take_lock};
use crate::format::FileFormat;
use crate::sink::FilesSink;
use crate::state::StateFiles;
use crate::storage::Location;

/// What a rewind did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewound {
    /// The batch that is now the last committed one.
    pub to: BatchId,
    /// The batches taken back, newest first, each with how many sink files it deleted (its
    /// manifest, state version and log entries go with it).
    pub taken_back: Vec<(BatchId, usize)>,
}

/// Rewinds the checkpoint at `location` (shown as `shown` in messages) to batch `to`, under the
/// checkpoint's lock.
///
/// Errors: [`Error::Usage`] naming why the checkpoint cannot be rewound there (not a
/// checkpoint, a sink that cannot take batches back, complete mode, `to` not a retained
/// committed batch, a source log compacted past `to`); storage and checkpoint errors as they
/// come.
pub async fn rewind(location: &Location, shown: &str, to: BatchId) -> Result<Rewound, Error> {
    let metadata = Checkpoint::read_metadata(location).await?.ok_or_else(|| {
        Error::Usage(format!(
            "{shown} is not a Sluice checkpoint (it has no metadata)"
        ))
    })?;
    let _lock = take_lock(location)?;
    let refuse = |why: String| Error::Usage(format!("cannot rewind {shown} to batch {to}: {why}"));
    let sink = Checkpoint::read_sink_record(location).await?.ok_or_else(|| {
        refuse("the checkpoint does not record where its sink is (a run of this Sluice writes `sink`)".into())
    })?;
    if sink.kind != "files" {
        return Err(refuse(format!(
            "its sink is `{}`, which cannot take batches back (printed output stays printed)",
            sink.kind
        )));
    }
    if sink.output_mode == "complete" {
        return Err(refuse(format!(
            "in complete mode the files sink keeps only the latest batch's result table; batch \
             {to}'s files are gone, so the sink cannot be put back to it"
        )));
    }
    let logs = LogListing::read(location).await?;
    let target = to;
    if !logs.commits.contains(&target) || !logs.offsets.contains(&target) {
        return Err(refuse(format!(
            "batch {to} is not a committed batch the checkpoint still holds (retained: {})",
            match (logs.commits.first(), logs.commits.last()) {
                (Some(a), Some(b)) => format!("{a}..={b}"),
                _ => "none".into(),
            }
        )));
    }
    let newest = logs
        .offsets
        .iter()
        .chain(&logs.commits)
        .copied()
        .max()
        .expect("batch `to` exists");
    let mut rewound = Rewound {
        to,
        taken_back: Vec::new(),
    };
    if newest == target {
        return Ok(rewound);
    }
    // The sources' logs must still list each later batch on its own.
    let mut sources = Vec::new();
    for meta in location.list(paths::SOURCES).await? {
        let relative = location.relative(&meta.location);
        let parts: Vec<&str> = relative.split('/').collect();
        if let [_, source, name] = parts.as_slice() {
            if let Some(k) = name.strip_suffix(".compact").and_then(paths::entry_number)
                && k > to.0
            {
                return Err(refuse(format!(
                    "sources/{source}/{k}.compact folds batches after {to} together"
                )));
            }
            if !sources.contains(&source.to_string()) {
                sources.push(source.to_string());
            }
        }
    }
    let path = sink.path.as_deref().unwrap_or_default();
    let format: FileFormat = sink
        .format
        .as_deref()
        .unwrap_or("parquet")
        .parse()
        .map_err(|e: String| refuse(e))?;
    let sink_location = Location::open(path, false, true, None)?;
    let files_sink = FilesSink::new(sink_location, format, metadata.id);
    let late_sinks = late_sinks(location, shown, &logs, metadata.id).await?;
    let operators = StateFiles::operators(location).await?;
    for batch in (to.0 + 1..=newest.0).rev().map(BatchId) {
        let mut deleted = files_sink.forget_batch(batch).await?;
        for sink in &late_sinks {
            deleted += sink.forget_batch(batch).await?;
        }
        for operator in &operators {
            StateFiles::new(location.clone(), operator)
                .delete_version(batch)
                .await?;
        }
        for source in &sources {
            location
                .delete(&location.path(&format!("{}/{}", paths::source_dir(source), batch.0)))
                .await?;
        }
        location
            .delete(&location.path(&paths::commits(batch)))
            .await?;
        location
            .delete(&location.path(&paths::offsets(batch)))
            .await?;
        rewound.taken_back.push((batch, deleted));
    }
    let check = LogListing::read(location).await?;
    if check.commits.last() != Some(&target) {
        return Err(CheckpointError::Inconsistent {
            location: shown.to_string(),
            reason: format!("after the rewind the last commit is not batch {to}"),
        }
        .into());
    }
    Ok(rewound)
}

/// The late-rows sinks (one folder per watermarked source) of the pipeline file the newest
/// batch ran with; none when it names no `late_rows` sink or the checkpoint does not store it.
async fn late_sinks(
    location: &Location,
    spec: &str,
    logs: &LogListing,
    id: uuid::Uuid,
) -> Result<Vec<FilesSink>, Error> {
    let Some(&newest) = logs.commits.last() else {
        return Ok(Vec::new());
    };
    let Some(fingerprint) = crate::checkpoint::read_commit(location, newest)
        .await?
        .and_then(|c| c.pipeline)
    else {
        return Ok(Vec::new());
    };
    let Some(pipeline) = crate::driver::stored_pipeline(location, spec, &fingerprint).await? else {
        return Ok(Vec::new());
    };
    let Some(late) = &pipeline.late_rows else {
        return Ok(Vec::new());
    };
    let Some(format) = late.format else {
        return Ok(Vec::new());
    };
    let mut sinks = Vec::new();
    for (source, config) in &pipeline.sources {
        if config.watermark.is_none() {
            continue;
        }
        let Some(folder) = late.folder_of(source) else {
            continue;
        };
        // A source without late rows yet has no folder (an object store has no folders).
        if !folder.contains("://") && !std::path::Path::new(&folder).is_dir() {
            continue;
        }
        let location = Location::open(&folder, false, true, None)?;
        sinks.push(FilesSink::new(location, format, id));
    }
    Ok(sinks)
}
