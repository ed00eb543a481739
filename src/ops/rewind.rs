//! Rewinding a checkpoint: make batch `N` the last committed batch, taking the later batches
//! back from the sink, the state and the logs, so the next run computes them again.
//!
//! Later batches are taken back newest first, and within a batch the sink's files and the
//! state version go before `commits/N` and `offsets/N`: an interrupted rewind leaves a
//! checkpoint whose newest batch is pending (and runs again), or can simply be repeated.

use crate::Error;
use crate::checkpoint::{BatchId, Checkpoint, CheckpointError, LogListing, paths, take_lock};
use crate::sink::{SinkContext, SinkError};
use crate::state::StateFiles;
use crate::storage::{Location, StorageError};

/// What a rewind did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewound {
    /// The batch that is now the last committed one.
    pub to: BatchId,
    /// The batches taken back, newest first, each with how many sink files it deleted (its
    /// manifest, state version and log entries go with it).
    pub taken_back: Vec<(BatchId, u64)>,
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
    // The pipeline file the newest batch ran with says what each source and sink is.
    let pipeline = stored_pipeline(location, shown, &logs)
        .await?
        .ok_or_else(|| {
            refuse(
                "the checkpoint does not store the pipeline file its newest batch ran with".into(),
            )
        })?;
    for (name, config) in &pipeline.sources {
        config
            .connector()
            .check_forget(name, location, to)
            .await
            .map_err(|e| refuse(e.to_string()))?;
    }
    let ctx = SinkContext {
        pipeline: metadata.id,
        replace: false,
        update: pipeline.output_mode == crate::pipeline::OutputMode::Update,
        part: None,
        create: false,
        sync: true,
        hook: None,
    };
    if !pipeline.sink.connector().keeps_batches() {
        return Err(refuse(format!(
            "its sink is `{}`, which cannot take batches back (what it printed or sent to a \
             topic stays there)",
            pipeline.sink.connector().kind()
        )));
    }
    let main_sink = pipeline.sink.connector().open(&ctx)?;
    let mut late_sinks = Vec::new();
    // A late-rows sink that keeps nothing (the console) has nothing to take back.
    if let Some(late) = pipeline
        .late_rows
        .as_ref()
        .filter(|l| l.connector().keeps_batches())
    {
        for (source, config) in &pipeline.sources {
            if config.watermark.is_none() {
                continue;
            }
            match late.connector().open(&SinkContext {
                part: Some(source),
                ..ctx
            }) {
                Ok(sink) => late_sinks.push(sink),
                // A source without late rows yet has no folder on local disk (an object store
                // has no folders, and opens whatever the prefix).
                Err(SinkError::Storage(StorageError::Open { location, .. }))
                    if !location.contains("://") => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let operators = StateFiles::operators(location).await?;
    for batch in (to.0 + 1..=newest.0).rev().map(BatchId) {
        // The newest batch's sink goes first: a sink that cannot take a batch back says so
        // before anything is deleted.
        let mut deleted = match main_sink.forget_batch(batch).await {
            Err(e @ SinkError::NotSupported { .. }) => return Err(refuse(e.to_string())),
            other => other?,
        };
        for sink in &late_sinks {
            deleted += sink.forget_batch(batch).await?;
        }
        for operator in &operators {
            StateFiles::new(location.clone(), operator)
                .delete_version(batch)
                .await?;
        }
        for (name, config) in &pipeline.sources {
            config
                .connector()
                .forget_batch(name, location, batch)
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

/// The pipeline file the newest committed batch ran with, as the checkpoint stores it.
async fn stored_pipeline(
    location: &Location,
    shown: &str,
    logs: &LogListing,
) -> Result<Option<crate::pipeline::Pipeline>, Error> {
    let Some(&newest) = logs.commits.last() else {
        return Ok(None);
    };
    let Some(fingerprint) = crate::checkpoint::read_commit(location, newest)
        .await?
        .and_then(|c| c.pipeline)
    else {
        return Ok(None);
    };
    crate::driver::stored_pipeline(location, shown, &fingerprint).await
}
