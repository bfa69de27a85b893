//! Request parameters as Prometheus's API reads them: from the URL and from a
//! form-encoded body together, times as RFC 3339 or Unix seconds, durations as seconds or
//! Prometheus duration strings.

use std::collections::HashMap;

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, StatusCode, header};

use super::error::ApiError;
use crate::model::parse_duration;

/// Largest accepted form body.
const MAX_FORM_BODY: usize = 8 << 20;

/// All values per parameter name, URL first, then body.
#[derive(Debug, Default, Clone)]
pub struct Params(HashMap<String, Vec<String>>);

impl Params {
    pub async fn read(
        query: Option<String>,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Params, ApiError> {
        let mut params = Params::default();
        params.extend(query.unwrap_or_default().as_bytes());
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        if is_form {
            let bytes = to_bytes(body, MAX_FORM_BODY).await.map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "bad_data",
                    format!("request body exceeds {MAX_FORM_BODY} bytes"),
                )
            })?;
            params.extend(&bytes);
        }
        Ok(params)
    }

    fn extend(&mut self, encoded: &[u8]) {
        for (k, v) in url::form_urlencoded::parse(encoded).into_owned() {
            self.0.entry(k).or_default().push(v);
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Every value of a repeated parameter such as `match[]`, empty ones dropped.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .get(name)
            .map(|v| v.iter().filter(|s| !s.is_empty()).cloned().collect())
            .unwrap_or_default()
    }

    /// A boolean parameter as Go's `strconv.ParseBool` reads it (`1`, `t`, `true`, `0`,
    /// `false`, ...); false when absent.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some(text) => crate::gocompat::strconv::parse_bool(text).ok_or_else(|| {
                ApiError::bad_data(format!(
                    "invalid parameter \"{name}\": invalid boolean {text:?}"
                ))
            }),
        }
    }

    /// A required parameter.
    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::bad_data(format!("invalid parameter \"{name}\": missing")))
    }

    /// A time parameter in ms, or `default` when absent.
    pub fn time_ms(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        Ok(self.optional_time_ms(name)?.unwrap_or(default))
    }

    /// A time parameter in ms, if present.
    pub fn optional_time_ms(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|text| {
                parse_time_ms(text)
                    .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}")))
            })
            .transpose()
    }

    /// A time parameter in ms that must be present.
    pub fn required_time_ms(&self, name: &str) -> Result<i64, ApiError> {
        self.optional_time_ms(name)?
            .ok_or_else(|| ApiError::bad_data(format!("invalid parameter \"{name}\": missing")))
    }

    /// A duration parameter in ms, if present.
    pub fn duration_ms(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|text| {
                parse_duration_ms(text)
                    .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}")))
            })
            .transpose()
    }
}

/// RFC 3339 or Unix seconds (with decimals).
pub fn parse_time_ms(text: &str) -> Result<i64, String> {
    if let Ok(secs) = text.parse::<f64>() {
        if !secs.is_finite() {
            return Err(format!("cannot parse {text:?} to a valid timestamp"));
        }
        return Ok((secs * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("cannot parse {text:?} to a valid timestamp"))
}

/// Float seconds or a Prometheus duration string.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    if let Ok(secs) = text.parse::<f64>() {
        if !secs.is_finite() || secs * 1000.0 > i64::MAX as f64 {
            return Err(format!(
                "cannot parse {text:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok((secs * 1000.0).round() as i64);
    }
    parse_duration(text)
        .map(|d| d.as_millis() as i64)
        .map_err(|_| format!("cannot parse {text:?} to a valid duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_time_ms("1.5").unwrap(), 1500);
        assert_eq!(
            parse_time_ms("2015-07-01T20:10:51.781Z").unwrap(),
            1435781451781
        );
        assert!(parse_time_ms("yesterday").is_err());
        assert_eq!(parse_duration_ms("15").unwrap(), 15000);
        assert_eq!(parse_duration_ms("1m0s").unwrap(), 60000);
        assert!(parse_duration_ms("1x").is_err());
    }
}
