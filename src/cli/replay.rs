//! `sluice replay CHECKPOINT --batch N [--verify]`: the command line of
//! [`crate::ops::replay`], which computes a committed batch again (and verifies it); this
//! module only prints what it found.

use crate::Error;
use crate::checkpoint::BatchId;
use crate::ops::{ReplayOptions, Replayed};

/// How the command was asked to run.
pub(super) struct Args<'a> {
    pub spec: &'a str,
    pub batch: u64,
    pub verify: bool,
    pub pipeline: Option<&'a std::path::Path>,
    pub json: bool,
    pub limit: usize,
}

pub(super) async fn run(args: Args<'_>) -> Result<(), Error> {
    let location = super::open_checkpoint(args.spec)?;
    let options = ReplayOptions {
        verify: args.verify,
        pipeline: args.pipeline.map(std::path::Path::to_path_buf),
        limit: args.limit,
    };
    let batch = BatchId(args.batch);
    let report = crate::ops::replay(&location, args.spec, batch, &options).await?;
    let verified = report.verified;
    finish(report, args.json)?;
    match verified {
        Some(false) => Err(Error::Verify(format!("batch {batch} did not verify"))),
        _ => Ok(()),
    }
}

fn finish(report: Replayed, json: bool) -> Result<(), Error> {
    if json {
        super::emit_json(&report);
        return Ok(());
    }
    let mut text = format!("{} batch {}\n", report.checkpoint, report.batch);
    text.push_str(&format!("  recomputed: {}\n", report.recomputed.describe()));
    if report.verified.is_some() {
        text.push_str(&format!("  committed:  {}\n", report.committed.describe()));
        text.push_str(&format!("  sink:       {}\n", report.sink.describe()));
    }
    for note in &report.notes {
        text.push_str(&format!("{note}\n"));
    }
    for finding in &report.findings {
        text.push_str(&format!("{finding}\n"));
    }
    for (title, table) in &report.tables {
        text.push_str(title);
        text.push('\n');
        if table.num_rows() > 0 {
            let pretty =
                datafusion::arrow::util::pretty::pretty_format_batches(std::slice::from_ref(table))
                    .map_err(|e| Error::Usage(e.to_string()))?;
            text.push_str(&format!("{pretty}\n"));
        }
    }
    match report.verified {
        Some(true) => {
            let known: Vec<&str> = [
                ("the recomputed rows", &report.recomputed),
                ("the commit's hash", &report.committed),
                ("the sink's rows", &report.sink),
            ]
            .into_iter()
            .filter(|(_, side)| side.hash().is_some())
            .map(|(name, _)| name)
            .collect();
            text.push_str(&format!(
                "verified: {} of batch {} agree\n",
                known.join(", "),
                report.batch
            ));
        }
        Some(false) => text.push_str(&format!("NOT VERIFIED: batch {}\n", report.batch)),
        None => {}
    }
    super::emit(&text);
    Ok(())
}
