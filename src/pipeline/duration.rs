//! Durations as pipeline files write them: `500ms`, `10s`, `5m`, `1h`.

use std::time::Duration;

/// Parses a duration such as `500ms`, `10s`, `5m` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|_| {
        let why = if text.trim().parse::<f64>().is_ok() {
            "a number needs a unit"
        } else {
            "not a duration"
        };
        format!("invalid duration `{text}` ({why}); write it like `500ms`, `10s`, `5m` or `1h`")
    })
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
    }
}
