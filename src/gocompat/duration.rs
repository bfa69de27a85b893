//! Prometheus's duration strings (`model.ParseDuration`, negative allowed as in templates):
//! `<integer><unit>` groups in decreasing unit order, `y w d h m s ms`, `y` = 365 days, with
//! Prometheus's error messages.

use super::strconv::quote;

/// The duration `s` names, in nanoseconds (Prometheus's `model.ParseDurationAllowNegative`).
pub fn parse(s: &str) -> Result<i128, String> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    match body {
        "0" => return Ok(0),
        "" => return Err("empty duration string".to_owned()),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {}", quote(body));
    const UNITS: [(&str, u8, u64); 7] = [
        ("y", 1, 365 * 24 * 3600 * 1_000_000_000),
        ("w", 2, 7 * 24 * 3600 * 1_000_000_000),
        ("d", 3, 24 * 3600 * 1_000_000_000),
        ("h", 4, 3600 * 1_000_000_000),
        ("m", 5, 60 * 1_000_000_000),
        ("s", 6, 1_000_000_000),
        ("ms", 7, 1_000_000),
    ];
    let b = body.as_bytes();
    let mut i = 0;
    let mut last_pos = 0u8;
    let mut dur: u64 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(invalid());
        }
        let v: u64 = body[start..i].parse().map_err(|_| invalid())?;
        let ustart = i;
        while i < b.len() && !b[i].is_ascii_digit() {
            i += 1;
        }
        if i == ustart {
            return Err(invalid());
        }
        let unit = &body[ustart..i];
        let Some(&(_, pos, mult)) = UNITS.iter().find(|(u, _, _)| *u == unit) else {
            return Err(format!(
                "unknown unit {} in duration {}",
                quote(unit),
                quote(body)
            ));
        };
        if pos <= last_pos {
            return Err(invalid());
        }
        last_pos = pos;
        if v > (1u64 << 63) / mult {
            return Err("duration out of range".to_owned());
        }
        dur = dur
            .checked_add(v * mult)
            .filter(|d| *d <= i64::MAX as u64)
            .ok_or_else(|| "duration out of range".to_owned())?;
    }
    let d = dur as i128;
    Ok(if neg { -d } else { d })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_durations_and_its_error_messages() {
        assert_eq!(parse("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse("-10s53ms"), Ok(-10_053_000_000));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse(""), Err("empty duration string".to_string()));
        assert_eq!(
            parse("1x"),
            Err(r#"unknown unit "x" in duration "1x""#.to_string())
        );
        assert_eq!(
            parse("1m1h"),
            Err(r#"not a valid duration string: "1m1h""#.to_string())
        );
        assert_eq!(parse("300y"), Err("duration out of range".to_string()));
    }
}
