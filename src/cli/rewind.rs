//! `sluice rewind CHECKPOINT --to N`: [`crate::ops::rewind`], printed.

use crate::Error;
use crate::checkpoint::BatchId;

pub(super) async fn run(spec: &str, to: u64) -> Result<(), Error> {
    let location = super::open_checkpoint(spec)?;
    let rewound = crate::ops::rewind(&location, spec, BatchId(to)).await?;
    if rewound.taken_back.is_empty() {
        super::emit(&format!("{spec}: batch {to} is already the last batch\n"));
        return Ok(());
    }
    let mut report = String::new();
    let state = if rewound.stateful {
        ", its state version"
    } else {
        ""
    };
    for (batch, deleted) in &rewound.taken_back {
        let from = rewound
            .sinks
            .get(batch)
            .map(|sink| format!(" from {sink}"))
            .unwrap_or_default();
        // No unit: the sink never took the batch (a Kafka topic it failed to reach); what
        // was deleted is the late-rows sink's.
        let what = match (rewound.units.get(batch), deleted) {
            // Walk 122 (1): "it never took the batch" was said of a Kafka sink whose progress
            // topic was gone, which had taken it; the next run wrote its records twice.
            (None, _) if rewound.untold.contains(batch) => format!(
                "nothing from the sink, which keeps no record now of what it took (its progress \
                 topic gone or emptied), so whether it took the batch cannot be told: if it did, \
                 its records are there and the next run writes them again{}",
                if *deleted > 0 {
                    format!(" ({deleted} late-rows files deleted)")
                } else {
                    String::new()
                }
            ),
            (Some(unit), _) => format!("{deleted} sink {unit}"),
            (None, 0) => "nothing from the sink (it never took the batch)".to_string(),
            (None, _) => format!("{deleted} late-rows files"),
        };
        report.push_str(&format!(
            "took back batch {batch}{from}: {what}{state} and its log entries\n"
        ));
    }
    report.push_str(&format!(
        "{spec}: batch {to} is the last committed batch; the next run computes batch {} and on again\n",
        to + 1
    ));
    // Files deleted here may have been read already by a pipeline whose source is this sink's
    // folder: it keeps the rows it read and reads a file once, so it does not read them again.
    if rewound.units.values().any(|unit| *unit == "files") {
        report.push_str(
            "if another pipeline reads this sink's files as its source, rewind it too, to its \
             last batch before it read the batches taken back: it keeps the rows it read, and \
             reads a file once, not as written again. Rewind such pipelines first, the last of \
             a chain first: once this rewind took their input back, theirs is refused, and only \
             a start over on a new checkpoint with a new sink reads this sink again\n",
        );
    }
    super::emit(&report);
    Ok(())
}
