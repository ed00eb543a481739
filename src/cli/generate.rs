//! `sluice gen nexmark --events N --out DIR --format json|parquet`: the Nexmark events
//! ([`crate::nexmark`]) as files, one folder per table, so that Spark, Flink or DuckDB read
//! exactly the events a `nexmark` source generates.

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use datafusion::arrow::record_batch::RecordBatch;

use crate::Error;
use crate::nexmark::{Generator, Table};

/// What `sluice gen` writes.
#[derive(Debug, Subcommand)]
pub enum Generated {
    /// The Nexmark benchmark's events: `DIR/person/`, `DIR/auction/`, `DIR/bid/`.
    Nexmark {
        /// How many events (people, auctions and bids together, 1 : 3 : 46).
        #[arg(long)]
        events: u64,
        /// The folder to write into (created; its table folders must not exist yet).
        #[arg(long)]
        out: PathBuf,
        /// The file format.
        #[arg(long, value_enum, default_value = "json")]
        format: GenFormat,
        /// The seed of the events' random streams.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Events per second of event time (from 2015-07-15T00:00:00Z).
        #[arg(long, default_value_t = 10_000)]
        events_per_second: u64,
        /// Events per file (each table's files cover the same event ranges).
        #[arg(long, default_value_t = 1_000_000)]
        events_per_file: u64,
    },
}

/// The format of generated files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenFormat {
    /// JSON lines (`.json`), times as `YYYY-MM-DDTHH:MM:SS`, with `.sss` where the
    /// milliseconds are not zero (as Arrow writes them).
    Json,
    /// Parquet (`.parquet`), times as millisecond timestamps.
    Parquet,
}

pub(super) async fn run(what: Generated) -> Result<(), Error> {
    let Generated::Nexmark {
        events,
        out,
        format,
        seed,
        events_per_second,
        events_per_file,
    } = what;
    if events == 0 || events_per_second == 0 || events_per_file == 0 {
        return Err(Error::Usage(
            "--events, --events-per-second and --events-per-file must be at least 1".into(),
        ));
    }
    let generator = Generator {
        seed,
        events_per_second,
    };
    let io = |path: &Path, e: &dyn std::fmt::Display| {
        Error::Usage(format!("cannot write {}: {e}", path.display()))
    };
    for table in Table::ALL {
        let folder = out.join(table.name());
        if folder.exists() {
            return Err(Error::Usage(format!(
                "{} exists already; write into a new folder (the files would mix with others)",
                folder.display()
            )));
        }
        std::fs::create_dir_all(&folder).map_err(|e| io(&folder, &e))?;
    }
    let parts = events.div_ceil(events_per_file);
    let mut counts = [0usize; 3];
    let mut from = 0;
    let mut part = 0;
    while from < events {
        let to = events.min(from.saturating_add(events_per_file));
        for (i, table) in Table::ALL.into_iter().enumerate() {
            let batches = generator
                .generate(table, from, to, 8192)
                .map_err(|e| Error::Usage(e.to_string()))?;
            counts[i] += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
            let extension = match format {
                GenFormat::Json => "json",
                GenFormat::Parquet => "parquet",
            };
            let path = out
                .join(table.name())
                .join(part_name(part, parts, extension));
            let bytes = encode(table, &batches, format).map_err(|e| io(&path, &e))?;
            // Written aside, then renamed: a reader of the folder never sees half a file.
            let tmp = path.with_extension(format!("{extension}.tmp"));
            std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, &e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io(&path, &e))?;
        }
        from = to;
        part += 1;
    }
    super::emit(&format!(
        "{}: {events} events (seed {seed}, {events_per_second} a second from \
         2015-07-15T00:00:00Z): {} people, {} auctions, {} bids in {part} files per table\n",
        out.display(),
        counts[0],
        counts[1],
        counts[2],
    ));
    Ok(())
}

/// `batches` of `table` as one file's bytes.
fn encode(
    table: Table,
    batches: &[RecordBatch],
    format: GenFormat,
) -> Result<Vec<u8>, datafusion::arrow::error::ArrowError> {
    let mut out = Vec::new();
    match format {
        GenFormat::Json => {
            let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        GenFormat::Parquet => {
            let mut writer =
                datafusion::parquet::arrow::ArrowWriter::try_new(&mut out, table.schema(), None)
                    .map_err(|e| {
                        datafusion::arrow::error::ArrowError::ExternalError(Box::new(e))
                    })?;
            for batch in batches {
                writer.write(batch).map_err(|e| {
                    datafusion::arrow::error::ArrowError::ExternalError(Box::new(e))
                })?;
            }
            writer
                .close()
                .map_err(|e| datafusion::arrow::error::ArrowError::ExternalError(Box::new(e)))?;
        }
    }
    Ok(out)
}

/// The name of file `part` of `parts` (counted from 0): `part-00000.json`, with as many digits
/// as the last part needs (at least 5), so that names sort as the files follow each other
/// (audit 88c: past `part-99999`, `part-100000` sorted before `part-10001`, and a files
/// source, which takes files in name order, read events out of order).
fn part_name(part: u64, parts: u64, extension: &str) -> String {
    let width = parts.saturating_sub(1).to_string().len().max(5);
    format!("part-{part:0width$}.{extension}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_sort_as_the_parts_follow_each_other() {
        assert_eq!(part_name(0, 3, "json"), "part-00000.json");
        assert_eq!(part_name(99_999, 100_000, "json"), "part-99999.json");
        let parts = 100_002;
        let names: Vec<String> = [0, 9_999, 10_004, 99_999, 100_000, 100_001]
            .into_iter()
            .map(|p| part_name(p, parts, "parquet"))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names);
        assert_eq!(names[0], "part-000000.parquet");
    }
}
