//! The command line (docs/design.md §8): `sluice run`, `inspect`, `state`, `replay`, `report`,
//! `rewind`, `repair` and `explain`.

mod explain;
mod generate;
mod inspect;
mod replay;
mod report;
mod rewind;
mod spark;
mod state;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::Error;
use crate::driver::{self, RunOptions};
use crate::pipeline::{Pipeline, Trigger};
use crate::progress::ProgressFormat;

/// Sluice: deterministic micro-batch streaming SQL on Apache DataFusion.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline.
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Override the trigger: `available-now`, `once` or `every <duration>`.
        #[arg(long, value_parser = parse_trigger)]
        trigger: Option<Trigger>,
        /// Override the checkpoint location (path or object-store URL).
        #[arg(long)]
        checkpoint: Option<String>,
        /// How to show progress.
        #[arg(long, value_enum, default_value_t = ProgressFormat::Text)]
        progress: ProgressFormat,
        /// Override where batches run: `local`, or `distributed` over the pipeline's
        /// `engine.workers`.
        #[arg(long, value_parser = parse_engine)]
        engine: Option<crate::pipeline::EngineKind>,
        /// Exit 75 without touching a checkpoint in an object store that another run still
        /// holds (its lease renewed within a minute), instead of taking it over (which fences
        /// that run): for cron. On local disk the lock always does this.
        #[arg(long)]
        skip_if_running: bool,
    },
    /// Show what a checkpoint holds.
    Inspect {
        /// The checkpoint (path or object-store URL).
        checkpoint: String,
        /// Show one batch in detail.
        #[arg(long)]
        batch: Option<u64>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Read a stateful operator's state as a table.
    State {
        /// The checkpoint (path or object-store URL).
        checkpoint: String,
        /// The operator (its folder under `state/`: `aggregate`, `dedup`, `join-left`,
        /// `join-right`, or `<op>-ttl` for a state TTL's stamps). Where there are several,
        /// `aggregate` is the default when there is one (beside the deduplication and TTL
        /// stores that feed it); a join of two streams shows both sides, one after the other
        /// (with `--sql`, choose one); otherwise it must be chosen.
        #[arg(long)]
        operator: Option<String>,
        /// The state as of this batch (default: the last committed one).
        #[arg(long)]
        batch: Option<u64>,
        /// SQL over the table `state` (default: `SELECT * FROM state`).
        #[arg(long)]
        sql: Option<String>,
    },
    /// Compute a committed batch again from the checkpoint and its sources, writing nothing;
    /// with --verify, hold it against the commit's content hash and the sink's rows.
    Replay {
        /// The checkpoint (path or object-store URL).
        checkpoint: String,
        /// The batch to compute again.
        #[arg(long)]
        batch: u64,
        /// Compare the recomputed rows, the hash in commits/N and the rows the sink holds;
        /// exit 1 when they differ.
        #[arg(long)]
        verify: bool,
        /// A pipeline file that says where the sources, tables and sink are now, instead of
        /// the one the batch ran with (stored in the checkpoint), e.g. in a moved or copied
        /// project; the query is still the batch's own.
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Show at most this many rows of each kind.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Write one self-contained HTML page with charts over the checkpoint's batches.
    Report {
        /// The checkpoint (path or object-store URL).
        checkpoint: String,
        /// The HTML file to write.
        #[arg(long)]
        html: PathBuf,
    },
    /// Make batch N the last committed one, taking later batches back from the sink (files, Delta,
    /// or a PostgreSQL table with `batch_column`) and the checkpoint.
    Rewind {
        /// The checkpoint (path or object-store URL).
        checkpoint: String,
        /// The batch to go back to.
        #[arg(long, value_parser = parse_rewind_to, allow_hyphen_values = true)]
        to: u64,
    },
    /// Rename the pipeline a checkpoint belongs to, keeping its batches, state and offsets
    /// (its file's `name:` must then say the new name).
    Rename {
        /// The checkpoint (path or object-store URL).
        checkpoint: String,
        /// The pipeline's new name.
        #[arg(long)]
        to: String,
    },
    /// Fix a damaged checkpoint where that loses and doubles nothing, and say what it did.
    Repair {
        /// The checkpoint (path or object-store URL).
        checkpoint: String,
        /// Say what would be done without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Also drop from the sink's record the output files of committed batches that are
        /// gone, where they cannot be written again (their input is gone too): runs then carry
        /// on without their rows, which are lost.
        #[arg(long)]
        forget_lost_output: bool,
        /// The pipeline file the batches ran with, given from the folder they ran in: stored
        /// in the checkpoint again where its stored copy is gone (and `metadata` rebuilt from
        /// it where that is gone too).
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Show the plan each batch runs, split into its stateless and stateful parts.
    Explain {
        /// The pipeline file.
        pipeline: PathBuf,
    },
    /// Serve as a worker: run the parts of batches that drivers with `engine: distributed`
    /// send (their reads and the work above them), until stopped (Ctrl-C or SIGTERM).
    Worker {
        /// The address to serve on, as HOST:PORT (port 0: any free port; the address served
        /// on is printed).
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: String,
    },
    /// Write generated input as files, so that other engines read exactly the same events.
    Gen {
        #[command(subcommand)]
        what: generate::Generated,
    },
}

fn parse_trigger(s: &str) -> Result<Trigger, String> {
    s.parse()
}

/// `rewind --to`'s batch: a batch number. Before the first batch is no batch a rewind keeps
/// (walk 89: `--to=-1` was "invalid digit found in string").
fn parse_rewind_to(s: &str) -> Result<u64, String> {
    s.trim().parse().map_err(|_| {
        if s.trim().starts_with('-') {
            format!(
                "`{s}` is no batch: a rewind keeps batch N and takes back those after it. To \
                 compute every batch again, start over: give the pipeline a new checkpoint \
                 (`checkpoint:` or `--checkpoint`) and a new, empty sink"
            )
        } else {
            format!("`{s}` is not a batch number (0 or more)")
        }
    })
}

fn parse_engine(s: &str) -> Result<crate::pipeline::EngineKind, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not an engine: `local` or `distributed`"))
}

/// The libraries whose logs stay off unless `SLUICE_LOG` names them in a directive: delta-rs
/// and its kernel log what they also return as errors, which Sluice says in its own words
/// (and notes of their own, such as a merge's metrics).
const QUIET_LIBRARIES: &str = "deltalake_core=off,buoyant_kernel=off,buoyant_kernel_engine=off";

/// Adds the command a mistyped one most likely is (`rnu` for `run`: two letters swapped,
/// which clap's own likeness measure misses in a short word) where clap suggests none.
fn suggest_command(error: &mut clap::Error) {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::InvalidSubcommand
        || error.get(ContextKind::SuggestedSubcommand).is_some()
    {
        return;
    }
    let Some(ContextValue::String(got)) = error.get(ContextKind::InvalidSubcommand) else {
        return;
    };
    let command = <Cli as clap::CommandFactory>::command();
    let names: Vec<&str> = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(clap::Command::get_name)
        .collect();
    let got = got.clone();
    if let Some(near) = crate::vocab::nearest(&got, &names) {
        error.insert(
            ContextKind::SuggestedSubcommand,
            ContextValue::Strings(vec![near.to_string()]),
        );
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(mut e) => {
            suggest_command(&mut e);
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    // A bare level (`SLUICE_LOG=info`) is Sluice's own: the libraries under it (delta-rs,
    // object_store, librdkafka's bindings) stay at `warn`, else their notes drown Sluice's.
    // Directives (`SLUICE_LOG=info,deltalake_core=debug`) are taken as written.
    // A bare word that is no level (`warning`, a typo) would be read as a target's name,
    // and an empty value as no directive: either would hide every warning, in silence. Such
    // a value is said and the default taken (`warning` read as `warn`).
    let raw = std::env::var("SLUICE_LOG").ok();
    let value = raw.as_deref().map(str::trim).unwrap_or_default();
    let bare = !value.contains(['=', ',']);
    let level = match value {
        "" => None,
        "warning" | "WARNING" => Some("warn"),
        v if bare && v.parse::<tracing::level_filters::LevelFilter>().is_ok() => Some(v),
        v if bare => {
            crate::say!(
                "SLUICE_LOG={v}: not a level (error, warn, info, debug, trace) or a list of \
                 directives (`info,deltalake_core=debug`); the default (warn) is used"
            );
            None
        }
        _ => None,
    };
    let from_env = match level {
        // `off` silences everything, the libraries' warnings too.
        Some(level) if level.eq_ignore_ascii_case("off") => {
            tracing_subscriber::EnvFilter::try_new("off").ok()
        }
        // delta-rs and its kernel stay silent as by default (below), a bare level or not:
        // their errors are the ones Sluice says in its own words (walk 61: a merge's retries
        // printed ERROR lines at `info`).
        Some(level) => {
            tracing_subscriber::EnvFilter::try_new(format!("warn,sluice={level},{QUIET_LIBRARIES}"))
                .ok()
        }
        None if bare => None,
        None => match tracing_subscriber::EnvFilter::try_new(value) {
            Ok(filter) => Some(filter),
            Err(e) => {
                crate::say!("SLUICE_LOG={value}: {e}; the default (warn) is used");
                None
            }
        },
    };
    tracing_subscriber::fmt()
        .with_env_filter(from_env.unwrap_or_else(|| {
            // A worker says what it is sent.
            let own = match cli.command {
                Command::Worker { .. } => "sluice=info,",
                _ => "",
            };
            tracing_subscriber::EnvFilter::new(format!("warn,{own}{QUIET_LIBRARIES}"))
        }))
        .with_writer(|| MaskedStderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Planning walks a query's expression trees recursively (sqlparser, DataFusion's
    // analyzers and optimizer): a long `OR` chain or `IN` list of thousands of terms needs a
    // deeper stack than a thread's default 2 to 8 MiB, which would abort the process. The
    // command runs on a thread with a deep one (address space, taken as it is used), and the
    // runtime's threads get more than their default too.
    let command = std::thread::Builder::new()
        .name("sluice".into())
        .stack_size(PLANNING_STACK)
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_stack_size(WORKER_STACK)
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    crate::say!("error: cannot start the runtime: {e}");
                    return 1;
                }
            };
            match runtime.block_on(execute(cli)) {
                Ok(()) => 0,
                Err(e) => {
                    let text = without_backtrace(&e.to_string());
                    let text = crate::secret::masked(&text);
                    crate::say!(
                        "error: {}{}",
                        crate::progress::printable(&text),
                        spill_folder_advice(&text)
                    );
                    e.exit_code()
                }
            }
        });
    match command.map(std::thread::JoinHandle::join) {
        Ok(Ok(code)) => code,
        // A panic has said what it was on standard error.
        Ok(Err(_)) => 101,
        Err(e) => {
            crate::say!("error: cannot start the command's thread: {e}");
            1
        }
    }
}

/// `text` without the backtrace a library error carries where `RUST_BACKTRACE` is set (Delta's
/// kernel keeps one in its errors): numbered frame lines (`   0: name`) and their `at file`
/// lines, which say nothing to a user of the command.
fn without_backtrace(text: &str) -> String {
    let frame = |line: &str| {
        let trimmed = line.trim_start();
        let indented = trimmed.len() < line.len();
        indented
            && (trimmed.starts_with("at ")
                || trimmed
                    .split_once(": ")
                    .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
    };
    if !text
        .lines()
        .any(|l| l.trim_start().starts_with("0: ") && frame(l))
    {
        return text.to_string();
    }
    text.lines()
        .filter(|line| !frame(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The stack of the thread a command runs on (plans its query): 256 MiB of address space.
const PLANNING_STACK: usize = 256 << 20;

/// The stack of each of the runtime's threads (where batches execute): 16 MiB.
const WORKER_STACK: usize = 16 << 20;

/// Where error `text` is of a file in the system's temporary folder (`TMPDIR`, where
/// DataFusion spills a sort, an aggregation or a join past `memory_limit`), what to do: the
/// error names only the file. Empty for any other error.
fn spill_folder_advice(text: &str) -> String {
    let folder = std::env::temp_dir();
    let shown = folder.display().to_string();
    let inside = format!("\"{}/", shown.trim_end_matches('/'));
    if !text.contains("os error") || !text.contains(&inside) {
        return String::new();
    }
    let how = if folder.is_dir() {
        "cannot be written here"
    } else {
        "does not exist"
    };
    format!(
        ". That is the temporary folder ({shown}, from `TMPDIR`), which {how}: a batch's \
         sorts, aggregations and joins spill there past the pipeline's `memory_limit`. Set \
         `TMPDIR` to a folder with room that can be written, and run again (the batch runs \
         again as it was planned)"
    )
}

async fn execute(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Run {
            pipeline,
            trigger,
            checkpoint,
            progress,
            engine,
            skip_if_running,
        } => {
            let pipeline_path = pipeline;
            let mut pipeline = Pipeline::load(&pipeline_path)?;
            if let Some(kind) = engine {
                pipeline
                    .engine
                    .check(kind)
                    .map_err(|e| Error::Usage(format!("--engine {}: {e}", kind.as_str())))?;
                pipeline.engine.kind = kind;
            }
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                // SIGTERM (a service manager) stops after the current batch; Ctrl-C (a person
                // at a terminal) too when that takes at most STOP_GRACE. A second signal, or
                // a Ctrl-C'd batch still running after it, stops at once: the batch in progress
                // is left pending, as after a crash, and the next run finishes it.
                let first = wait_for_signal().await;
                let first_at = std::time::Instant::now();
                let _ = stop_tx.send(true);
                crate::progress::clear_live_line();
                // Standard error may be gone (a closed terminal): said without a panic.
                use std::io::Write as _;
                let grace = match first {
                    Signal::Interrupt => {
                        let _ = writeln!(
                            std::io::stderr(),
                            "stopping after the current batch (Ctrl-C); if it has not ended \
                             within {} s, or at a second Ctrl-C, stopping at once",
                            STOP_GRACE.as_secs()
                        );
                        STOP_GRACE
                    }
                    Signal::Terminate => {
                        let _ = writeln!(
                            std::io::stderr(),
                            "stopping after the current batch (SIGTERM received)"
                        );
                        std::time::Duration::MAX
                    }
                };
                if first == Signal::Terminate {
                    // Outside a batch's computing and commit (connecting, retrying a server
                    // that does not answer) stopping loses nothing: a run that has not stopped
                    // by itself within STOP_GRACE of that stops then, with exit 0, as between
                    // batches.
                    let tick = std::time::Duration::from_millis(100);
                    let mut outside = std::time::Duration::ZERO;
                    let second = wait_for_signal();
                    tokio::pin!(second);
                    loop {
                        tokio::select! {
                            signal = &mut second => {
                                // GNU `timeout` sends SIGTERM to the run and then to its
                                // process group, so one stop can come twice (walk 99: exit
                                // 130 one time in twenty): a second within SAME_STOP is the
                                // first's.
                                if signal == Signal::Terminate && first_at.elapsed() < SAME_STOP {
                                    second.set(wait_for_signal());
                                    continue;
                                }
                                break;
                            }
                            _ = tokio::time::sleep(tick) => {}
                        }
                        outside = if crate::driver::in_batch() {
                            std::time::Duration::ZERO
                        } else {
                            outside + tick
                        };
                        if outside >= STOP_GRACE {
                            crate::progress::clear_live_line();
                            let _ = writeln!(
                                std::io::stderr(),
                                "stopped outside a batch's computing (the run was getting \
                                 ready, or waiting on a server that does not answer); the next \
                                 run goes on from the last commit, finishing a batch planned \
                                 and not yet computed, if there is one"
                            );
                            crate::checkpoint::lease::release_held().await;
                            std::process::exit(0);
                        }
                    }
                } else {
                    tokio::select! {
                        _ = wait_for_signal() => {}
                        _ = tokio::time::sleep(grace) => {}
                    }
                }
                crate::progress::clear_live_line();
                crate::say!(
                    "stopped at once: a batch in progress (if one was: `sluice inspect` shows it \
                     as pending) is finished by the next run"
                );
                // Exiting runs no destructor: an object-store checkpoint's lease is given up
                // here, so that the next run need not wait for it to expire.
                crate::checkpoint::lease::release_held().await;
                std::process::exit(130);
            });
            if checkpoint.is_none() {
                checkpoint_beside_the_file(&pipeline_path, &pipeline)?;
            }
            let spec = checkpoint
                .clone()
                .unwrap_or_else(|| pipeline.checkpoint_location());
            let options = RunOptions {
                trigger,
                checkpoint,
                progress,
                store_hook: None,
                shutdown: Some(stop_rx),
                skip_if_running,
            };
            let ran = match driver::run(&pipeline, options).await {
                Ok(summary) => Ok(summary),
                Err(e) => Err(crate::ops::with_refused_rewind(e, &spec).await),
            };
            let summary = ran.map_err(|e| match e {
                // Say where the SQL is; DataFusion's message says where in it.
                Error::Plan(plan) => Error::Usage(format!(
                    "{}: `query`{}: {plan}",
                    pipeline_path.display(),
                    pipeline
                        .query_line
                        .map(|l| format!(" (line {l})"))
                        .unwrap_or_default()
                )),
                other => other,
            })?;
            if progress == ProgressFormat::Text {
                let recovered = summary
                    .recovered
                    .map(|b| format!(" (finished interrupted batch {b})"))
                    .unwrap_or_default();
                let open = match summary.open_windows {
                    Some(n) if n > 0 => format!(
                        "; {n} group{s} (a window of a key each) still open in state, each \
                         written once the watermark passes its window's end: as in Spark, the \
                         watermark this run ended with applies from the next batch, so the next \
                         run's first batch writes those it passes already, and the rest wait \
                         for later input (Flink's closes them at the end of its input)",
                        s = if n == 1 { "" } else { "s" }
                    ),
                    _ => String::new(),
                };
                crate::say!(
                    "{}: {} batches, {} rows in, {} rows out{recovered}{open}",
                    pipeline.name,
                    summary.batches,
                    summary.rows_in,
                    summary.rows_out
                );
            }
            Ok(())
        }
        Command::Inspect {
            checkpoint,
            batch,
            json,
        } => inspect::run(&checkpoint, batch, json)
            .await
            .map_err(in_checkpoint(&checkpoint)),
        Command::State {
            checkpoint,
            operator,
            batch,
            sql,
        } => state::run(&checkpoint, operator, batch, sql)
            .await
            .map_err(in_checkpoint(&checkpoint)),
        Command::Explain { pipeline } => explain::run(&pipeline).await,
        Command::Gen { what } => generate::run(what).await,
        Command::Replay {
            checkpoint,
            batch,
            verify,
            pipeline,
            json,
            limit,
        } => replay::run(replay::Args {
            spec: &checkpoint,
            batch,
            verify,
            pipeline: pipeline.as_deref(),
            json,
            limit,
        })
        .await
        .map_err(in_checkpoint(&checkpoint)),
        Command::Report { checkpoint, html } => report::run(&checkpoint, &html)
            .await
            .map_err(in_checkpoint(&checkpoint)),
        Command::Rewind { checkpoint, to } => rewind::run(&checkpoint, to)
            .await
            .map_err(in_checkpoint(&checkpoint)),
        Command::Rename { checkpoint, to } => rename(&checkpoint, &to)
            .await
            .map_err(in_checkpoint(&checkpoint)),
        Command::Repair {
            checkpoint,
            dry_run,
            forget_lost_output,
            pipeline,
        } => {
            repair(
                &checkpoint,
                dry_run,
                forget_lost_output,
                pipeline.as_deref(),
            )
            .await
        }
        Command::Worker { listen } => worker(&listen).await,
    }
}

/// `sluice worker --listen HOST:PORT`.
#[cfg(feature = "distributed")]
async fn worker(listen: &str) -> Result<(), Error> {
    use std::net::ToSocketAddrs;
    let address = listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| {
            Error::Usage(format!(
                "--listen {listen}: not an address to serve on; write HOST:PORT, as \
                 127.0.0.1:50051 or 0.0.0.0:50051"
            ))
        })?;
    crate::distributed::serve(address, async {
        let _ = wait_for_signal().await;
    })
    .await
}

/// `sluice worker` in a build without the `distributed` feature.
#[cfg(not(feature = "distributed"))]
async fn worker(_listen: &str) -> Result<(), Error> {
    Err(Error::Usage(
        "`sluice worker` needs Sluice built with the `distributed` feature \
         (`cargo build --features distributed`)"
            .into(),
    ))
}

/// The error with checkpoint `spec` named where a damaged entry's advice needs it.
fn in_checkpoint(spec: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| e.in_checkpoint(spec)
}

async fn rename(spec: &str, to: &str) -> Result<(), Error> {
    let location = open_checkpoint(spec)?;
    let renamed = crate::ops::rename(&location, spec, to).await?;
    if renamed.from == renamed.to {
        emit(&format!("{spec}: its pipeline is `{to}` already\n"));
    } else {
        emit(&format!(
            "{spec}: pipeline `{}` is now `{to}`; its file, with `name: {to}` and \
             `checkpoint: {spec}` (where it sets no `checkpoint:`, its checkpoint would be \
             checkpoints/{to}: add that line, or move the folder there), carries on from its \
             last batch\n",
            renamed.from
        ));
    }
    Ok(())
}

async fn repair(
    spec: &str,
    dry_run: bool,
    forget_lost_output: bool,
    pipeline: Option<&std::path::Path>,
) -> Result<(), Error> {
    let spec_sh = crate::vocab::shell_word(spec);
    let location = open_checkpoint(spec)?;
    let given = match pipeline {
        Some(file) => Some((Pipeline::load(file)?, file.display().to_string())),
        None => None,
    };
    let given = given.as_ref().map(|(p, f)| (p, f.as_str()));
    let mut report = crate::ops::repair(&location, spec, dry_run, given).await?;
    // Lost output a rewind writes again: the next run is still refused until it is.
    let mut still_lost = false;
    if forget_lost_output && !report.unfixable.is_empty() {
        report.notes.push(
            "--forget-lost-output: nothing forgotten until what is listed below is repaired"
                .to_string(),
        );
    } else if forget_lost_output {
        let lost = crate::ops::forget_lost_output(&location, spec, dry_run).await?;
        report
            .fixed
            .extend(lost.forgotten.iter().map(|(batch, file)| {
                let why = if lost.past_retention.contains(batch) {
                    "its input is there, but the batch before it is no longer kept \
                     (`retain_batches`), so no rewind writes it again (a copy of the file from a \
                     backup, put back before this repair, keeps its rows)"
                } else {
                    "its input is gone too"
                };
                format!(
                    "forgot the lost output file of batch {batch}: {file}: {why}, and the run \
                     carries on without its rows"
                )
            }));
        still_lost = !lost.recoverable.is_empty();
        report
            .notes
            .extend(lost.recoverable.iter().map(|(batch, file)| {
                let rewind = match batch.prev() {
                    Some(before) => format!("`sluice rewind {spec_sh} --to {before}`"),
                    None => "a new checkpoint with a new, empty `sink.path`".to_string(),
                };
                format!(
                    "not forgotten: batch {batch}'s output file {file} is gone, but its input is \
                 there: {rewind} writes it again"
                )
            }));
    }
    let prefix = if dry_run { "(dry run, not done) " } else { "" };
    for fixed in &report.fixed {
        emit(&format!("{prefix}{fixed}\n"));
    }
    for note in &report.notes {
        emit(&format!("{note}\n"));
    }
    if !report.unfixable.is_empty() {
        return Err(crate::checkpoint::CheckpointError::Unrepairable {
            location: spec.to_string(),
            problems: report.unfixable.join("; "),
        }
        .into());
    }
    emit(&match (report.fixed.is_empty(), dry_run) {
        (true, _) if still_lost => format!(
            "{spec}: nothing forgotten; the next run is refused until the output above is \
             written again\n"
        ),
        (true, _) => format!("{spec}: nothing to repair\n"),
        (false, true) => format!("{spec}: run without --dry-run to make these changes\n"),
        (false, false) if still_lost => format!(
            "{spec}: repaired what is above; the next run is refused until the output not \
             forgotten is written again\n"
        ),
        (false, false) => format!("{spec}: repaired; the next run carries on\n"),
    });
    Ok(())
}

/// Refuses a run from another folder than the one where the pipeline's checkpoint was made:
/// a relative checkpoint path resolves against the working folder, so the run would start a
/// new checkpoint and read every input again, while the checkpoint of its batches so far lies
/// beside the pipeline file (where runs from the file's own folder made it).
///
/// Errors: [`Error::Usage`] naming both places and the commands that run on the checkpoint
/// there, where the working folder has no checkpoint at that path and the file's folder has.
fn checkpoint_beside_the_file(file: &std::path::Path, pipeline: &Pipeline) -> Result<(), Error> {
    let spec = pipeline.checkpoint_location();
    let relative = std::path::Path::new(&spec);
    if spec.contains("://") || relative.is_absolute() {
        return Ok(());
    }
    let (Ok(here), Some(folder)) = (
        std::env::current_dir(),
        file.canonicalize()
            .ok()
            .and_then(|f| f.parent().map(std::path::Path::to_path_buf)),
    ) else {
        return Ok(());
    };
    let same = |a: &std::path::Path, b: &std::path::Path| {
        a.canonicalize()
            .ok()
            .zip(b.canonicalize().ok())
            .is_some_and(|(a, b)| a == b)
    };
    let there = folder.join(relative);
    if same(&here, &folder)
        || here.join(relative).exists()
        || !there.join(crate::checkpoint::paths::METADATA).exists()
    {
        return Ok(());
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // With relative source or sink paths, only a run from there reads and writes where the
    // batches did (walk 80: `--checkpoint` there, as advised, then failed on `in`, resolved
    // here).
    let or_checkpoint = if pipeline.has_relative_paths() {
        String::new()
    } else {
        format!(
            ", or give `--checkpoint {}`",
            crate::vocab::shell_word(&there.display().to_string())
        )
    };
    Err(Error::Usage(format!(
        "{file}: the checkpoint `{spec}` resolves against the working folder ({here}), where \
         there is none, but {there} holds one, made by runs from the file's \
         folder: a run here would start over and read every input again. Run from there \
         (`cd {folder_sh} && sluice run {name_sh}`: relative source and sink paths resolve \
         against the working folder too){or_checkpoint}; to start a new checkpoint here, give \
         `--checkpoint {spec_sh}`",
        file = file.display(),
        here = here.display(),
        there = there.display(),
        folder_sh = crate::vocab::shell_word(&folder.display().to_string()),
        name_sh = crate::vocab::shell_word(&name),
        spec_sh = crate::vocab::shell_word(&spec),
    )))
}

/// Writes `text` to standard output; a reader that went away (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Writes `view` to standard output as pretty JSON (the `--json` form of a command).
fn emit_json(view: &impl serde::Serialize) {
    emit(&format!(
        "{}\n",
        serde_json::to_string_pretty(view).expect("views serialize")
    ));
}

/// Standard error for log lines, each with the values `${VAR}`s were filled in with written
/// `***` ([`crate::secret::masked`]), as the final error is (walk 121: a retry's warning and
/// librdkafka's log lines showed a broker address filled in from a variable). The formatter
/// writes each event whole, in one call.
struct MaskedStderr;

impl std::io::Write for MaskedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => std::io::stderr().write_all(crate::secret::masked(text).as_bytes())?,
            Err(_) => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Opens a checkpoint given on the command line; a path that is not there is a bad argument.
fn open_checkpoint(spec: &str) -> Result<crate::storage::Location, Error> {
    // A pipeline file given where its checkpoint goes: say which checkpoint it has.
    if std::path::Path::new(spec).is_file() {
        return Err(Error::Usage(
            match Pipeline::load(std::path::Path::new(spec)) {
                Ok(pipeline) => format!(
                    "{spec} is a pipeline file; give its checkpoint, {}",
                    pipeline.checkpoint_location()
                ),
                Err(_) => format!("{spec} is a file; give a checkpoint folder or URL"),
            },
        ));
    }
    // Synced as a run's writes are: `rewind`, `repair` and `rename` change the checkpoint,
    // and what they do must hold through a power loss (audit 88b).
    crate::storage::Location::open(spec, false, true, None).map_err(|e| {
        Error::Usage(format!(
            "{e}; give the checkpoint folder or URL of a pipeline"
        ))
    })
}

/// How long a run stopped by Ctrl-C may take to finish its batch before it stops at once.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// How soon after a SIGTERM another is the same request to stop, not a second one that
/// stops at once (GNU `timeout` signals the run, then its process group).
const SAME_STOP: std::time::Duration = std::time::Duration::from_secs(1);

/// The signal that asked a run to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// Ctrl-C (SIGINT).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

async fn wait_for_signal() -> Signal {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => Signal::Interrupt,
                    _ = term.recv() => Signal::Terminate,
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                Signal::Interrupt
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        Signal::Interrupt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walk 50 (4): a Delta kernel error printed its 84-frame backtrace (RUST_BACKTRACE set).
    #[test]
    fn a_library_errors_backtrace_is_left_out() {
        let text = "reading the table's log: Json error: cut\n   0: with_backtrace\n             at /x/error.rs:482:25\n   1: from\n             at /x/error.rs:513:28";
        assert_eq!(
            without_backtrace(text),
            "reading the table's log: Json error: cut"
        );
        let plain = "a: b\n  c";
        assert_eq!(without_backtrace(plain), plain);
    }
}
