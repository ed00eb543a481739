//! Secrets in connection settings: a setting may name an environment variable as `${VAR}`,
//! filled in only when a connector connects, so that the pipeline file, the checkpoint's copy
//! of it and every message keep the name and never the value.

/// `text` with every `${VAR}` replaced by environment variable `VAR`; an unset variable is an
/// error naming it (never a value).
pub fn expand_env(text: &str) -> Result<String, String> {
    expand_env_with(text, |value, _| value.to_string())
}

/// [`expand_env`], each value written as `escape(value, before)` gives it, where `before` is
/// the text up to the `${` as filled in so far: a value goes in as one value of the syntax it
/// lands in (a connection string's), never as more of its syntax.
pub fn expand_env_with(
    text: &str,
    escape: impl Fn(&str, &str) -> String,
) -> Result<String, String> {
    if text.contains("${")
        && let Some(why) = withheld()
    {
        return Err(why);
    }
    expand_with(text, |name| std::env::var(name).ok(), escape)
}

/// Why this process fills in no `${VAR}` ([`withhold_env`]); `None` where it does. Every
/// filling in from the environment asks it first.
pub fn withheld() -> Option<String> {
    WITHHELD.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Why this process fills in no `${VAR}` ([`withhold_env`]), where it does not.
static WITHHELD: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// From now on, this process fills in no `${VAR}` from its environment: each is an error
/// saying `why`. For a command that reads settings someone else wrote (`inspect` of another
/// user's checkpoint, whose stored pipeline file names the servers it would connect to: walk
/// 121, the caller's `PGPASSWORD` went to a server that file named).
pub fn withhold_env(why: String) {
    *WITHHELD.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
}

/// The values `${VAR}`s were filled in with in this process (of 4 characters or more), which
/// [`masked`] takes out of a message.
static FILLED_IN: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Notes `values`, the forms a `${VAR}`'s value was filled in as, for [`masked`] (those of 4
/// characters or more).
pub fn note_filled_in(values: &[&str]) {
    let mut filled = FILLED_IN.lock().unwrap_or_else(|e| e.into_inner());
    for value in values {
        if value.chars().count() >= 4 {
            filled.insert((*value).to_string());
            // As PostgreSQL quotes a role or database name, cut to its 63 bytes (`NAMEDATALEN`
            // - 1; walk 121: a longer value was shown whole but for its end).
            if value.len() > POSTGRES_NAME_BYTES {
                let mut end = POSTGRES_NAME_BYTES;
                while !value.is_char_boundary(end) {
                    end -= 1;
                }
                filled.insert(value[..end].to_string());
            }
        }
    }
}

/// The bytes of a name PostgreSQL keeps (`NAMEDATALEN` - 1).
const POSTGRES_NAME_BYTES: usize = 63;

/// `text` with every value a `${VAR}` was filled in with in this process written `***`: a
/// server's error may quote one (`role "..." does not exist`, a broker address that does not
/// resolve), and a value named in a place other than a password's would reach the message
/// (walk 71 (1)). Values under 4 characters stay (they would mask words).
pub fn masked(text: &str) -> std::borrow::Cow<'_, str> {
    let filled = FILLED_IN.lock().unwrap_or_else(|e| e.into_inner());
    if !filled.iter().any(|value| text.contains(value.as_str())) {
        return std::borrow::Cow::Borrowed(text);
    }
    // Longest first, so that a value inside another is not left half shown.
    let mut values: Vec<&String> = filled.iter().collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = text.to_string();
    for value in values {
        out = out.replace(value.as_str(), "***");
    }
    std::borrow::Cow::Owned(out)
}

/// [`expand_env_with`], each variable's value as `lookup` gives it (`None`: not set).
pub fn expand_with(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
    escape: impl Fn(&str, &str) -> String,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("`${` without its closing `}`".into());
        };
        let name = &after[..end];
        let value = lookup(name).ok_or_else(|| {
            format!("environment variable `{name}` (named as `${{{name}}}`) is not set")
        })?;
        let escaped = escape(&value, &out);
        // As it may be quoted: escaped into the syntax it lands in too.
        note_filled_in(&[&value, &escaped]);
        out.push_str(&escaped);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether the librdkafka property `key` holds a secret: a password, a secret, a private key
/// (`ssl.key.pem`), an OAuth configuration or a Java client's login (`sasl.jaas.config`, which
/// holds a password). Certificates (`ssl.ca.pem`,
/// `ssl.certificate.pem`) are public.
pub fn is_secret_property(key: &str) -> bool {
    ["password", "secret", "jaas"]
        .iter()
        .any(|part| key.contains(part))
        || ["ssl.key.pem", "sasl.oauthbearer.config"].contains(&key)
}

/// Whether `value` is one environment variable reference, `${VAR}`, as a whole.
pub fn is_env_reference(value: &str) -> bool {
    value.starts_with("${") && value.ends_with('}') && value.matches("${").count() == 1
}

/// URL schemes that name an object store (what the storage module opens).
const STORE_SCHEMES: &[&str] = &[
    "file", "memory", "s3", "s3a", "gs", "az", "abfs", "abfss", "azure", "adl", "http", "https",
];

/// `text` with the secret parts of a URL in it replaced by `***`: the password of its user
/// part, and the value of each query parameter (`?sig=***&se=***`). Text that is not a URL
/// comes back unchanged.
pub fn redact_url(text: &str) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        // A URL the parser refuses may still carry a user part (`file://u:pw@host/x`).
        return match raw_user_part(text) {
            Some((start, end)) => match text[start..end].find(':') {
                Some(colon) => format!("{}:***{}", &text[..start + colon], &text[end..]),
                None if STORE_SCHEMES
                    .contains(&text[..start - 3].to_ascii_lowercase().as_str()) =>
                {
                    format!("{}***{}", &text[..start], &text[end..])
                }
                None => text.to_string(),
            },
            None => text.to_string(),
        };
    };
    if !text.contains("://") {
        return text.to_string();
    }
    let mut changed = false;
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
        changed = true;
    }
    // A storage URL's user name alone may be a token (`s3://ghp_...@bucket/x`, walk 78); a
    // database's is a role, and `abfs[s]://container@account` names a container.
    if !url.username().is_empty()
        && STORE_SCHEMES.contains(&url.scheme())
        && !matches!(url.scheme(), "abfs" | "abfss")
    {
        let _ = url.set_username("***");
        changed = true;
    }
    if url.query().is_some() {
        let names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let query = names
            .iter()
            .map(|k| format!("{k}=***"))
            .collect::<Vec<_>>()
            .join("&");
        url.set_query(Some(&query));
        changed = true;
    }
    // A fragment may carry a token as well (`#sig=...`, walk 71 (9)).
    if url.fragment().is_some_and(|f| !f.is_empty()) {
        url.set_fragment(Some("***"));
        changed = true;
    }
    if changed {
        url.to_string()
    } else {
        text.to_string()
    }
}

/// What secret a storage URL carries, if any: Sluice never takes credentials from a storage
/// URL (they would be written into the checkpoint's copy of the pipeline and into messages),
/// so a URL with a user part or query parameters is refused, naming where credentials go.
pub fn url_secret(text: &str) -> Option<String> {
    let Ok(url) = url::Url::parse(text) else {
        // Unparsed (a user part where the scheme has none, as `file://u:pw@host/x`), a store
        // URL with one is still refused.
        let scheme = text.split("://").next()?.to_ascii_lowercase();
        return (STORE_SCHEMES.contains(&scheme.as_str()) && raw_user_part(text).is_some())
            .then(|| refusal("a user part", ""));
    };
    if !text.contains("://") || !STORE_SCHEMES.contains(&url.scheme()) {
        return None;
    }
    // In `abfs[s]://container@account.dfs.core.windows.net/path` (the Hadoop form Azure's
    // tools and object_store take) the user part names the container, not a credential.
    let container_at_account = matches!(url.scheme(), "abfs" | "abfss");
    // A `#` or `?` meant as part of a key (legal in S3's) is read as a URL's fragment or
    // query (audit 87: a path with `#` was told of credentials alone).
    let (what, in_a_name) = if url.password().is_some() {
        ("a user name and password", "")
    } else if !url.username().is_empty() && !container_at_account {
        ("a user name", "")
    } else if url.query().is_some() {
        (
            "query parameters",
            "; a `?` meant as part of a file or folder name is written `%3F`",
        )
    } else if url.fragment().is_some() {
        // Dropped by every store (`#...` is no part of an object's key): a signature or token
        // pasted there would be lost without a word.
        (
            "a fragment (`#...`)",
            "; a `#` meant as part of a file or folder name is written `%23`",
        )
    } else {
        return None;
    };
    Some(refusal(what, in_a_name))
}

/// The refusal of a URL that carries `what`; `in_a_name`: how to write the character that
/// made it one, where it was meant as part of a name.
fn refusal(what: &str, in_a_name: &str) -> String {
    format!(
        "the URL carries {what}, which Sluice does not take from a storage URL (it would be \
         written into the checkpoint and into messages): give credentials to the store in its \
         environment variables (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; \
         GOOGLE_SERVICE_ACCOUNT; AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_KEY) and \
         remove them from the URL{in_a_name}"
    )
}

/// Where the user part (`user:password`) of `scheme://user:password@host/...` is in `text`,
/// read without a URL parser (for text the parser refuses).
fn raw_user_part(text: &str) -> Option<(usize, usize)> {
    let start = text.find("://")? + 3;
    let authority_end = text[start..].find('/').map_or(text.len(), |i| start + i);
    let at = text[start..authority_end].rfind('@')?;
    Some((start, start + at))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walk 71 (1): a `${VAR}` filled in where a server's error quotes it (a role name, a
    /// broker's address) showed its value in the message.
    #[test]
    fn values_filled_in_are_masked_in_messages() {
        let filled = expand_with(
            "host=h user=${W71_USER} dbname=d",
            |_| Some("hunter2secret".to_string()),
            |value, _| value.to_string(),
        )
        .expect("filled");
        assert_eq!(filled, "host=h user=hunter2secret dbname=d");
        assert_eq!(
            masked("role \"hunter2secret\" does not exist"),
            "role \"***\" does not exist"
        );
        assert_eq!(masked("nothing of it here"), "nothing of it here");
        // Walk 121: PostgreSQL quotes a role name cut to 63 bytes.
        let long = format!("sk_live_{}", "A".repeat(70));
        note_filled_in(&[&long]);
        assert_eq!(
            masked(&format!("role \"{}\" does not exist", &long[..63])),
            "role \"***\" does not exist"
        );
    }

    #[test]
    fn secrets_in_urls_are_redacted_and_refused() {
        let sas = "az://c/out?sv=2024&sig=SeCrEt%3D";
        assert_eq!(redact_url(sas), "az://c/out?sv=***&sig=***");
        assert!(
            url_secret(sas)
                .expect("refused")
                .contains("query parameters")
        );
        let basic = "s3://AKIA:wJalrSECRET@bucket/ckpt";
        assert_eq!(redact_url(basic), "s3://***:***@bucket/ckpt");
        assert!(url_secret(basic).expect("refused").contains("password"));
        // Walk 78 (3a): a user name alone may be a token; a database's role stays.
        let token = "s3://ghp_TokenSecret123456@shared/sec/ckpt";
        assert_eq!(redact_url(token), "s3://***@shared/sec/ckpt");
        assert!(url_secret(token).expect("refused").contains("a user name"));
        assert_eq!(
            redact_url("postgresql://app@db:5432/x"),
            "postgresql://app@db:5432/x"
        );
        assert_eq!(
            redact_url("abfss://box@acct.dfs.core.windows.net/p"),
            "abfss://box@acct.dfs.core.windows.net/p"
        );
        // Walk 49 (12): a fragment, which every store drops, is refused too; and masked
        // where it is shown (walk 71 (9): the refusal printed it).
        // Audit 87: a `#` meant in a name is said how to write.
        assert!(
            url_secret("s3://bkt/out/c#d")
                .expect("refused")
                .contains("a `#` meant as part of a file or folder name is written `%23`")
        );
        assert!(
            url_secret("gs://bucket/in#SigZZ")
                .expect("refused")
                .contains("a fragment")
        );
        assert_eq!(redact_url("s3://b/out1#sig=hunter2"), "s3://b/out1#***");
        for plain in [
            "s3://bucket/ckpt",
            "/tmp/x",
            "relative/path",
            "kafka://h:9092/t",
        ] {
            assert_eq!(redact_url(plain), plain);
            assert_eq!(url_secret(plain), None, "{plain}");
        }
        // Azure's Hadoop form names the container before the `@`.
        assert_eq!(
            url_secret("abfss://data@acct.dfs.core.windows.net/ckpt"),
            None
        );
        assert!(url_secret("abfss://data:key@acct.dfs.core.windows.net/ckpt").is_some());
        // Not an object store: another connector's own setting.
        assert_eq!(url_secret("postgres://u:p@h/db"), None);
        // A user part the URL parser refuses (a file URL has none) is refused and redacted.
        let file = "file://user:SUPERSECRET7@localhost/tmp/x";
        assert!(url_secret(file).expect("refused").contains("user part"));
        assert_eq!(redact_url(file), "file://user:***@localhost/tmp/x");
    }

    #[test]
    fn a_secret_property_is_told_from_a_public_one() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "sasl.oauthbearer.client.secret",
            "ssl.key.pem",
            "sasl.jaas.config",
        ] {
            assert!(is_secret_property(key), "{key}");
        }
        for key in [
            "sasl.username",
            "security.protocol",
            "ssl.ca.pem",
            "ssl.certificate.pem",
        ] {
            assert!(!is_secret_property(key), "{key}");
        }
        assert!(is_env_reference("${KAFKA_PASSWORD}"));
        assert!(!is_env_reference("${A}x") && !is_env_reference("hunter2"));
    }

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
