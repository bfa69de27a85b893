//! Prometheus duration strings: `1h30m`, `15s`, `500ms`, `2d`, `1y`.

use std::time::Duration;

/// Parses Prometheus's duration syntax: one or more `<integer><unit>` groups, units in
/// decreasing order (`y w d h m s ms`, `y` = 365 days), or a bare `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match crate::gocompat::duration::parse(text)? {
        ns if ns < 0 => Err(format!("not a valid duration string: {text:?}")),
        ns => Ok(Duration::from_nanos(ns as u64)),
    }
}

/// Formats a duration the way Prometheus prints one (`1h30m`, `15s`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("y", 365 * 24 * 3600 * 1000u64),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("10s53ms").unwrap(),
            Duration::from_millis(10053)
        );
        assert_eq!(
            parse_duration("1y").unwrap(),
            Duration::from_secs(365 * 86400)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "1", "s", "1m1h", "1x", "-1s", "1.5s", "1s1s"] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["15s", "1h30m", "2w", "500ms", "1d2h"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
