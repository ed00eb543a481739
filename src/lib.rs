//! Sluice: a deterministic micro-batch streaming SQL engine on Apache DataFusion.
//!
//! A pipeline (named sources, one SQL query, a sink, a trigger) runs as numbered batches. Each
//! batch is an ordinary DataFusion query over exactly the input its `offsets/N` entry names; the
//! checkpoint records what each batch read and whether it finished, and a batch interrupted by a
//! crash runs again on the same input into a sink that ignores what it already has. See
//! `docs/design.md` for the contract between the parts.

pub mod checkpoint;
pub mod cli;
pub mod digest;
#[cfg(feature = "distributed")]
pub mod distributed;
pub mod driver;
pub mod duration;
pub mod floats;
pub mod format;
pub mod json;
pub mod nexmark;
pub mod ops;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod retry;
pub mod secret;
pub mod sink;
pub mod source;
pub mod state;
pub mod storage;
pub mod vocab;

use checkpoint::BatchId;

/// Everything a command can fail with, and the exit code each maps to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pipeline file is bad.
    #[error(transparent)]
    Pipeline(#[from] pipeline::PipelineError),
    /// The query cannot be planned, or cannot run as a stream.
    #[error("{0}")]
    Plan(#[from] plan::PlanError),
    /// The checkpoint cannot be used.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// A source failed.
    #[error(transparent)]
    Source(#[from] source::SourceError),
    /// The sink failed.
    #[error(transparent)]
    Sink(#[from] sink::SinkError),
    /// Operator state cannot be kept.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// A store failed.
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    /// DataFusion failed while running a batch.
    #[error(
        "{}{source}{}{}",
        batch.map(|b| format!("batch {b}: ")).unwrap_or_default(),
        execution_advice(source),
        found.as_ref().map(|f| format!(". {f}")).unwrap_or_default()
    )]
    Execution {
        /// The batch, when one was running.
        batch: Option<BatchId>,
        /// DataFusion's error.
        source: datafusion::error::DataFusionError,
        /// Where the batch's input holds the value the error quotes (a text a cast could not
        /// read), in words: source, column, file and row.
        found: Option<String>,
    },
    /// The sink failed to take a batch while writing it (its server's refusal, a table gone):
    /// the batch stays planned, and the next run writes it again once the sink takes it.
    #[error(
        "batch {batch}: {source}. The batch stays planned: the next run checks the sink before \
         it writes again, says what to do where it cannot take the batch, and finishes it \
         (writing none of it twice)"
    )]
    SinkFailed {
        /// The batch being written.
        batch: BatchId,
        /// The sink's error.
        source: sink::SinkError,
    },
    /// A pending batch, finished with the pipeline file it was planned with (not the edited
    /// one), failed.
    #[error(
        "pending batch {batch} runs with the pipeline file it was planned with ({planned}), \
         not the edited one, and it failed: {}. The edit takes effect from the next \
         batch; {advice}",
        // The edit may be the `on_error: skip` the hint would advise: the advice says how it
        // comes to apply to this batch.
        source::without_skip_hint(&source.to_string()).trim_end_matches('.')
    )]
    Pending {
        /// The pending batch.
        batch: BatchId,
        /// The stored pipeline file it was planned with.
        planned: String,
        /// What to do to plan it again with the edited file.
        advice: String,
        /// Why it failed.
        source: Box<Error>,
    },
    /// A batch failed on its input (a bad row, a file that does not fit the schema); it stays
    /// planned with the pipeline file it has, so the advice says how an edit comes to apply.
    #[error(
        "{source}. Batch {batch} stays planned with this pipeline file and its input: {advice}"
    )]
    BadRow {
        /// The batch.
        batch: BatchId,
        /// What it failed on.
        source: Box<Error>,
        /// How the batch is planned again with an edited file.
        advice: String,
    },
    /// An error whose advice names a `sluice rewind` that would be refused as things are
    /// (the sink holds the batches and cannot take them back, say): said with the refusal,
    /// which names what else to do.
    #[error("{source}. The rewind it names would be refused now: {refusal}")]
    RewindRefused {
        /// The error, with its advice.
        source: Box<Error>,
        /// The rewind's refusal.
        refusal: String,
    },
    /// A check found a difference (`sluice replay --verify`).
    #[error("{0}")]
    Verify(String),
    /// The command line is bad.
    #[error("{0}")]
    Usage(String),
}

/// What to do where a batch's query failed in a way Sluice can say more of: DataFusion ran out
/// of the memory a batch may take (a hash join's build side or an aggregation that cannot
/// spill), Arrow's checked arithmetic refused a value, or a text value did not read as the
/// type the query cast it to; nothing for any other error.
fn execution_advice(error: &datafusion::error::DataFusionError) -> std::borrow::Cow<'static, str> {
    use datafusion::arrow::error::ArrowError;
    use datafusion::error::DataFusionError;
    match error.find_root() {
        // Arrow's own checked arithmetic (a decimal result past 128 bits) refused a value
        // before Sluice's checks (`plan::overflow`) could name the expression.
        DataFusionError::ArrowError(e, _) if matches!(**e, ArrowError::ArithmeticOverflow(_)) => {
            ". A value the query computes does not fit its type (as a decimal past 38 digits): \
             cast the operands first to double, or to a decimal with fewer digits after the \
             point (`CAST(v AS DECIMAL(38, 2))`), as Spark and DuckDB refuse such a value too"
                .into()
        }
        // A number or a date as much of Europe writes them, which a cast does not read: how
        // to (walk 63: the decimal-comma advice failed on `1.234,56`, and a day-first date had
        // none).
        DataFusionError::ArrowError(e, _)
            if let ArrowError::CastError(text) = &**e
                && let Some(value) = text
                    .strip_prefix("Cannot cast string '")
                    .and_then(|rest| rest.split_once("' to value of "))
                    .filter(|(value, to)| {
                        ((source::local_number(value).is_some() || points_made(value))
                            && !to.starts_with("Date"))
                            || (source::day_first_date(value).is_some() && to.starts_with("Date"))
                    })
                    .map(|(value, _)| value) =>
        {
            match source::day_first_date(value) {
                Some(format) => format!(
                    ". `{value}` is a day-first date, which a cast does not read: convert the \
                     text with `to_date(<column>, '{format}')`"
                ),
                None if points_made(value) => format!(
                    ". `{value}` has more than one point: points between thousands \
                     (`1.234.567`), or a decimal comma made a point with them still in it \
                     (`1.234,56`). Take the thousands separators out first, then make a \
                     decimal comma the point: `CAST(replace(replace(<column>, '.', ''), ',', \
                     '.') AS DECIMAL(p, s))`"
                ),
                None => format!(
                    ". `{value}` is a number written with a decimal comma{}, which a cast \
                     does not read: convert the text with `CAST({} AS DECIMAL(p, s))` (or \
                     `AS DOUBLE`)",
                    match source::local_number(value) {
                        Some(Some(_)) => " and thousands separators",
                        _ => "",
                    },
                    source::local_number_as_sql(value, "<column>")
                ),
            }
            .into()
        }
        // A text column the query used as a time or a number (`date_bin(.., s)`, `s + 1` cast
        // implicitly), with a value that does not read as one.
        DataFusionError::ArrowError(e, _)
            if match &**e {
                ArrowError::ParseError(_) => true,
                ArrowError::CastError(text) => text.starts_with("Cannot cast string"),
                _ => false,
            } =>
        {
            ". A text value the query uses as a time or a number does not read as one (a join \
             key of text against a number is cast to the number): declare the column with its \
             type in the `schema:` of the source or static table it comes from (a row whose \
             value does not fit is then named by its file and line, and skipped and counted \
             under `on_error: skip`; a table's columns are inferred again at each start, so a \
             re-exported table can turn a number column to text), or write `TRY_CAST(c AS \
             <type>)` (`TRY_CAST(c AS TIMESTAMP)`), which gives null for such a value; or \
             leave such rows out before the query uses them, `FROM (SELECT * FROM s WHERE \
             TRY_CAST(c AS INT) IS NOT NULL) s` (with the type it is cast to: `BIGINT` for a \
             bigint), which is the way for a query that keeps state \
             (a join of two streams, an aggregation): there a changed key or column type is a \
             changed state, refused after a rewind, and a changed filter is not"
                .into()
        }
        // A value past the range of the type the query casts it to (walk 98: Arrow's words
        // alone, "Can't cast value 2147483647 to type Int16").
        DataFusionError::ArrowError(e, _) if matches!(&**e, ArrowError::CastError(text) if text.starts_with("Can't cast value")) => {
            ". A value does not fit the type the query casts it to (as PostgreSQL and DuckDB \
             refuse it too): cast to a wider type, or write `TRY_CAST(x AS <type>)`, which gives \
             null for such a value"
                .into()
        }
        // Bytes read as text that are not UTF-8 (walk 101: a Kafka value cast to text, the
        // README's own recipe, failed with a place in Arrow's buffer alone).
        DataFusionError::ArrowError(e, _)
            if matches!(&**e, ArrowError::InvalidArgumentError(text) | ArrowError::CastError(text)
                if text.contains("non UTF-8 data")) =>
        {
            ". A binary value the query reads as text (`CAST(value AS VARCHAR)`, or a text \
             function given it, as `length`) is not UTF-8, so the cast fails, as in PostgreSQL \
             and DuckDB (Spark's puts U+FFFD in its place): write `TRY_CAST(value AS VARCHAR)`, \
             which gives null for such a value, or read its bytes as hex \
             (`encode(value, 'hex')`)"
                .into()
        }
        // Walk 103 (3): an `avg` of decimals whose running sum passed 38 digits, in
        // DataFusion's words alone ("Arithmetic Overflow in AvgAccumulator").
        DataFusionError::Execution(text) if text.contains("Overflow in AvgAccumulator") => {
            ". An `avg` of decimals does not fit the type DataFusion computes it in (of \
             `decimal(p,s)`, `decimal(p+4,s+4)`, at most 38 digits): average a double \
             (`avg(CAST(v AS DOUBLE))`, as DuckDB's `avg` of a decimal is), or a decimal with \
             fewer digits after the point (`avg(CAST(v AS DECIMAL(38, 0)))`)"
                .into()
        }
        // A row whose divisor is zero (a literal zero is refused at planning).
        DataFusionError::ArrowError(e, _) if matches!(**e, ArrowError::DivideByZero) => {
            ". A row of the batch divides by zero, which fails the query as it does in \
             PostgreSQL and Spark (DuckDB gives null): divide by `NULLIF(b, 0)` for null \
             there, or write `CASE WHEN b <> 0 THEN a / b END` (a `WHERE b <> 0` keeps such rows \
             from a division in the SELECT list, but not from one in the same `WHERE ... AND \
             ...`: both sides of an AND may be computed)"
                .into()
        }
        DataFusionError::ResourcesExhausted(_) => format!(". {MEMORY_ADVICE}").into(),
        // A function that refuses a row's value, in DataFusion's words alone (walk 108:
        // `substr(s, 1, strpos(s, ' ') - 1)` failed with "negative count not allowed: -1").
        other if let Some(advice) = refused_value_advice(&other.to_string()) => {
            format!(". {advice}").into()
        }
        _ => "".into(),
    }
}

/// What to do about a batch that ran out of its `memory_limit`, in DataFusion's operators or in
/// a stateful operator's (walk 117: the latter said nothing; DataFusion's own words name its
/// settings, which a pipeline file does not take; `--trigger once` reads all there is).
pub(crate) const MEMORY_ADVICE: &str = "The batch needs more memory than the pipeline's \
     `memory_limit` gives it (by default half of the machine's memory; the `datafusion.*` \
     settings DataFusion's words may name are not a pipeline file's): raise `memory_limit` in \
     the pipeline file and run again, and the batch runs again with it; or read fewer rows a batch \
     (a source's `max_files_per_batch`, `max_rows_per_batch` or `max_records_per_batch`, which \
     a `--trigger once` batch reads past, all there is: `--trigger available-now` keeps them)";

/// What a DataFusion function that fails a batch on a row's value (its error `text`) was
/// given, what other engines give for it, and how to write the call so that it does not
/// fail; `None` for another error.
fn refused_value_advice(text: &str) -> Option<&'static str> {
    const REFUSALS: [(&[&str], &str); 9] = [
        (
            &["negative count not allowed"],
            "`substr(s, start, n)` (or `substring`) was given a negative length `n`, which \
             fails the query as PostgreSQL's does (Spark's gives `''`, DuckDB's the characters \
             before `start`; a length `strpos(s, x) - 1` is -1 where `x` is not in `s`): for \
             Spark's, write `substr(s, start, greatest(n, 0))`",
        ),
        (
            &["field position must not be zero"],
            "`split_part(s, delimiter, n)` was given the position 0 (positions count from 1, \
             from the end where negative), which fails the query as PostgreSQL's and Spark's \
             do (DuckDB's gives `''`): write `CASE WHEN n <> 0 THEN split_part(s, delimiter, n) \
             END`",
        ),
        (
            &["invalid Unicode scalar value"],
            "`chr(n)` was given a number that is no character (negative, a surrogate, past \
             1114111), which fails the query as DuckDB's and PostgreSQL's do (Spark's gives \
             `''` where it is negative): write `CASE WHEN n BETWEEN 1 AND 55295 OR n BETWEEN \
             57344 AND 1114111 THEN chr(n) END`",
        ),
        (
            &["Failed to decode from base64"],
            "`decode(s, 'base64')` was given text that is not base64 (the error names the \
             symbol and its place in the text), which fails the query as DuckDB's \
             `from_base64` does (Spark's `unbase64` passes over what it cannot read); leave \
             such rows out before the query decodes them",
        ),
        (
            &[
                "Overflow happened on FACTORIAL",
                "factorial of a negative number",
            ],
            "`factorial(n)` of a negative `n`, or past 20, has no bigint (Spark's gives null \
             there): write `CASE WHEN n BETWEEN 0 AND 20 THEN factorial(n) END`",
        ),
        (
            &["Month value '", "Day value '"],
            "`make_date(y, m, d)` was given a part out of its range, which fails the query as \
             DuckDB's and PostgreSQL's do (Spark's gives null): for null, write `TRY_CAST(y || \
             '-' || m || '-' || d AS DATE)`",
        ),
        (
            &["Hour value '", "Minute value '", "Second value '"],
            "`make_time(h, mi, s)` was given a part out of its range, which fails the query as \
             DuckDB's and PostgreSQL's do: for null, write `CASE WHEN h BETWEEN 0 AND 23 AND mi \
             BETWEEN 0 AND 59 AND s >= 0 AND s < 60 THEN make_time(h, mi, s) END`",
        ),
        (
            &["Unable to parse date from"],
            "`make_date(y, m, d)` was given a day its month has not (the 31st of a month of 30 \
             days), which fails the query as DuckDB's and PostgreSQL's do (Spark's gives null): \
             for null, write `TRY_CAST(y || '-' || m || '-' || d AS DATE)`",
        ),
        (
            &["step can't be 0"],
            "`range` (or `generate_series`) was given a step of 0, which fails the query as \
             Spark's `sequence` and DuckDB's `range` do: write `CASE WHEN step <> 0 THEN \
             range(start, stop, step) END`",
        ),
    ];
    REFUSALS
        .iter()
        .find(|(needles, _)| needles.iter().any(|needle| text.contains(needle)))
        .map(|(_, advice)| *advice)
}

/// Whether `value` is digits in three or more groups split by points (`1.234.56`): a
/// number whose decimal comma was made a point with its thousands separators still in it.
fn points_made(value: &str) -> bool {
    let groups: Vec<&str> = value.trim_start_matches('-').split('.').collect();
    groups.len() > 2
        && groups
            .iter()
            .all(|g| !g.is_empty() && g.chars().all(|c| c.is_ascii_digit()))
}

impl Error {
    /// [`Error::in_checkpoint`]'s message, where the error itself is still needed (a damaged
    /// entry's error said in its checkpoint's words, not `CHECKPOINT`: walk 84 #5 and audit
    /// 86, in the failure `inspect` shows and in repair's report).
    pub fn shown_in(&self, spec: &str) -> String {
        match self {
            Self::Checkpoint(checkpoint::CheckpointError::Corrupt { file, line, reason })
            | Self::Source(source::SourceError::Checkpoint(
                checkpoint::CheckpointError::Corrupt { file, line, reason },
            )) => checkpoint::CheckpointError::CorruptIn {
                checkpoint: secret::redact_url(spec),
                file: file.clone(),
                line: *line,
                reason: reason.clone(),
            }
            .to_string(),
            other => other.to_string(),
        }
    }

    /// This error with checkpoint `spec` (as the user gave it) named in a damaged entry's
    /// error, so that its advice gives the command to run whole.
    pub fn in_checkpoint(self, spec: &str) -> Self {
        let shown = secret::redact_url(spec);
        match self {
            Self::Checkpoint(checkpoint::CheckpointError::Corrupt { file, line, reason })
            | Self::Source(source::SourceError::Checkpoint(
                checkpoint::CheckpointError::Corrupt { file, line, reason },
            )) => Self::Checkpoint(checkpoint::CheckpointError::CorruptIn {
                checkpoint: shown,
                file,
                line,
                reason,
            }),
            Self::Source(source::SourceError::FileGone {
                file,
                batch,
                checkpoint: None,
            }) => Self::Source(source::SourceError::FileGone {
                file,
                batch,
                checkpoint: Some(shown),
            }),
            Self::Source(source::SourceError::FileChanged {
                file,
                batch,
                change,
                checkpoint: None,
                touch,
            }) => Self::Source(source::SourceError::FileChanged {
                file,
                batch,
                change,
                checkpoint: Some(shown),
                touch,
            }),
            Self::State(state::StateError::Corrupt {
                file,
                reason,
                checkpoint: None,
                sink,
            }) => Self::State(state::StateError::Corrupt {
                file,
                reason,
                checkpoint: Some(shown),
                sink,
            }),
            Self::State(state::StateError::Missing {
                operator,
                version,
                wanted,
                checkpoint: None,
                sink,
            }) => Self::State(state::StateError::Missing {
                operator,
                version,
                wanted,
                checkpoint: Some(shown),
                sink,
            }),
            Self::Sink(sink::SinkError::AlreadyPublished {
                location,
                batch,
                file,
                checkpoint: None,
            }) => Self::Sink(sink::SinkError::AlreadyPublished {
                location,
                batch,
                file,
                checkpoint: Some(shown),
            }),
            Self::Pending {
                batch,
                planned,
                advice,
                source,
            } => Self::Pending {
                batch,
                planned,
                advice,
                source: Box::new(source.in_checkpoint(spec)),
            },
            other => other,
        }
    }

    /// The process exit code: 2 for a bad pipeline or bad arguments, 1 for a failure while
    /// running.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Pipeline(_) | Self::Plan(_) | Self::Usage(_) => 2,
            Self::Source(
                source::SourceError::Config { .. } | source::SourceError::Table { .. },
            ) => 2,
            Self::State(state::StateError::Incompatible { .. }) => 2,
            Self::Storage(storage::StorageError::NoCreateOnly { .. }) => 2,
            // Another pipeline's checkpoint: the arguments or the file name the wrong one.
            Self::Checkpoint(
                checkpoint::CheckpointError::WrongPipeline { .. }
                | checkpoint::CheckpointError::Spark { .. },
            ) => 2,
            // Another run holds the checkpoint: nothing failed, try again later (sysexits.h's
            // EX_TEMPFAIL), which a scheduler can tell from a failure.
            Self::Checkpoint(checkpoint::CheckpointError::InUse { .. }) => 75,
            // A path or URL that names no place Sluice could use: the arguments or the file.
            Self::Storage(
                storage::StorageError::UnknownScheme { .. }
                | storage::StorageError::NotAFolder { .. },
            )
            | Self::Source(source::SourceError::Storage(
                storage::StorageError::UnknownScheme { .. }
                | storage::StorageError::NotAFolder { .. },
            ))
            | Self::Sink(sink::SinkError::Storage(
                storage::StorageError::UnknownScheme { .. }
                | storage::StorageError::NotAFolder { .. },
            )) => 2,
            Self::Sink(
                sink::SinkError::ForeignFolder { .. }
                | sink::SinkError::Retired { .. }
                | sink::SinkError::Config { .. }
                | sink::SinkError::Lost { .. },
            ) => 2,
            Self::Pending { source, .. }
            | Self::BadRow { source, .. }
            | Self::RewindRefused { source, .. } => source.exit_code(),
            _ => 1,
        }
    }
}
