//! Scale-out (feature `distributed`): a batch's query spread over `sluice worker` processes by
//! DataFusion's own distributed engine, `datafusion-distributed` (docs/scale.md).
//!
//! The driver plans each batch as it always does; where the batch reads enough
//! (`engine.distribute_above`) the distributed planner cuts the physical plan into stages and
//! sends the stages below where the plan gathers its partitions to the workers: the reads of
//! the batch's files (each worker a share of the parts, [`StreamedScanExec::split`]) and the
//! query above them; for a stateful aggregation, the part under its state (its operator hands
//! its partial phase to [`spread_plan`]). The sink's commit, the merge with the state and every
//! checkpoint write stay here. A worker only ever computes; it writes nothing, so the
//! checkpoint never depends on one (docs/scale.md).
//!
//! A batch that fails on the workers (a worker gone, silent past `engine.worker_timeout`, or
//! any error there) is computed again here from the same offsets, so its output is the same;
//! a source's error then comes with its file, line and advice.
//!
//! What crosses the network: the plan (DataFusion's protobuf form; a batch's scan as
//! [`ScanCodec`] writes it), and record batches (Arrow Flight). Functions travel by name,
//! so a worker registers every function Sluice plans with ([`worker_session`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::context::{QueryPlanner, SessionState};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::prelude::SessionContext;
use datafusion_distributed::grpc::{BoxCloneSyncChannel, create_worker_client};
use datafusion_distributed::{
    ChannelResolver, DesiredTaskCountEvent, DesiredTaskCountEventResponse, DistributedExec,
    DistributedExt, DistributedLeafExec, DistributedMetricsFormat, GetWorkerInfoRequest,
    ScaleUpLeafNodeEvent, ScaleUpLeafNodeEventResponse, SessionStateBuilderExt, Worker,
    WorkerChannel, WorkerQueryContext, WorkerResolver, rewrite_distributed_plan_with_metrics,
};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::pipeline::EngineConfig;
use crate::source::{ScanParts, StreamedScanExec, remote_read};

/// The version a worker reports and a driver expects: plans travel as protobuf and functions
/// by name, so a driver and its workers run the same Sluice.
const VERSION: &str = concat!("sluice ", env!("CARGO_PKG_VERSION"));

/// How long a probe waits for a worker's answer (at most `engine.worker_timeout`).
const PROBE_WAIT: Duration = Duration::from_secs(5);

/// How long a worker stays left out before it is probed again.
const PROBE_AGAIN: Duration = Duration::from_secs(60);

/// The workers of `engine.workers`, and which of them take part in the next batches.
///
/// A worker that does not answer a probe within [`PROBE_WAIT`] (gone, stopped, unreachable) or
/// answers as another version of Sluice is left out, with a warning naming it: the batches are
/// cut over the others (and run on the driver where fewer than two are left) instead of each
/// waiting `engine.worker_timeout` on it, failing, and being computed again here. The workers
/// are probed before the first batch that would go to them and after a batch fails there; one
/// left out is probed again before a batch once [`PROBE_AGAIN`] has passed, and takes part
/// again once it answers. Each probe is DataFusion-distributed's `GetWorkerInfo` call.
pub struct WorkerPool {
    urls: Vec<Url>,
    channels: Arc<Channels>,
    wait: Duration,
    state: Mutex<PoolState>,
}

/// What the probes found so far.
#[derive(Default)]
struct PoolState {
    /// Whether every worker has been probed once.
    probed: bool,
    /// The workers left out: when each was last probed, and why it is out.
    left_out: std::collections::BTreeMap<Url, (std::time::Instant, String)>,
}

impl WorkerPool {
    /// The workers of `engine` (whose addresses [`EngineConfig::check`] has checked), none
    /// probed yet.
    pub fn new(engine: &EngineConfig) -> Self {
        let timeout = engine.worker_timeout();
        Self {
            urls: engine
                .workers
                .iter()
                .filter_map(|w| Url::parse(w).ok())
                .collect(),
            channels: Arc::new(Channels {
                timeout,
                open: Mutex::new(HashMap::new()),
            }),
            wait: PROBE_WAIT.min(timeout),
            state: Mutex::new(PoolState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The workers that take part in the next batch, after probing those due (every worker
    /// before the first batch; one left out for [`PROBE_AGAIN`] or longer).
    pub async fn ready(&self) -> Vec<Url> {
        let due: Vec<Url> = {
            let state = self.state();
            if state.probed {
                state
                    .left_out
                    .iter()
                    .filter(|(_, (at, _))| at.elapsed() >= PROBE_AGAIN)
                    .map(|(url, _)| url.clone())
                    .collect()
            } else {
                self.urls.clone()
            }
        };
        if !due.is_empty() {
            self.probe(&due).await;
        }
        self.taking_part()
    }

    /// Probes every worker (after a batch failed on them).
    pub async fn probe_all(&self) {
        self.probe(&self.urls).await;
    }

    /// The workers not left out, in the order of `engine.workers`.
    fn taking_part(&self) -> Vec<Url> {
        let state = self.state();
        self.urls
            .iter()
            .filter(|url| !state.left_out.contains_key(*url))
            .cloned()
            .collect()
    }

    /// Why each worker left out is out, one `URL (why)` each, joined.
    pub fn left_out(&self) -> String {
        let state = self.state();
        let out: Vec<String> = state
            .left_out
            .iter()
            .map(|(url, (_, why))| format!("`{url}` ({why})"))
            .collect();
        out.join(", ")
    }

    /// Probes `urls` at once, leaving out those that do not answer as they should and
    /// taking back those that do.
    async fn probe(&self, urls: &[Url]) {
        let answers = futures::future::join_all(
            urls.iter()
                .map(|url| async move { (url, self.answer_of(url).await) }),
        )
        .await;
        let now = std::time::Instant::now();
        let mut state = self.state();
        state.probed = true;
        for (url, answer) in answers {
            match answer {
                Ok(()) => {
                    if state.left_out.remove(url).is_some() {
                        tracing::info!("worker `{url}` answers again: batches go to it again");
                    }
                }
                Err(why) => {
                    if !state.left_out.contains_key(url) {
                        tracing::warn!(
                            "worker `{url}` is left out of the batches until it answers as it \
                             should (probed again every {}s): {why}",
                            PROBE_AGAIN.as_secs()
                        );
                    }
                    state.left_out.insert(url.clone(), (now, why));
                }
            }
        }
    }

    /// Whether the worker at `url` answers within the probe's wait, as this version of Sluice;
    /// else why not.
    async fn answer_of(&self, url: &Url) -> std::result::Result<(), String> {
        let mut client = self
            .channels
            .get_worker_client_for_url(url)
            .await
            .map_err(|e| e.to_string())?;
        let info = tokio::time::timeout(self.wait, client.get_worker_info(GetWorkerInfoRequest {}))
            .await
            .map_err(|_| format!("no answer within {:?}", self.wait))?
            .map_err(|e| e.to_string())?;
        if info.version == VERSION {
            return Ok(());
        }
        let theirs = if info.version.is_empty() {
            "another program"
        } else {
            info.version.as_str()
        };
        Err(format!(
            "it runs {theirs} and this driver {VERSION}: run the same `sluice` on every machine"
        ))
    }
}

/// The workers of a [`WorkerPool`] that take part, as the planner asks for them.
struct Workers(Arc<WorkerPool>);

impl WorkerResolver for Workers {
    fn get_urls(&self) -> Result<Vec<Url>> {
        Ok(self.0.taking_part())
    }
}

/// Connections to the workers, one per worker, each with bounded waits: a worker that does not
/// connect, or leaves a live connection unanswered (HTTP/2 pings), for `timeout` fails the
/// request instead of leaving the batch waiting forever.
struct Channels {
    timeout: Duration,
    open: Mutex<HashMap<Url, BoxCloneSyncChannel>>,
}

#[async_trait]
impl ChannelResolver for Channels {
    async fn get_worker_client_for_url(&self, url: &Url) -> Result<Box<dyn WorkerChannel>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = open.get(url) {
            return Ok(create_worker_client(channel.clone()));
        }
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
            .map_err(|e| DataFusionError::Configuration(format!("worker `{url}`: {e}")))?
            .connect_timeout(self.timeout)
            .tcp_keepalive(Some(self.timeout))
            .http2_keep_alive_interval(self.timeout / 3)
            .keep_alive_timeout(self.timeout)
            .keep_alive_while_idle(true);
        // Connects on first use, and again after a failure.
        let channel = BoxCloneSyncChannel::new(endpoint.connect_lazy());
        open.insert(url.clone(), channel.clone());
        Ok(create_worker_client(channel))
    }
}

/// Adds the distributed planner to a session's builder, over the workers of `pool` taking
/// part.
pub fn coordinator(builder: SessionStateBuilder, pool: &Arc<WorkerPool>) -> SessionStateBuilder {
    builder
        .with_distributed_planner()
        .with_distributed_worker_resolver(Workers(Arc::clone(pool)))
        .with_distributed_channel_resolver(SharedChannels(Arc::clone(&pool.channels)))
        .with_distributed_user_codec(ScanCodec)
        .with_distributed_desired_task_count_handler(desired_task_count)
        .with_distributed_scale_up_leaf_node_handler(scale_up_leaf_node)
}

/// Keeps the plans of `state` on this process: a stage of one task is no stage (what every
/// session of the driver starts with, [`spread`] undoing it for a batch).
pub fn keep_local(state: &mut SessionState) -> Result<()> {
    state.set_distributed_max_tasks_per_stage(1)
}

/// Lets the plans of `state` spread over every worker (as many tasks per stage as workers).
pub fn spread(state: &mut SessionState) -> Result<()> {
    state.set_distributed_max_tasks_per_stage(0)
}

/// `plan`, planned here, cut into stages for the workers as the distributed planner cuts a
/// query `state` spreads ([`spread`]): a [`DistributedExec`] where some of it runs on workers,
/// `plan` itself where the planner keeps it here (a scan whose parts fall in one partition
/// is one task). For a plan
/// Sluice takes apart before it runs (a stateful operator's partial phase), which the planner
/// must see as it is.
///
/// Errors: the planner's (a node it cannot send).
pub async fn spread_plan(
    plan: Arc<dyn ExecutionPlan>,
    state: &SessionState,
) -> Result<Arc<dyn ExecutionPlan>> {
    let mut spread_state = SessionStateBuilder::new_from_existing(state.clone())
        .with_query_planner(Arc::new(Prebuilt(plan)))
        .with_distributed_planner()
        .build();
    spread(&mut spread_state)?;
    let nothing = LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(DFSchema::empty()),
    });
    let planner = Arc::clone(spread_state.query_planner());
    planner.create_physical_plan(&nothing, &spread_state).await
}

/// A query planner that plans every query as one physical plan made before: how
/// [`spread_plan`] puts its plan in front of the distributed planner, which wraps a query
/// planner.
#[derive(Debug)]
struct Prebuilt(Arc<dyn ExecutionPlan>);

#[async_trait]
impl QueryPlanner for Prebuilt {
    async fn create_physical_plan(
        &self,
        _logical_plan: &LogicalPlan,
        _session: &dyn datafusion::catalog::Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::clone(&self.0))
    }
}

/// Whether `plan` runs (in part) on workers.
pub fn is_distributed(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.downcast_ref::<DistributedExec>().is_some()
}

/// The metrics of every node of `plan` as it ran, the workers' stages included (each task's
/// apart, labelled with its task); empty where they did not come back within `wait`.
pub async fn metrics_of(plan: &Arc<dyn ExecutionPlan>, wait: Duration) -> Vec<MetricsSet> {
    let rewritten = tokio::time::timeout(
        wait,
        rewrite_distributed_plan_with_metrics(Arc::clone(plan), DistributedMetricsFormat::PerTask),
    )
    .await;
    let Ok(Ok(rewritten)) = rewritten else {
        return Vec::new();
    };
    let mut sets = Vec::new();
    let _ = rewritten.apply(|node| {
        if let Some(metrics) = node.metrics() {
            sets.push(metrics);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    sets
}

/// How many tasks a batch's scan asks for: one per partition with parts where every part can
/// be read by a worker (the planner caps it at the workers there are); one, here, otherwise.
fn desired_task_count(
    event: DesiredTaskCountEvent<'_>,
) -> Option<Result<DesiredTaskCountEventResponse>> {
    let scan = event.plan.downcast_ref::<StreamedScanExec>()?;
    Some(Ok(match scan.to_parts() {
        Some(parts) => {
            let n = parts.partitions.iter().filter(|p| !p.is_empty()).count();
            DesiredTaskCountEventResponse::desired(n.max(1))
        }
        None => DesiredTaskCountEventResponse::maximum(1),
    }))
}

/// A batch's scan split over `task_count` tasks, each reading its share of the parts.
fn scale_up_leaf_node(
    event: ScaleUpLeafNodeEvent<'_>,
) -> Option<Result<ScaleUpLeafNodeEventResponse>> {
    let scan = event.plan.downcast_ref::<StreamedScanExec>()?;
    // Left whole in a stage of several tasks, each task would read every part.
    let Some(variants) = scan.split(event.task_count) else {
        return (event.task_count > 1).then(|| {
            Err(DataFusionError::Internal(
                "a batch's scan that only the driver can read was given several tasks".into(),
            ))
        });
    };
    let variants = variants
        .into_iter()
        .map(|v| Arc::new(v) as Arc<dyn ExecutionPlan>);
    Some(
        DistributedLeafExec::try_new(Arc::clone(event.plan), variants)
            .map(|leaf| ScaleUpLeafNodeEventResponse::new(Arc::new(leaf))),
    )
}

/// A [`StreamedScanExec`] as the codec writes it (JSON).
#[derive(Serialize, Deserialize)]
struct EncodedScan {
    /// The output schema, as an Arrow IPC stream.
    schema: Vec<u8>,
    projection: Option<Vec<usize>>,
    id: String,
    partitions: Vec<Vec<(usize, String, u64, serde_json::Value)>>,
}

/// Writes and reads a batch's scan for the network (registered on both sides).
#[derive(Debug)]
pub struct ScanCodec;

impl PhysicalExtensionCodec for ScanCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        _inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let encoded: EncodedScan = serde_json::from_slice(buf)
            .map_err(|e| DataFusionError::Internal(format!("a batch's scan: {e}")))?;
        let schema =
            crate::source::scan::schema_from_ipc(&encoded.schema).map_err(DataFusionError::Plan)?;
        let parts = encoded.partitions.iter().map(Vec::len).sum::<usize>();
        tracing::info!(parts, "reading a share of a batch's files");
        let parts = ScanParts {
            schema,
            projection: encoded.projection,
            id: encoded.id,
            partitions: encoded
                .partitions
                .into_iter()
                .map(|list| {
                    list.into_iter()
                        .map(|(index, name, size, remote)| (index, name, size, Arc::new(remote)))
                        .collect()
                })
                .collect(),
        };
        let scan = StreamedScanExec::from_parts(parts, |_, remote| {
            remote_read(remote).map_err(DataFusionError::Plan)
        })?;
        Ok(Arc::new(scan))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(scan) = node.downcast_ref::<StreamedScanExec>() else {
            return Err(DataFusionError::NotImplemented(format!(
                "{} is not sent to workers",
                node.name()
            )));
        };
        let Some(parts) = scan.to_parts() else {
            return Err(DataFusionError::NotImplemented(
                "a scan whose parts only the driver reads is not sent to workers".into(),
            ));
        };
        let encoded = EncodedScan {
            schema: crate::source::scan::schema_to_ipc(&parts.schema)?,
            projection: parts.projection,
            id: parts.id,
            partitions: parts
                .partitions
                .into_iter()
                .map(|list| {
                    list.into_iter()
                        .map(|(index, name, size, remote)| (index, name, size, (*remote).clone()))
                        .collect()
                })
                .collect(),
        };
        serde_json::to_writer(buf, &encoded)
            .map_err(|e| DataFusionError::Internal(format!("a batch's scan: {e}")))
    }
}

/// How long a worker waits on another (a stage reading another worker's output) before the
/// stage fails: as long as a driver's default `engine.worker_timeout`.
const PEER_TIMEOUT: Duration = Duration::from_secs(30);

/// The connections of this process to others, shared by every stage it runs.
#[derive(Clone)]
struct SharedChannels(Arc<Channels>);

#[async_trait]
impl ChannelResolver for SharedChannels {
    async fn get_worker_client_for_url(&self, url: &Url) -> Result<Box<dyn WorkerChannel>> {
        self.0.get_worker_client_for_url(url).await
    }
}

/// A worker's session for one stage: DataFusion's, with every function Sluice plans with
/// (found by name), the batch scan's codec, and bounded waits on other workers.
async fn worker_session(ctx: WorkerQueryContext) -> Result<SessionState> {
    static PEERS: std::sync::OnceLock<SharedChannels> = std::sync::OnceLock::new();
    let peers = PEERS.get_or_init(|| {
        SharedChannels(Arc::new(Channels {
            timeout: PEER_TIMEOUT,
            open: Mutex::new(HashMap::new()),
        }))
    });
    let state = ctx
        .builder
        .with_distributed_user_codec(ScanCodec)
        .with_distributed_channel_resolver(peers.clone())
        .build();
    let session = SessionContext::new_with_state(state);
    crate::plan::register_sluice_functions(&session);
    // The checked arithmetic the driver's analyzer puts in plans, found here by name.
    for udf in crate::plan::overflow::checked_functions() {
        session.register_udf(udf);
    }
    Ok(session.state())
}

/// Serves as a worker on `listen` until `shutdown` resolves: runs the stages drivers send
/// (`sluice worker`). Prints the address it serves on once it does.
///
/// Errors: [`crate::Error::Usage`] where the address cannot be bound (exit 2);
/// [`crate::Error::Execution`] where the server fails while serving.
pub async fn serve(
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::result::Result<(), crate::Error> {
    let cannot = |e: std::io::Error| crate::Error::Usage(format!("cannot listen on {listen}: {e}"));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(cannot)?;
    let bound = listener.local_addr().map_err(cannot)?;
    if bound.ip().is_unspecified() {
        // Every address of this machine: drivers list it by one of them.
        println!(
            "sluice worker serving on http://{bound} (every address of this machine: list it \
             in `engine.workers` as http://HOST:{} with HOST this machine's name or address)",
            bound.port()
        );
    } else {
        println!("sluice worker serving on http://{bound}");
    }
    serve_as(listener, VERSION, shutdown)
        .await
        .map_err(|e| crate::Error::Execution {
            batch: None,
            source: DataFusionError::Execution(format!("the worker on {bound} failed: {e}")),
            found: None,
        })
}

/// Serves as a worker reporting `version` on the connections `listener` accepts, until
/// `shutdown` resolves.
async fn serve_as(
    listener: tokio::net::TcpListener,
    version: &'static str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::result::Result<(), tonic::transport::Error> {
    let worker = Worker::from_session_builder(worker_session).with_version(version);
    tonic::transport::Server::builder()
        .add_service(worker.into_worker_server())
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::EngineKind;

    /// A worker serving `version` on a free loopback port, for as long as the test runs.
    async fn worker(version: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(serve_as(listener, version, std::future::pending()));
        url
    }

    /// The probes leave out a worker that refuses the connection and one that runs another
    /// version of Sluice, naming each with why; the others take part.
    #[tokio::test]
    async fn workers_that_do_not_answer_as_this_sluice_are_left_out() {
        let ours = [worker(VERSION).await, worker(VERSION).await];
        let older = worker("sluice 0.0.1").await;
        let gone = "http://127.0.0.1:1".to_string();
        let engine = EngineConfig {
            kind: EngineKind::Distributed,
            workers: vec![
                ours[0].clone(),
                older.clone(),
                gone.clone(),
                ours[1].clone(),
            ],
            distribute_above: None,
            worker_timeout: Some(Duration::from_secs(10)),
        };
        let pool = WorkerPool::new(&engine);
        let ready: Vec<String> = pool.ready().await.iter().map(Url::to_string).collect();
        assert_eq!(ready, [format!("{}/", ours[0]), format!("{}/", ours[1])]);
        let said = pool.left_out();
        assert!(
            said.contains(&format!(
                "`{older}/` (it runs sluice 0.0.1 and this driver {VERSION}: run the same \
                 `sluice` on every machine)"
            )) && said.contains(&format!("`{gone}/` (")),
            "{said}"
        );
        // The planner sees only the workers taking part.
        let urls = Workers(Arc::new(pool)).get_urls().expect("urls");
        assert_eq!(urls.len(), 2);
    }
}
