//! The words every part of Sluice uses (docs/design.md §2): batch ids, epochs, the settings a
//! batch is pinned to, and the fingerprint of a text. A leaf module: it imports no other part,
//! so the checkpoint, the planner, the sources and the sinks can all name these without
//! importing each other.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A batch number: batch `N` reads the input range `(end of N-1, end of N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BatchId(pub u64);

impl BatchId {
    /// The batch after this one.
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }

    /// The batch before this one, if any.
    pub fn prev(self) -> Option<Self> {
        self.0.checked_sub(1).map(Self)
    }
}

/// A run's epoch: strictly increasing across the runs of one checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl std::fmt::Display for BatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Settings pinned per batch so that a replay computes the same thing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PinnedSettings {
    /// DataFusion's `target_partitions`.
    pub target_partitions: usize,
    /// DataFusion's `batch_size`.
    pub batch_size: usize,
    /// Whether the query's conditions on a stream's own rows are tested before its watermark,
    /// as Spark pushes them below `withWatermark` (`plan::pre_watermark_filters`): true for
    /// every batch planned since; absent (false) in a batch an older Sluice planned, which is
    /// computed again as it ran.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub where_before_watermark: bool,
    /// Whether a join key's `IS NOT NULL` is among those conditions, as Spark infers it for
    /// the keys of an inner join (and of an outer join's side that gives nulls) and pushes it
    /// below `withWatermark`, so that a row whose key is null neither moves the watermark nor
    /// is late (walk 112): true for every batch planned since; absent (false) in a batch an
    /// older Sluice planned, which is computed again as it ran.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub join_keys_before_watermark: bool,
}

/// `name` as SQL must write it to mean that column: as is where it is lower case letters,
/// digits and `_` (not starting with a digit), which SQL reads unchanged; otherwise in double
/// quotes (a `"` in it doubled), since SQL lower-cases a name outside quotes.
pub fn sql_identifier(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    match plain {
        true => name.to_string(),
        false => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// The fingerprint of a query text: the first 16 hex digits of its SHA-256.
pub fn fingerprint(sql: &str) -> String {
    let digest = Sha256::digest(sql.as_bytes());
    hex::encode(&digest[..8])
}

/// The settings a new batch is pinned to.
pub fn default_settings() -> PinnedSettings {
    PinnedSettings {
        target_partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
        batch_size: 8192,
        where_before_watermark: true,
        join_keys_before_watermark: true,
    }
}

/// [`plain_types`] of the message about key `key` (dotted), with the least whole number the
/// key takes where that is more than 0 (walk 123: `max_files_per_batch: -3` was "expected a
/// whole number, 0 or more", and `0` then "must be at least 1").
pub fn plain_types_of(key: &str, message: &str) -> String {
    // (Not `max_rows`: the console sink's takes 0, the `rate` source's does not.)
    const LEAST: [(&str, u64); 8] = [
        ("max_files_per_batch", 1),
        ("max_records_per_batch", 1),
        ("max_rows_per_batch", 1),
        ("rows_per_second", 1),
        ("partitions", 1),
        ("attempts", 1),
        ("snapshot_every", 1),
        ("retain_batches", 2),
    ];
    let message = plain_types(message);
    let leaf = key.rsplit('.').next().unwrap_or(key);
    match LEAST.iter().find(|(name, _)| *name == leaf) {
        Some((_, least)) => message.replace(
            "expected a whole number, 0 or more",
            &format!("expected a whole number, {least} or more"),
        ),
        None => message,
    }
}

/// A deserializer's message with Rust's type names said in words: "expected u64" is
/// "expected a whole number, 0 or more".
pub fn plain_types(message: &str) -> String {
    const WORDS: [(&str, &str); 10] = [
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u16", "expected a whole number, 0 or more"),
        ("expected u8", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ];
    let mut message = message.to_string();
    for (rust, words) in WORDS {
        if let Some(at) = message.find(rust) {
            // Whole words only: `expected u64` but not `expected u640`.
            let end = at + rust.len();
            if !message[end..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                message.replace_range(at..end, words);
            }
        }
    }
    // serde's name for a section written as something else than a mapping (`watermark: ts`):
    // `expected struct WatermarkConfig`.
    while let Some(at) = message.find("expected struct ") {
        let rest = &message[at + "expected struct ".len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let name = &rest[..end];
        let words = match name {
            "WatermarkConfig" => "expected a mapping, as `{ column: ts, delay: 10s }`",
            "SinkConfig" => "expected a mapping, as `{ kind: files, path: out, format: parquet }`",
            "SourceConfig" => "expected a mapping, as `{ kind: files, path: in, format: json }`",
            // Audit 88a: `engine: distributed`, as the docs' prose says it.
            "EngineConfig" => {
                "expected a mapping, as `{ kind: distributed, workers: [http://10.0.0.5:50051, \
                 http://10.0.0.6:50051] }` (or `{ kind: local }`, the default)"
            }
            _ => "expected a mapping of keys",
        };
        message.replace_range(at..at + "expected struct ".len() + end, words);
    }
    message
}

/// An error in words with its causes (`error connecting to server: Connection refused`): a
/// client whose own text leaves the cause to its sources.
pub fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

/// `path` (a folder or file, a URL) as one word of a POSIX shell command a message gives,
/// so that the command runs as pasted (walk 79: `sluice rewind ckpt #1 --to 5` ran as
/// `sluice rewind ckpt`): as it is where it holds only letters, digits and `_ . / : @ % + , =
/// -`; else in single quotes (a quote in it as `'\''`). A relative path that starts with `-`
/// (which a command would take for an option) gets `./` in front.
pub fn shell_word(path: &str) -> std::borrow::Cow<'_, str> {
    let path: std::borrow::Cow<'_, str> = if path.starts_with('-') {
        format!("./{path}").into()
    } else {
        path.into()
    };
    let plain = !path.is_empty()
        && !path.starts_with('~')
        && path
            .chars()
            .all(|c| c.is_alphanumeric() || "_./:@%+,=-".contains(c));
    if plain {
        path
    } else {
        format!("'{}'", path.replace('\'', "'\\''")).into()
    }
}

/// `text` as a YAML value a message tells the user to write after a key (`table: <it>`), so
/// that the pipeline file reads it back as that text: as it is where YAML reads it so; else in
/// single quotes (a quote in it doubled), as YAML 1.2 quotes (a schema-qualified
/// `"My Schema".clicks` otherwise is no YAML value at all).
pub fn yaml_scalar(text: &str) -> std::borrow::Cow<'_, str> {
    let plain = matches!(
        serde_yaml::from_str::<serde_yaml::Value>(text),
        Ok(serde_yaml::Value::String(read)) if read == text
    );
    if plain {
        text.into()
    } else {
        format!("'{}'", text.replace('\'', "''")).into()
    }
}

/// An inclusive run of numbers (batches, offsets) as a message says it: `3`, or `3 to 5`.
pub fn span(first: impl std::fmt::Display, last: impl std::fmt::Display) -> String {
    let (first, last) = (first.to_string(), last.to_string());
    if first == last {
        first
    } else {
        format!("{first} to {last}")
    }
}

/// The offsets `start` up to but not including `end` (a half-open range, as Kafka's
/// positions are kept) as a message says them: `offsets 3 to 5`, `offset 3`.
pub fn offsets(start: i64, end: i64) -> String {
    if end - start == 1 {
        format!("offset {start}")
    } else {
        format!("offsets {}", span(start, end - 1))
    }
}

/// A keyword enum of the pipeline file: each variant and the word that names it, parsed with
/// a "did you mean" hint for a typo.
macro_rules! keyword_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// The keyword as written in a pipeline file.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err($crate::vocab::unknown_keyword(other, &[$($text),+])),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use keyword_enum;

/// The message for a keyword that is not one of `expected`, with the nearest one.
pub fn unknown_keyword(got: &str, expected: &[&str]) -> String {
    let list = expected
        .iter()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match nearest(got, expected) {
        Some(near) => {
            format!("unknown value `{got}`, expected one of {list}; did you mean `{near}`?")
        }
        None => format!("unknown value `{got}`, expected one of {list}"),
    }
}

/// The candidate closest to `got`, when it is close enough to be a likely typo: similar by
/// Jaro-Winkler, or one edit away (two letters swapped: `cvs` for `csv`).
pub fn nearest<'a>(got: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| {
            let one_edit = got.len() >= 3 && strsim::osa_distance(got, c) <= 1;
            (
                strsim::jaro_winkler(got, c) + if one_edit { 1.0 } else { 0.0 },
                *c,
            )
        })
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The review of walk 100's fix: a schema-qualified name with quotes, written after
    /// `table:` as the message gave it, was no YAML; each reads back as the name.
    #[test]
    fn a_yaml_scalar_reads_back_as_its_text() {
        for text in [
            "public.clicks",
            "\"My Schema\".clicks",
            "it's",
            "true",
            "12",
            "a: b",
            "- x",
            "#tag",
        ] {
            let yaml = format!("table: {}", yaml_scalar(text));
            let read: std::collections::BTreeMap<String, String> =
                serde_yaml::from_str(&yaml).expect("YAML");
            assert_eq!(read["table"], text, "{yaml}");
        }
        assert_eq!(yaml_scalar("public.clicks"), "public.clicks");
    }

    /// Walk 79 (3): a path in a command a message gives runs as pasted into a shell.
    #[test]
    fn a_path_is_one_shell_word() {
        assert_eq!(shell_word("/tmp/ckpt-1/a.b"), "/tmp/ckpt-1/a.b");
        assert_eq!(shell_word("s3://bucket/ck?x=1"), "'s3://bucket/ck?x=1'");
        assert_eq!(shell_word("ckpt ü #1 [a]"), "'ckpt ü #1 [a]'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("-ck"), "./-ck");
        assert_eq!(shell_word("-c k"), "'./-c k'");
        assert_eq!(shell_word("é"), "é");
        assert_eq!(shell_word(""), "''");
    }
}
