//! PostgreSQL functions that clients call and neither DataFusion nor `datafusion-pg-catalog`
//! provides: `current_setting`, a PostgreSQL-style `version()`, and TimescaleDB's
//! `time_bucket`, which Grafana's `$__timeGroup` emits when TimescaleDB support is on.

use std::sync::Arc;

use arrow::array::{Array, AsArray, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

/// The PostgreSQL version Quiver presents itself as on the wire.
pub const SERVER_VERSION: &str = "16.6";
pub const SERVER_VERSION_NUM: &str = "160006";

/// Session settings as `current_setting` and `SHOW` report them.
pub fn setting(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "search_path" => "\"$user\", public",
        "server_version" => SERVER_VERSION,
        "server_version_num" => SERVER_VERSION_NUM,
        "server_encoding" | "client_encoding" => "UTF8",
        "datestyle" => "ISO, MDY",
        "timezone" => "UTC",
        "integer_datetimes" | "standard_conforming_strings" => "on",
        "transaction_read_only" | "default_transaction_read_only" => "on",
        "max_identifier_length" => "63",
        "lc_collate" | "lc_ctype" => "C.UTF-8",
        "application_name" => "",
        _ => return None,
    })
}

/// `current_setting(name)`: an unknown name is an error, as in PostgreSQL.
pub fn current_setting_udf() -> ScalarUDF {
    create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let names = arrays[0].as_string::<i32>();
            let mut out = Vec::with_capacity(names.len());
            for name in names.iter() {
                match name {
                    None => out.push(None),
                    Some(n) => match setting(n) {
                        Some(v) => out.push(Some(v.to_string())),
                        None => {
                            return Err(DataFusionError::Plan(format!(
                                "unrecognized configuration parameter \"{n}\""
                            )));
                        }
                    },
                }
            }
            Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
        }),
    )
}

/// `version()` in PostgreSQL's form, which drivers parse for the server version.
pub fn version_udf() -> ScalarUDF {
    create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(format!(
                "PostgreSQL {SERVER_VERSION} (Quiver {}), compatible wire protocol",
                env!("CARGO_PKG_VERSION")
            )))))
        }),
    )
}

/// `time_bucket(width, ts)`: `ts` floored to a multiple of `width` since the epoch. The width
/// is a duration text as Grafana and TimescaleDB write it: `'300.000s'`, `'5m'`,
/// `'5 minutes'`, `'1 hour'`.
pub fn time_bucket_udf() -> ScalarUDF {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    create_udf(
        "time_bucket",
        vec![DataType::Utf8, ts.clone()],
        ts,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let widths = arrays[0].as_string::<i32>();
            let times = arrays[1].as_primitive::<TimestampMillisecondType>();
            let mut out = Vec::with_capacity(times.len());
            for i in 0..times.len() {
                if times.is_null(i) || widths.is_null(i) {
                    out.push(None);
                    continue;
                }
                let width = bucket_width_ms(widths.value(i)).ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "time_bucket: invalid bucket width {:?}",
                        widths.value(i)
                    ))
                })?;
                out.push(Some(times.value(i).div_euclid(width) * width));
            }
            let array = TimestampMillisecondArray::from(out).with_timezone("UTC");
            Ok(ColumnarValue::Array(Arc::new(array)))
        }),
    )
}

/// A bucket width in milliseconds: `300.000s`, `5m`, `1h`, `500ms`, `5 minutes`, `1 day`.
fn bucket_width_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit_ms = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" | "millisecond" | "milliseconds" => 1.0,
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1e3,
        "m" | "min" | "mins" | "minute" | "minutes" => 60e3,
        "h" | "hour" | "hours" => 3600e3,
        "d" | "day" | "days" => 86_400e3,
        "w" | "week" | "weeks" => 604_800e3,
        _ => return None,
    };
    let ms = (number * unit_ms).round();
    (ms >= 1.0 && ms < i64::MAX as f64).then_some(ms as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_widths() {
        assert_eq!(bucket_width_ms("300.000s"), Some(300_000));
        assert_eq!(bucket_width_ms("5m"), Some(300_000));
        assert_eq!(bucket_width_ms("5 minutes"), Some(300_000));
        assert_eq!(bucket_width_ms("500ms"), Some(500));
        assert_eq!(bucket_width_ms("1 day"), Some(86_400_000));
        assert_eq!(bucket_width_ms("0s"), None);
        assert_eq!(bucket_width_ms("five"), None);
    }

    #[test]
    fn settings() {
        assert_eq!(setting("search_path"), Some("\"$user\", public"));
        assert_eq!(setting("SERVER_VERSION_NUM"), Some("160006"));
        assert_eq!(setting("bogus"), None);
    }
}
