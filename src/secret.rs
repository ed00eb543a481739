//! Secrets in connection settings: a setting may name an environment variable as `${VAR}`,
//! filled in only when a connector connects, so that the pipeline file, the checkpoint's copy
//! of it and every message keep the name and never the value.

/// `text` with every `${VAR}` replaced by environment variable `VAR`; an unset variable is an
/// error naming it (never a value).
pub fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("`${` without its closing `}`".into());
        };
        let name = &after[..end];
        let value = std::env::var(name).map_err(|_| {
            format!("environment variable `{name}` (named as `${{{name}}}`) is not set")
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_environment_variable_is_named() {
        assert_eq!(
            expand_env("host=h password=${SLUICE_TEST_UNSET_9} x").expect_err("unset"),
            "environment variable `SLUICE_TEST_UNSET_9` (named as `${SLUICE_TEST_UNSET_9}`) is not set"
        );
        assert_eq!(expand_env("no variables").as_deref(), Ok("no variables"));
        assert!(expand_env("${open").is_err());
    }

    #[test]
    fn a_set_variable_is_filled_in() {
        // PATH is set wherever the tests run.
        let path = std::env::var("PATH").expect("PATH");
        assert_eq!(
            expand_env("a${PATH}b").as_deref(),
            Ok(format!("a{path}b").as_str())
        );
    }
}
