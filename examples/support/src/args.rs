//! Parsers of the command-line values the example binaries share (clap `value_parser`s: the error is
//! what clap prints after the flag's name).

use std::time::Duration;

/// A token service's public URL (its `iss`, RFC 8414 §2): http(s), no query or fragment; a trailing `/`
/// is dropped.
///
/// # Errors
/// What is wrong with `input`.
pub fn issuer_url(input: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(input)
        .map_err(|error| format!("{error} (write e.g. https://auth.example)"))?;
    if !matches!(url.scheme(), "https" | "http")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err("an http(s) URL without query or fragment (RFC 8414 §2)".into());
    }
    Ok(input.trim_end_matches('/').to_owned())
}

/// A duration with a unit (`30s`, `15m`, `8h`, `30d`), longer than zero.
///
/// # Errors
/// What is wrong with `input`.
pub fn positive_duration(input: &str) -> Result<Duration, String> {
    match humantime::parse_duration(input) {
        Ok(duration) if duration.is_zero() => Err("must be longer than zero".into()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(format!("{error} (write e.g. 30s, 15m, 8h, 30d)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_urls_are_http_without_query_or_fragment() {
        assert_eq!(
            issuer_url("http://127.0.0.1:8080/").as_deref(),
            Ok("http://127.0.0.1:8080")
        );
        assert_eq!(
            issuer_url("https://auth.example/tenant").as_deref(),
            Ok("https://auth.example/tenant")
        );
        for bad in [
            "ftp://auth.example",
            "https://auth.example/?a=1",
            "https://a#b",
            "auth",
        ] {
            assert!(issuer_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_need_a_unit_and_a_length() {
        assert_eq!(positive_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(
            positive_duration("0s"),
            Err("must be longer than zero".to_owned())
        );
        assert!(positive_duration("5").unwrap_err().contains("write e.g."));
    }
}
