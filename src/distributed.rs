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
use datafusion::logical_expr::{AggregateUDF, EmptyRelation, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::prelude::SessionContext;
use datafusion_distributed::grpc::{BoxCloneSyncChannel, create_worker_client};
use datafusion_distributed::{
    ChannelResolver, DesiredTaskCountEvent, DesiredTaskCountEventResponse, DistributedExec,
    DistributedExt, DistributedLeafExec, DistributedMetricsFormat, ScaleUpLeafNodeEvent,
    ScaleUpLeafNodeEventResponse, SessionStateBuilderExt, Worker, WorkerChannel,
    WorkerQueryContext, WorkerResolver, rewrite_distributed_plan_with_metrics,
};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::pipeline::EngineConfig;
use crate::source::{ScanParts, StreamedScanExec, remote_read};

/// The workers of `engine.workers`, as the planner asks for them.
#[derive(Debug, Clone)]
struct Workers(Vec<Url>);

impl WorkerResolver for Workers {
    fn get_urls(&self) -> Result<Vec<Url>> {
        Ok(self.0.clone())
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

/// Adds the distributed planner to a session's builder, over the workers of `engine` (whose
/// addresses [`EngineConfig::check`] has checked).
pub fn coordinator(builder: SessionStateBuilder, engine: &EngineConfig) -> SessionStateBuilder {
    let urls = engine
        .workers
        .iter()
        .filter_map(|w| Url::parse(w).ok())
        .collect();
    let channels = Channels {
        timeout: engine.worker_timeout(),
        open: Mutex::new(HashMap::new()),
    };
    builder
        .with_distributed_planner()
        .with_distributed_worker_resolver(Workers(urls))
        .with_distributed_channel_resolver(channels)
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
/// `plan` itself where the planner keeps it here (a scan of one part is one task). For a plan
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

/// How many tasks a batch's scan asks for: one per part where every part can be read by a
/// worker (the planner caps it at the workers there are); one, here, otherwise.
fn desired_task_count(
    event: DesiredTaskCountEvent<'_>,
) -> Option<Result<DesiredTaskCountEventResponse>> {
    let scan = event.plan.downcast_ref::<StreamedScanExec>()?;
    Some(Ok(match scan.to_parts() {
        Some(parts) => {
            let n = parts.partitions.iter().map(Vec::len).sum::<usize>();
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
    crate::plan::register_functions(&session);
    for udf in crate::plan::overflow::checked_functions() {
        session.register_udf(udf);
    }
    // After the default functions: this `sum` replaces DataFusion's.
    let sum: AggregateUDF = crate::plan::overflow::CheckedSum::udaf();
    session.register_udaf(sum);
    Ok(session.state())
}

/// Serves as a worker on `listen` until `shutdown` resolves: runs the stages drivers send
/// (`sluice worker`). Prints the address it serves on once it does.
///
/// Errors: the address cannot be bound, or the server fails.
pub async fn serve(
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::result::Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let worker = Worker::from_session_builder(worker_session);
    println!("sluice worker serving on http://{bound}");
    let incoming = tokio_stream_of(listener);
    tonic::transport::Server::builder()
        .add_service(worker.into_worker_server())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| format!("the worker on {bound} failed: {e}"))
}

/// The connections `listener` accepts, as tonic takes them.
fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, listener))
    })
}
