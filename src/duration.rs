//! Durations as pipeline files write them: `500ms`, `10s`, `5m`, `1h`.

use std::time::Duration;

/// Parses a duration such as `500ms`, `10s`, `5m` or `1h 30m` (the `humantime` crate's
/// forms), without months or years, which have no fixed length.
///
/// Errors: a message naming `text` and the forms to write; for `1M` (a month to `humantime`,
/// a minute or a megabyte to most readers) and `1y`, that they are refused and why; for a
/// unit in capitals (`1H`), that units are lower case.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let forms = "write it like `500ms`, `10s`, `5m` or `1h`";
    let units: Vec<&str> = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|unit| !unit.is_empty())
        .collect();
    if let Some(unit) = units.iter().find(|unit| {
        **unit == "M"
            || unit.eq_ignore_ascii_case("y")
            || unit.to_ascii_lowercase().starts_with("month")
            || unit.to_ascii_lowercase().starts_with("year")
    }) {
        // `M` alone is read otherwise as often as a month: said where it was written.
        let (what, aside) = if *unit == "M" {
            (
                "month",
                " (and `M` is read as a minute, or megabytes, as often as a month)",
            )
        } else if unit.to_ascii_lowercase().starts_with("month") {
            ("month", "")
        } else {
            ("year", "")
        };
        return Err(format!(
            "invalid duration `{text}`: `{unit}` is a {what}, which has no fixed length{aside}; \
             {forms}, or in days (`30d`, `365d`)"
        ));
    }
    humantime::parse_duration(text.trim()).map_err(|e| {
        let why = if matches!(e, humantime::DurationError::NumberOverflow) {
            "longer than a duration can be"
        } else if text.trim().parse::<f64>().is_ok() {
            "a number needs a unit"
        } else if units
            .iter()
            .any(|u| u.chars().any(|c| c.is_ascii_uppercase()))
            && humantime::parse_duration(&text.trim().to_ascii_lowercase()).is_ok()
        {
            "units are written in lower case"
        } else {
            "not a duration"
        };
        format!("invalid duration `{text}` ({why}); {forms}")
    })
}

/// Serde's reading of a duration written as [`parse_duration`] reads it
/// (`#[serde(deserialize_with = "crate::duration::deserialize")]`); a number (`10`) is
/// refused as needing a unit, not as the wrong type.
///
/// Errors: [`parse_duration`]'s message; for another value, that a duration was expected.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = match <serde_yaml::Value as serde::Deserialize>::deserialize(d)? {
        serde_yaml::Value::String(text) => text,
        serde_yaml::Value::Number(n) => n.to_string(),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a duration, like `500ms`, `10s`, `5m` or `1h`, not {}",
                match other {
                    serde_yaml::Value::Null => "nothing",
                    serde_yaml::Value::Bool(_) => "`true`/`false`",
                    serde_yaml::Value::Sequence(_) => "a list",
                    _ => "a mapping",
                }
            )));
        }
    };
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// [`deserialize`] for an optional duration
/// (`#[serde(default, deserialize_with = "crate::duration::optional")]`).
///
/// Errors: [`deserialize`]'s.
pub fn optional<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        let err = parse_duration("ten").expect_err("a word");
        assert!(
            err.contains("not a duration") && err.contains("`10s`"),
            "{err}"
        );
        let err = parse_duration("10").expect_err("no unit");
        assert!(err.contains("a number needs a unit"), "{err}");
        assert!(
            !err.contains("sec"),
            "humantime's own suggestion is not ours: {err}"
        );
        // Walk 27 (7): `1M` was a month, so a watermark's windows stayed open for a month.
        for text in ["1M", "2 months", "1y", "1Y", "1year"] {
            let err = parse_duration(text).expect_err(text);
            assert!(
                err.contains("has no fixed length") && err.contains("`30d`"),
                "{err}"
            );
            // Walk 36: the aside on `M` only where `M` was written.
            assert_eq!(
                err.contains("`M` is read as a minute"),
                text == "1M",
                "{err}"
            );
        }
        let err = parse_duration("1H").expect_err("capital");
        assert!(err.contains("units are written in lower case"), "{err}");
        assert_eq!(parse_duration("2 seconds"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1min"), Ok(Duration::from_secs(60)));
        // Audit 88a: an overflow was "not a duration".
        let err = parse_duration("99999999999999999999d").expect_err("overflow");
        assert!(err.contains("longer than a duration can be"), "{err}");
    }
}
