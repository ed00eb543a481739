//! The watermark's rules, as pure functions over what the logs hold (docs/design.md §5.5),
//! tested without storage or a query.
//!
//! - A batch runs with the watermark the batch before it computed, and only a stateful query
//!   has one (a stateless query keeps no state for it to close).
//! - After a batch, the candidate is each watermarked source's latest event time minus its
//!   delay; with several sources it follows the slowest, and there is none until every such
//!   source has seen an event time, except that a source idle past its `idle_timeout` (it has
//!   read nothing for that long in batch time) holds it back no more (Flink's idleness).
//! - The watermark never goes back.
//! - Without new input, a batch still runs when the watermark has moved and closes something
//!   in the state (Spark's "no-data batch").

use std::collections::{BTreeMap, BTreeSet};

/// The watermark a batch runs with: the one its predecessor computed, for a stateful query.
pub fn for_batch(stateful: bool, computed_before: Option<i64>) -> Option<i64> {
    computed_before.filter(|_| stateful)
}

/// The watermark the next batch runs with, after a batch that ran with `current`, given the
/// latest event time each source has seen (`event_time_max_ms`, milliseconds), each
/// watermarked source's delay (`delays_ms`), and the sources idle past their timeout (`idle`),
/// which hold it back no more; while every source is idle it stays where it is.
pub fn next(
    stateful: bool,
    current: Option<i64>,
    event_time_max_ms: &BTreeMap<String, i64>,
    delays_ms: &BTreeMap<String, i64>,
    idle: &BTreeSet<String>,
) -> Option<i64> {
    if !stateful {
        return None;
    }
    if delays_ms.keys().all(|source| idle.contains(source)) {
        return current;
    }
    let candidate = delays_ms
        .iter()
        .filter(|(source, _)| !idle.contains(*source))
        .map(|(source, delay)| {
            event_time_max_ms
                .get(source)
                .map(|max| max.saturating_sub(*delay))
        })
        .collect::<Option<Vec<_>>>()
        .and_then(|each| each.into_iter().min());
    current.max(candidate)
}

/// Whether a batch without new input runs: the watermark `next` has moved past `previous`,
/// and `closes(next)` says it closes something in the state.
pub fn no_data_batch_runs(
    next: Option<i64>,
    previous: Option<i64>,
    closes: impl FnOnce(i64) -> bool,
) -> bool {
    next.filter(|w| Some(*w) > previous).is_some_and(closes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, i64)]) -> BTreeMap<String, i64> {
        entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn the_watermark_is_the_latest_event_time_less_the_delay_and_never_goes_back() {
        let delays = map(&[("a", 1_000)]);
        assert_eq!(
            next(true, None, &map(&[("a", 5_000)]), &delays, &BTreeSet::new()),
            Some(4_000)
        );
        assert_eq!(
            next(
                true,
                Some(6_000),
                &map(&[("a", 5_000)]),
                &delays,
                &BTreeSet::new()
            ),
            Some(6_000),
            "never back"
        );
        assert_eq!(
            next(true, Some(3_000), &map(&[]), &delays, &BTreeSet::new()),
            Some(3_000)
        );
    }

    #[test]
    fn with_several_sources_it_follows_the_slowest_once_all_have_seen_event_time() {
        let delays = map(&[("a", 1_000), ("b", 0)]);
        assert_eq!(
            next(true, None, &map(&[("a", 9_000)]), &delays, &BTreeSet::new()),
            None,
            "b saw none"
        );
        assert_eq!(
            next(
                true,
                None,
                &map(&[("a", 9_000), ("b", 2_000)]),
                &delays,
                &BTreeSet::new()
            ),
            Some(2_000)
        );
    }

    #[test]
    fn an_idle_source_holds_the_watermark_back_no_more() {
        let delays = map(&[("a", 0), ("b", 0)]);
        let idle: BTreeSet<String> = ["b".to_string()].into();
        let seen = map(&[("a", 9_000), ("b", 2_000)]);
        assert_eq!(next(true, None, &seen, &delays, &idle), Some(9_000));
        assert_eq!(
            next(true, None, &map(&[("a", 9_000)]), &delays, &idle),
            Some(9_000),
            "an idle source that saw no event time does not hold it back either"
        );
        let all: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        assert_eq!(
            next(true, Some(1_000), &seen, &delays, &all),
            Some(1_000),
            "all idle: stays"
        );
    }

    #[test]
    fn a_stateless_query_has_no_watermark() {
        let delays = map(&[("a", 0)]);
        assert_eq!(
            next(false, Some(1), &map(&[("a", 9)]), &delays, &BTreeSet::new()),
            None
        );
        assert_eq!(for_batch(false, Some(5)), None);
        assert_eq!(for_batch(true, Some(5)), Some(5));
    }

    #[test]
    fn a_no_data_batch_runs_only_when_the_watermark_moved_and_closes_state() {
        assert!(no_data_batch_runs(Some(10), Some(5), |_| true));
        assert!(!no_data_batch_runs(Some(10), Some(5), |_| false));
        assert!(!no_data_batch_runs(Some(5), Some(5), |_| true), "not moved");
        assert!(!no_data_batch_runs(None, None, |_| true));
        assert!(no_data_batch_runs(Some(0), None, |w| w == 0));
    }
}
