//! An operator's state versions in the checkpoint, as Parquet files.

use std::sync::Arc;

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;

use super::{KeyedState, StateError};

/// The Arrow schema metadata key that records how many leading columns are the key.
const KEY_COLUMNS: &str = "sluice.key_columns";

/// The schema metadata key under which a state file records its own name (`4.delta.parquet`),
/// so that a file copied over another version's (or beside it) is told from it when read
/// (audit 94a: `1.delta.parquet` copied as `4.delta.parquet` loaded as version 4, totals
/// wrong, exit 0). Files of older Sluice versions have none, and are read as they are.
const FILE_NAME: &str = "sluice.state_file";

/// A state file's schema metadata key: what the operator's state columns are computed from
/// (see [`StateFiles::set_lineage`]).
const LINEAGE: &str = "sluice.lineage";
/// The version of the lineage record's form: a record of another is not compared.
const LINEAGE_VERSION: &str = "1";

/// A lineage record (see [`StateFiles::set_lineage`]) of an aggregation's group keys (`group
/// by ...`) and aggregates (`aggregate ...`): a JSON array of the form's version, then each.
pub fn lineage_record(groups: String, aggregates: String) -> String {
    serde_json::json!([LINEAGE_VERSION, groups, aggregates]).to_string()
}

/// Whether two lineage records (parts of [`lineage_record`]) are of one join with one
/// condition written in another order (`a.k = b.k AND a.u = b.u` as `a.u = b.u AND a.k =
/// b.k`): the same conjuncts, which keep the same rows (walk 127 (6d): refused as another
/// join).
fn same_join_condition(stored: &[String], planned: &[String]) -> bool {
    let conjuncts = |parts: &[String]| -> Option<(String, Vec<String>)> {
        let [_, join, on] = parts else {
            return None;
        };
        if !join.ends_with(" JOIN") {
            return None;
        }
        let parts: Vec<&str> = on.strip_prefix("ON ")?.split(" AND ").collect();
        // Only a flat AND of its parts: the text of `x AND y OR z` splits as `y OR z AND x`
        // does (the review: another condition taken for the same), so an OR anywhere, or a
        // CASE, is compared as written.
        if parts
            .iter()
            .any(|p| p.contains(" OR ") || p.contains("CASE "))
        {
            return None;
        }
        // The plain equalities of columns (the join's keys) in any order; the rest (a
        // BETWEEN's two halves among them) in the order written.
        let plain = |p: &str| {
            p.split_once(" = ")
                .is_some_and(|(a, b)| !a.contains([' ', '(']) && !b.contains([' ', '(']))
        };
        let mut keys: Vec<String> = parts
            .iter()
            .filter(|p| plain(p))
            .map(|p| p.to_string())
            .collect();
        keys.sort();
        let rest: Vec<String> = parts
            .iter()
            .filter(|p| !plain(p))
            .map(|p| p.to_string())
            .collect();
        Some((join.clone(), [keys, rest].concat()))
    };
    matches!(
        (conjuncts(stored), conjuncts(planned)),
        (Some(a), Some(b)) if a == b
    )
}
use crate::checkpoint::BatchId;
use crate::storage::Location;

/// What a state file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StateFileKind {
    /// Every live row after the version.
    Snapshot,
    /// The rows the version inserted or changed.
    Delta,
    /// The keys the version removed.
    Removed,
}

impl StateFileKind {
    /// The file name suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot.parquet",
            Self::Delta => "delta.parquet",
            Self::Removed => "removed.parquet",
        }
    }
}

/// One file of an operator's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    /// The version (batch) it belongs to.
    pub version: BatchId,
    /// What it holds.
    pub kind: StateFileKind,
    /// Its path relative to the checkpoint.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The state files of one operator.
#[derive(Debug, Clone)]
pub struct StateFiles {
    location: Location,
    operator: String,
    /// What the planned query computes its state columns from, written into each file and
    /// held against the files read.
    lineage: Option<String>,
}

impl StateFiles {
    /// The checkpoint the files are in.
    pub fn checkpoint(&self) -> &Location {
        &self.location
    }

    /// The files of `operator` in the checkpoint at `location`.
    pub fn new(location: Location, operator: &str) -> Self {
        Self {
            location,
            operator: operator.to_string(),
            lineage: None,
        }
    }

    /// Sets what the planned query computes the state's columns from (its group keys and
    /// aggregates in terms of the sources' columns, through the query's CTEs and subqueries):
    /// each file written records it, and a file read that records another is refused as
    /// [`StateError::Incompatible`], as a file with other columns is. A column's name alone
    /// does not say what it holds (`w` from `date_bin(INTERVAL '1 minute', ts)` in a CTE, then
    /// from `'2 minutes'`). Files that record none (written before this check) are not held
    /// to it.
    pub fn set_lineage(&mut self, lineage: Option<String>) {
        self.lineage = lineage;
    }

    /// The operator's id.
    pub fn operator(&self) -> &str {
        &self.operator
    }

    fn dir(&self) -> String {
        format!("state/{}", self.operator)
    }

    fn path_of(&self, version: BatchId, kind: StateFileKind) -> String {
        format!("{}/{}.{}", self.dir(), version.0, kind.suffix())
    }

    /// Every state file of the operator, by version then kind.
    pub async fn list(&self) -> Result<Vec<StateFile>, StateError> {
        let mut files = Vec::new();
        for meta in self.location.list(&self.dir()).await? {
            let path = self.location.relative(&meta.location);
            let name = path.rsplit('/').next().unwrap_or_default();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let parsed = name.split_once('.').and_then(|(n, suffix)| {
                let kind = [
                    StateFileKind::Snapshot,
                    StateFileKind::Delta,
                    StateFileKind::Removed,
                ]
                .into_iter()
                .find(|k| k.suffix() == suffix)?;
                Some((crate::checkpoint::paths::entry_number(n)?, kind))
            });
            let Some((version, kind)) = parsed else {
                return Err(StateError::Corrupt {
                    checkpoint: None,
                    sink: None,
                    file: path,
                    reason: "not a state file name (<batch>.snapshot|delta|removed.parquet)".into(),
                });
            };
            files.push(StateFile {
                version: BatchId(version),
                kind,
                path,
                size: meta.size,
            });
        }
        files.sort_by_key(|f| (f.version, f.kind));
        Ok(files)
    }

    /// Writes `rows` (whose first `key_columns` columns are the key) as the `kind` file of
    /// `version`, returning the bytes written.
    pub async fn write(
        &self,
        version: BatchId,
        kind: StateFileKind,
        rows: &RecordBatch,
        key_columns: usize,
    ) -> Result<u64, StateError> {
        let path = self.path_of(version, kind);
        let mut metadata = rows.schema().metadata().clone();
        metadata.insert(KEY_COLUMNS.to_string(), key_columns.to_string());
        metadata.insert(FILE_NAME.to_string(), file_name(&path).to_string());
        if let Some(lineage) = &self.lineage {
            metadata.insert(LINEAGE.to_string(), lineage.clone());
        }
        let schema = Arc::new(rows.schema().as_ref().clone().with_metadata(metadata));
        let rows = rows
            .clone()
            .with_schema(schema)
            .map_err(|e| self.compute(e))?;
        let bytes =
            encode(&rows).map_err(|reason| self.compute(format!("writing {path}: {reason}")))?;
        let size = bytes.len() as u64;
        self.location.put(&self.location.path(&path), bytes).await?;
        Ok(size)
    }

    /// Writes version `version` of `state`: a full snapshot every `snapshot_every` versions,
    /// otherwise `upserted` (the rows the version inserted or changed) and `removed` (the keys
    /// it removed, if any). Returns the bytes written.
    pub async fn write_version(
        &self,
        version: BatchId,
        state: &KeyedState,
        upserted: &RecordBatch,
        removed: &RecordBatch,
        snapshot_every: u64,
    ) -> Result<u64, StateError> {
        let keys = state.key_columns();
        if version.0.is_multiple_of(snapshot_every) {
            let all = state.all().map_err(|e| self.compute(e))?;
            return self
                .write(version, StateFileKind::Snapshot, &all, keys)
                .await;
        }
        let mut bytes = self
            .write(version, StateFileKind::Delta, upserted, keys)
            .await?;
        if removed.num_rows() > 0 {
            bytes += self
                .write(version, StateFileKind::Removed, removed, keys)
                .await?;
        }
        Ok(bytes)
    }

    /// Reads one state file whole.
    pub async fn read(&self, file: &StateFile) -> Result<RecordBatch, StateError> {
        let bytes = self
            .location
            .get(&self.location.path(&file.path))
            .await?
            .ok_or_else(|| StateError::Corrupt {
                checkpoint: None,
                sink: None,
                file: file.path.clone(),
                reason: "it vanished while being read".into(),
            })?;
        let rows = decode(bytes).map_err(|reason| StateError::Corrupt {
            checkpoint: None,
            sink: None,
            file: file.path.clone(),
            reason,
        })?;
        let mut metadata = rows.schema().metadata().clone();
        match metadata.remove(FILE_NAME) {
            Some(written) if written != file_name(&file.path) => Err(StateError::Corrupt {
                checkpoint: None,
                sink: None,
                file: file.path.clone(),
                reason: format!(
                    "it was written as {written}, not as this file: a copy of another version's \
                     state (moved or copied by hand), which would load that version's rows as \
                     this one's"
                ),
            }),
            Some(_) => {
                let schema = Arc::new(rows.schema().as_ref().clone().with_metadata(metadata));
                RecordBatch::try_new(schema, rows.columns().to_vec()).map_err(|e| self.compute(e))
            }
            None => Ok(rows),
        }
    }

    /// Every operator with state in the checkpoint at `location`.
    pub async fn operators(location: &Location) -> Result<Vec<String>, StateError> {
        let mut operators: Vec<String> = location
            .list("state")
            .await?
            .iter()
            .filter_map(|meta| {
                let path = location.relative(&meta.location);
                let mut parts = path.split('/').skip(1);
                let operator = parts.next()?;
                parts.next().map(|_| operator.to_string())
            })
            .collect();
        operators.dedup();
        Ok(operators)
    }

    /// The state as of version `version`, as one table ordered by key; `None` when the
    /// operator has no state at or below it.
    pub async fn read_version(&self, version: BatchId) -> Result<Option<RecordBatch>, StateError> {
        let files = self.list().await?;
        let Some(newest) = files
            .iter()
            .rfind(|f| f.version <= version && f.kind != StateFileKind::Removed)
        else {
            return Ok(None);
        };
        let sample = self.read(newest).await?;
        let schema = sample.schema();
        let key_columns = schema
            .metadata()
            .get(KEY_COLUMNS)
            .and_then(|k| k.parse::<usize>().ok())
            .filter(|k| *k <= schema.fields().len())
            .ok_or_else(|| StateError::Corrupt {
                checkpoint: None,
                sink: None,
                file: newest.path.clone(),
                reason: format!(
                    "its schema does not say how many key columns it has ({KEY_COLUMNS})"
                ),
            })?;
        let mut state = KeyedState::new(schema, key_columns, None).map_err(|e| self.compute(e))?;
        self.load(version, &mut state).await?;
        state.all().map(Some).map_err(|e| self.compute(e))
    }

    /// The operator's files of versions up to `version`, in [`Self::list`]'s order.
    async fn files_up_to(&self, version: BatchId) -> Result<Vec<StateFile>, StateError> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|f| f.version <= version)
            .collect())
    }

    /// The first version [`Self::load`] of `version` would find missing (no delta after the
    /// newest snapshot at or below it), without reading any; `None` where every one is there,
    /// or where the operator has no file at or below `version` at all (it has nothing to load).
    pub async fn missing_for(&self, version: BatchId) -> Result<Option<BatchId>, StateError> {
        let files = self.files_up_to(version).await?;
        if files.is_empty() {
            return Ok(None);
        }
        let first_delta = files
            .iter()
            .rev()
            .find(|f| f.kind == StateFileKind::Snapshot)
            .map_or(0, |s| s.version.0 + 1);
        Ok((first_delta..=version.0).map(BatchId).find(|v| {
            !files
                .iter()
                .any(|f| f.version == *v && f.kind == StateFileKind::Delta)
        }))
    }

    /// Loads version `version` into the empty `state`: the newest snapshot at or below it, then
    /// every later delta up to it. Returns the bytes read.
    pub async fn load(&self, version: BatchId, state: &mut KeyedState) -> Result<u64, StateError> {
        let files = self.files_up_to(version).await?;
        let snapshot = files
            .iter()
            .rev()
            .find(|f| f.kind == StateFileKind::Snapshot);
        let first_delta = snapshot.map_or(0, |s| s.version.0 + 1);
        let mut read = 0;
        if let Some(snapshot) = snapshot {
            let rows = self.read_checked(snapshot, state.schema()).await?;
            read += snapshot.size;
            state.upsert(rows).map_err(|e| self.compute(e))?;
        }
        for v in first_delta..=version.0 {
            let of_version: Vec<&StateFile> = files.iter().filter(|f| f.version.0 == v).collect();
            let delta = of_version
                .iter()
                .find(|f| f.kind == StateFileKind::Delta)
                .ok_or_else(|| StateError::Missing {
                    operator: self.operator.clone(),
                    version: BatchId(v),
                    wanted: version,
                    checkpoint: None,
                    sink: None,
                })?;
            let rows = self.read_checked(delta, state.schema()).await?;
            read += delta.size;
            state.upsert(rows).map_err(|e| self.compute(e))?;
            if let Some(removed) = of_version.iter().find(|f| f.kind == StateFileKind::Removed) {
                let keys = self.read(removed).await?;
                read += removed.size;
                let keys = state.keys(&keys).map_err(|e| self.compute(e))?;
                state.remove(&keys);
            }
        }
        Ok(read)
    }

    async fn read_checked(
        &self,
        file: &StateFile,
        schema: &SchemaRef,
    ) -> Result<RecordBatch, StateError> {
        let rows = self.read(file).await?;
        let describe = |s: &SchemaRef| {
            s.fields()
                .iter()
                .map(|f| {
                    let name = readable_column(f.name());
                    // DataFusion names an aggregate's partial state `max(s.v)[value]`.
                    match name.strip_suffix(']').and_then(|n| n.rsplit_once('[')) {
                        Some((aggregate, part)) if aggregate.ends_with(')') => format!(
                            "the `{part}` of `{aggregate}` (an aggregate's partial state, {})",
                            crate::format::sql_type_name(f.data_type())
                        ),
                        _ => format!("`{name}` {}", crate::format::sql_type_name(f.data_type())),
                    }
                })
                .collect::<Vec<_>>()
        };
        // Told apart by DataFusion's own names (`Int64(2)` is not `Float64(2)`), said in
        // readable ones.
        // (Nested types by Arrow's own names, which tell a list's kind and its items'
        // nullability apart: their SQL names do not.)
        let exact = |s: &SchemaRef| {
            s.fields()
                .iter()
                .map(|f| {
                    let data_type = f.data_type();
                    let name = if data_type.is_nested() {
                        data_type.to_string()
                    } else {
                        crate::format::sql_type_name(data_type)
                    };
                    (f.name().clone(), name)
                })
                .collect::<Vec<_>>()
        };
        let (stored, planned) = (describe(&rows.schema()), describe(schema));
        if exact(&rows.schema()) != exact(schema)
            && let (Some(was), Some(now)) =
                (distinct_on_state(&rows.schema()), distinct_on_state(schema))
            // The same in words (a column's type changed): the general message says which.
            && was != now
        {
            // Said in the query's words, not DataFusion's names of `first_value` parts (walk
            // 80: a paragraph of `first_value(ev.event_id) ORDER BY [...][first_value_is_set]`).
            return Err(StateError::Incompatible {
                operator: self.operator.clone(),
                stored: was,
                planned: format!(
                    "{now} (a `DISTINCT ON` query's state keeps, for each key, the row it \
                     selected, by the names it selects: other keys, or another column \
                     selected, are another state; to rename a column it selects, rename it in \
                     a query around it, `SELECT k, v AS value FROM (SELECT DISTINCT ON (k) k, \
                     v ...) x`, which keeps the state as it is)"
                ),
                sink: None,
            });
        }
        if exact(&rows.schema()) != exact(schema) {
            // Only the columns that differ: the rest is the same in both.
            let only = |a: &[String], b: &[String]| {
                let differing: Vec<&String> = a.iter().filter(|c| !b.contains(c)).collect();
                match differing.as_slice() {
                    // The same columns in another order.
                    [] if a.len() == b.len() => format!("the columns {}", a.join(", ")),
                    [] => "no other column".to_string(),
                    some => some
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            };
            // A renamed CTE, subquery or table alias renames the columns it qualifies.
            let renamed = stored.len() == planned.len()
                && stored
                    .iter()
                    .zip(&planned)
                    .all(|(a, b)| unqualified(a) == unqualified(b));
            let added = stored.iter().all(|c| planned.contains(c));
            let hint = if renamed {
                // Walk 127 (3): a source added under a subquery (`FROM (SELECT ... FROM a
                // UNION ALL SELECT ... FROM b)`) was said only as a renamed alias, and the
                // old name given to the subquery was refused again.
                " (only a name before a `.` differs: where a CTE, subquery or table alias was \
                 renamed and the query reads the same input as before, the state's column \
                 names carry the old name, and with it the state follows the query; where the \
                 query now reads other input there, a source added or a `UNION` of another, \
                 the state cannot follow: its groups hold the old input's rows alone)"
            } else if added
                && planned
                    .iter()
                    .filter(|c| !stored.contains(c))
                    .all(|c| c.contains("(an aggregate's partial state"))
            {
                // An aggregate added to the query (`max(v)` beside `sum(v)`): its state
                // columns are its partial state's (`describe`).
                " (an aggregate the query adds: the state holds no value of it for the groups \
                 it has, and none can be made up for the rows they were computed from)"
            } else if added {
                // A group key added (`GROUP BY k, v > 50`; audit 94a: said as an aggregate).
                " (a group key the query adds: the state holds groups of the old keys, which \
                 cannot be split by the new one for the rows they were computed from)"
            } else {
                ""
            };
            return Err(StateError::Incompatible {
                operator: self.operator.clone(),
                stored: only(&stored, &planned),
                planned: format!("{}{hint}", only(&planned, &stored)),
                sink: None,
            });
        }
        if let Some(refused) = self.lineage_refused(&rows.schema()) {
            return Err(refused);
        }
        // Nullability and metadata may differ after the round trip; the columns do not.
        RecordBatch::try_new(Arc::clone(schema), rows.columns().to_vec())
            .map_err(|e| self.compute(e))
    }

    /// The refusal of state rows of `schema` whose lineage (what their columns were computed
    /// from, or what a join's kept rows are for) differs from this query's; `None` where they
    /// agree, or either has no record of this version.
    fn lineage_refused(&self, schema: &SchemaRef) -> Option<StateError> {
        // A record of another version (or none) is not held against this one's.
        let parts = |record: &str| {
            serde_json::from_str::<Vec<String>>(record)
                .ok()
                .filter(|parts| parts.first().map(String::as_str) == Some(LINEAGE_VERSION))
        };
        if let (Some(stored), Some(planned)) = (
            schema.metadata().get(LINEAGE).and_then(|l| parts(l)),
            self.lineage.as_deref().and_then(parts),
        ) && stored != planned
            && !same_join_condition(&stored, &planned)
        {
            // Only the part that differs: the group keys, the aggregates, or both.
            let only = |a: &[String], b: &[String]| {
                a.iter()
                    .skip(1)
                    .filter(|p| !b.contains(p))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            // A join's kept rows are for its condition; an aggregation's columns are computed.
            let join = stored.get(1).is_some_and(|part| part.ends_with(" JOIN"));
            let (rows, them) = if join {
                ("rows for the join `", "them for `")
            } else {
                ("columns computed as `", "them computed as `")
            };
            let whole = |a: &[String]| a.iter().skip(1).cloned().collect::<Vec<_>>().join(" ");
            let (stored, planned) = if join {
                (whole(&stored), whole(&planned))
            } else {
                (only(&stored, &planned), only(&planned, &stored))
            };
            return Some(StateError::Incompatible {
                operator: self.operator.clone(),
                stored: format!("{rows}{}`", readable_column(&stored)),
                planned: format!("{them}{}`", readable_column(&planned)),
                sink: None,
            });
        }
        None
    }

    /// Refuses, before a batch is planned, state of version `version` or below that was kept
    /// for another query ([`StateFiles::set_lineage`]), reading only its newest file; `Ok`
    /// where the operator has none.
    pub async fn check_lineage(&self, version: BatchId) -> Result<(), StateError> {
        let newest = self
            .list()
            .await?
            .into_iter()
            .rfind(|f| f.version <= version && f.kind != StateFileKind::Removed);
        let Some(file) = newest else {
            return Ok(());
        };
        // Its footer alone: the rows are the batch's to load.
        let Some(bytes) = self.location.get(&self.location.path(&file.path)).await? else {
            return Ok(());
        };
        let schema = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map(|builder| Arc::clone(builder.schema()))
            .map_err(|e| StateError::Corrupt {
                checkpoint: None,
                sink: None,
                file: file.path.clone(),
                reason: e.to_string(),
            })?;
        match self.lineage_refused(&schema) {
            Some(refused) => Err(refused),
            None => Ok(()),
        }
    }

    /// Deletes every file of version `version`.
    pub async fn delete_version(&self, version: BatchId) -> Result<(), StateError> {
        for file in self.list().await?.iter().filter(|f| f.version == version) {
            self.location
                .delete(&self.location.path(&file.path))
                .await?;
        }
        Ok(())
    }

    /// Deletes the files no load of version `oldest_needed` or later reads: everything older
    /// than the newest snapshot at or below it.
    pub async fn purge(&self, oldest_needed: BatchId) -> Result<(), StateError> {
        let files = self.list().await?;
        let Some(base) = files
            .iter()
            .filter(|f| f.kind == StateFileKind::Snapshot && f.version <= oldest_needed)
            .map(|f| f.version)
            .max()
        else {
            return Ok(());
        };
        for file in files.iter().filter(|f| f.version < base) {
            self.location
                .delete(&self.location.path(&file.path))
                .await?;
        }
        Ok(())
    }

    fn compute(&self, e: impl std::fmt::Display) -> StateError {
        StateError::Compute {
            operator: self.operator.clone(),
            reason: e.to_string(),
        }
    }
}

/// The last part of a state file's path: its name in the operator's folder.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn encode(rows: &RecordBatch) -> Result<Vec<u8>, String> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer =
        ArrowWriter::try_new(Vec::new(), rows.schema(), Some(props)).map_err(|e| e.to_string())?;
    writer.write(rows).map_err(|e| e.to_string())?;
    writer.into_inner().map_err(|e| e.to_string())
}

fn decode(bytes: bytes::Bytes) -> Result<RecordBatch, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    // The builder's schema keeps the Arrow metadata (the reader's drops it).
    let schema = Arc::clone(builder.schema());
    let reader = builder.build().map_err(|e| e.to_string())?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    concat_batches(&schema, &batches).map_err(|e| e.to_string())
}

/// The state of a `DISTINCT ON` query, which DataFusion plans as an aggregation keeping
/// `first_value(c) ORDER BY [...]` of each column `c` selected (and whether it is set) per key,
/// in the query's words: "the row of each `DISTINCT ON (k)` key: k, v, ordered by k, v DESC".
/// `None` for the state of any other query.
fn distinct_on_state(schema: &SchemaRef) -> Option<String> {
    const FIRST: &str = "first_value(";
    const ORDER: &str = ") ORDER BY [";
    let mut keys: Vec<String> = Vec::new();
    let mut selected: Vec<String> = Vec::new();
    let mut order = None;
    for field in schema.fields() {
        let name = readable_column(field.name());
        let Some(rest) = name.strip_prefix(FIRST) else {
            // `c@N`: the value a `first_value` is ordered by, part of its state.
            let ordering = name
                .rsplit_once('@')
                .is_some_and(|(_, n)| n.chars().all(|c| c.is_ascii_digit()));
            // Another aggregate's partial state (`sum(s.v)[sum]`): not a `DISTINCT ON`.
            if name.ends_with(']') {
                return None;
            }
            if !ordering {
                keys.push(unqualified(&name));
            }
            continue;
        };
        let (column, rest) = rest.split_once(ORDER)?;
        let (by, part) = rest.rsplit_once("][")?;
        match part {
            "first_value]" => selected.push(unqualified(column)),
            "first_value_is_set]" => {}
            _ => return None,
        }
        order.get_or_insert_with(|| unqualified(&by.replace(" ASC NULLS LAST", "")));
    }
    let order = order?;
    // `DISTINCT ON`'s `ORDER BY` begins with its keys (DataFusion requires it); a `GROUP BY`
    // keeping `first_value(v ORDER BY ts)` alone is no `DISTINCT ON`.
    if !order.starts_with(&keys.join(", ")) {
        return None;
    }
    Some(format!(
        "the row of each `DISTINCT ON ({})` key: {}, ordered by {order}",
        keys.join(", "),
        selected.join(", ")
    ))
}

/// `text` without the qualifiers of the column names in it (`sum(x.v)` is `sum(v)`): each
/// identifier directly followed by a `.` is left out, a number's `.` kept.
fn unqualified(text: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        let identifier = word
            .chars()
            .next()
            .is_some_and(|f| f.is_alphabetic() || f == '_');
        if !(c == '.' && identifier) {
            out.push_str(&word);
            out.push(c);
        }
        word.clear();
    }
    out + &word
}

/// A state column's name as DataFusion writes it, with its interval literals
/// (`IntervalMonthDayNano("IntervalMonthDayNano { months: 0, days: 0, nanoseconds: 60000000000 }")`)
/// written as SQL (`INTERVAL '60 seconds'`).
fn readable_column(name: &str) -> String {
    const OPEN: &str = "IntervalMonthDayNano(\"IntervalMonthDayNano { ";
    const CLOSE: &str = " }\")";
    let mut out = String::new();
    let mut rest = name;
    while let Some(at) = rest.find(OPEN) {
        let Some(end) = rest[at..].find(CLOSE) else {
            break;
        };
        let fields = &rest[at + OPEN.len()..at + end];
        let value = |key: &str| {
            fields
                .split(", ")
                .find_map(|kv| {
                    kv.strip_prefix(key)?
                        .strip_prefix(": ")?
                        .parse::<i128>()
                        .ok()
                })
                .unwrap_or(0)
        };
        let (months, days, nanos) = (value("months"), value("days"), value("nanoseconds"));
        let mut parts = Vec::new();
        if months != 0 {
            parts.push(format!("{months} months"));
        }
        if days != 0 {
            parts.push(format!("{days} days"));
        }
        if nanos != 0 || parts.is_empty() {
            parts.push(if nanos % 1_000_000_000 == 0 {
                format!("{} seconds", nanos / 1_000_000_000)
            } else {
                format!("{nanos} nanoseconds")
            });
        }
        out.push_str(&rest[..at]);
        out.push_str(&format!("INTERVAL '{}'", parts.join(" ")));
        rest = &rest[at + end + CLOSE.len()..];
    }
    out.push_str(rest);
    let out = plain_literals(&out);
    // DataFusion plans `count(*)` as `count(Int64(1))`.
    out.replace("count(1)", "count(*)")
}

/// `name` with DataFusion's typed literals (`Int64(5)`, `Utf8("a")`, `Boolean(true)`) written
/// as SQL writes them (`5`, `'a'`, `true`).
fn plain_literals(name: &str) -> String {
    const TYPES: [&str; 12] = [
        "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32",
        "Float64", "Utf8", "Boolean",
    ];
    let mut out = String::new();
    let mut rest = name;
    'scan: while !rest.is_empty() {
        for ty in TYPES {
            let Some(inner) = rest.strip_prefix(ty).and_then(|r| r.strip_prefix('(')) else {
                continue;
            };
            // Only a whole word: `xInt64(` is some other name.
            if out
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                continue;
            }
            let literal = if let Some(text) = inner.strip_prefix('"') {
                text.find("\")")
                    .map(|end| (format!("'{}'", &text[..end]), end + 3))
            } else {
                inner
                    .find(')')
                    .map(|end| (inner[..end].to_string(), end + 1))
            };
            if let Some((literal, used)) = literal
                && !literal.contains('(')
            {
                out.push_str(&literal);
                rest = &inner[used..];
                continue 'scan;
            }
        }
        let next = rest.chars().next().expect("not empty");
        out.push(next);
        rest = &rest[next.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    /// A state schema of columns `names` (types do not matter here).
    fn state(names: &[&str]) -> super::SchemaRef {
        Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn a_distinct_on_state_is_said_in_the_query_s_words_and_no_other_is() {
        let order = "ORDER BY [s.k ASC NULLS LAST, s.v DESC NULLS FIRST]";
        let distinct_on = state(&[
            "k",
            &format!("first_value(s.k) {order}[first_value]"),
            "k@0",
            "v@1",
            &format!("first_value(s.k) {order}[first_value_is_set]"),
            &format!("first_value(s.v) {order}[first_value]"),
            "k@0",
            "v@1",
            &format!("first_value(s.v) {order}[first_value_is_set]"),
        ]);
        assert_eq!(
            super::distinct_on_state(&distinct_on).as_deref(),
            Some("the row of each `DISTINCT ON (k)` key: k, v, ordered by k, v DESC NULLS FIRST")
        );
        // A GROUP BY keeping `first_value(v ORDER BY ts)`, alone or beside a sum.
        let by_ts = "ORDER BY [s.ts ASC NULLS LAST]";
        let first_value = [
            "k",
            &format!("first_value(s.v) {by_ts}[first_value]"),
            "ts@0",
            &format!("first_value(s.v) {by_ts}[first_value_is_set]"),
        ];
        assert_eq!(super::distinct_on_state(&state(&first_value)), None);
        let mut with_sum = first_value.to_vec();
        with_sum.push("sum(s.v)[sum]");
        assert_eq!(super::distinct_on_state(&state(&with_sum)), None);
    }

    #[test]
    fn interval_literals_in_state_column_names_read_as_sql() {
        let name = "date_bin(IntervalMonthDayNano(\"IntervalMonthDayNano { months: 0, days: 0, \
                    nanoseconds: 60000000000 }\"),orders.ts)";
        assert_eq!(
            super::readable_column(name),
            "date_bin(INTERVAL '60 seconds',orders.ts)"
        );
        let months = "f(IntervalMonthDayNano(\"IntervalMonthDayNano { months: 2, days: 1, \
                      nanoseconds: 5 }\"))";
        assert_eq!(
            super::readable_column(months),
            "f(INTERVAL '2 months 1 days 5 nanoseconds')"
        );
        assert_eq!(super::readable_column("sum(s.v)[sum]"), "sum(s.v)[sum]");
    }

    #[test]
    fn typed_literals_in_state_column_names_read_as_sql() {
        assert_eq!(
            super::readable_column("count(Int64(1))[count]"),
            "count(*)[count]"
        );
        assert_eq!(
            super::readable_column("sum(s.v * Int64(10))[sum]"),
            "sum(s.v * 10)[sum]"
        );
        assert_eq!(
            super::readable_column("max(s.k = Utf8(\"a)b\"))[max]"),
            "max(s.k = 'a)b')[max]"
        );
        assert_eq!(super::readable_column("bigInt64(x)"), "bigInt64(x)");
    }
}
