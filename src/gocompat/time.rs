//! Go's formatting of times, as Prometheus's JSON and templates show them.

/// Go's `time.RFC3339Nano` of a UTC time in Unix milliseconds, as Prometheus's API and its
/// alerts to Alertmanager write times: `2015-06-23T13:19:44.128Z`, trailing zeros of the
/// fraction (and a bare `.`) left out.
pub fn rfc3339(millis: i64) -> String {
    let time = chrono::DateTime::from_timestamp_millis(millis).unwrap_or_default();
    rfc3339_nano(time)
}

/// [`rfc3339`] of a time with nanoseconds.
pub fn rfc3339_nano(time: chrono::DateTime<chrono::Utc>) -> String {
    let full = time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    match full.rsplit_once('.') {
        Some((seconds, fraction)) => {
            let digits = fraction.trim_end_matches('Z').trim_end_matches('0');
            match digits.is_empty() {
                true => format!("{seconds}Z"),
                false => format!("{seconds}.{digits}Z"),
            }
        }
        None => full,
    }
}

/// Go's `time.Time.String()` of a UTC time given in Unix milliseconds:
/// `2015-06-23 13:19:44.128 +0000 UTC`.
pub fn string(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if ms != 0 {
        let frac = format!("{ms:03}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_go_prints_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_435_781_451_780), "2015-07-01T20:10:51.78Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            string(1_435_067_984_128),
            "2015-06-23 13:59:44.128 +0000 UTC"
        );
        assert_eq!(string(0), "1970-01-01 00:00:00 +0000 UTC");
    }
}
