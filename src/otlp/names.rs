//! OpenTelemetry names to Prometheus names, as Prometheus 3.x translates them (its
//! `otlptranslator`): metric names get unit and type suffixes (`_seconds`, `_bytes`,
//! `_per_second`, `_total`, `_ratio`) and, unless UTF-8 is kept, invalid characters become
//! `_`; attribute keys become label names the same way.

use serde::{Deserialize, Serialize};

/// `otlp.translation_strategy`, with Prometheus's names. The two that keep UTF-8 names are
/// translated here but refused by the configuration while the storage validates names with
/// the classic rules (as Prometheus refuses them under legacy validation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TranslationStrategy {
    /// Escape to the classic character set and add unit and type suffixes (the default).
    #[default]
    UnderscoreEscapingWithSuffixes,
    /// Escape to the classic character set, no suffixes.
    UnderscoreEscapingWithoutSuffixes,
    /// Keep UTF-8 names, add suffixes.
    #[serde(rename = "NoUTF8EscapingWithSuffixes")]
    NoUtf8EscapingWithSuffixes,
    /// Names as sent.
    NoTranslation,
}

impl TranslationStrategy {
    /// The name the configuration file uses.
    pub fn name(self) -> &'static str {
        match self {
            TranslationStrategy::UnderscoreEscapingWithSuffixes => "UnderscoreEscapingWithSuffixes",
            TranslationStrategy::UnderscoreEscapingWithoutSuffixes => {
                "UnderscoreEscapingWithoutSuffixes"
            }
            TranslationStrategy::NoUtf8EscapingWithSuffixes => "NoUTF8EscapingWithSuffixes",
            TranslationStrategy::NoTranslation => "NoTranslation",
        }
    }

    pub fn escapes(self) -> bool {
        matches!(
            self,
            TranslationStrategy::UnderscoreEscapingWithSuffixes
                | TranslationStrategy::UnderscoreEscapingWithoutSuffixes
        )
    }

    pub fn adds_suffixes(self) -> bool {
        matches!(
            self,
            TranslationStrategy::UnderscoreEscapingWithSuffixes
                | TranslationStrategy::NoUtf8EscapingWithSuffixes
        )
    }
}

/// What a metric is, as far as its name's suffixes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    /// A monotonic cumulative sum: a counter, `_total`.
    Counter,
    /// A non-monotonic sum, a histogram or a summary: no type suffix.
    Other,
}

/// UCUM units to Prometheus's base-unit words.
fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// The denominator of a `x/y` unit, singular.
fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// The main and `per_` suffixes of `unit` (`By/s` gives `bytes`, `per_second`); units in
/// braces (`{requests}`) are annotations and give nothing.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or("").trim();
    let main = if main.is_empty() || main.contains(['{', '}']) {
        String::new()
    } else {
        unit_word(main).to_owned()
    };
    let per = match parts.next().map(str::trim) {
        Some(p) if !p.is_empty() && !p.contains(['{', '}']) => format!("per_{}", per_unit_word(p)),
        _ => String::new(),
    };
    (main, per)
}

fn is_classic_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// `unit` with invalid characters as `_`, runs of `_` as one, no leading `_`.
fn clean_unit(unit: &str) -> String {
    let mapped: String = unit
        .chars()
        .map(|c| if is_classic_metric_char(c) { c } else { '_' })
        .collect();
    collapse_underscores(&mapped)
        .trim_start_matches('_')
        .to_owned()
}

fn collapse_underscores(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out
}

/// The Prometheus metric name of an OpenTelemetry metric; an error when nothing is left.
pub fn metric_name(
    name: &str,
    unit: &str,
    kind: Kind,
    strategy: TranslationStrategy,
) -> Result<String, String> {
    let built = match (strategy.escapes(), strategy.adds_suffixes()) {
        (true, true) => escaped_with_suffixes(name, unit, kind),
        (true, false) => {
            let joined = name
                .split(|c: char| !is_classic_metric_char(c) && c != '_')
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("_");
            leading_digit(joined)
        }
        (false, true) => utf8_with_suffixes(name, unit, kind),
        (false, false) => name.to_owned(),
    };
    if built.is_empty() || (built != name && built.chars().all(|c| c == '_')) {
        return Err(format!(
            "metric name {name:?} translates to the invalid name {built:?}"
        ));
    }
    Ok(built)
}

fn leading_digit(name: String) -> String {
    match name.chars().next() {
        Some(c) if c.is_ascii_digit() => format!("_{name}"),
        _ => name,
    }
}

fn escaped_with_suffixes(name: &str, unit: &str, kind: Kind) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !is_classic_metric_char(c))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let (main, per) = unit_suffixes(unit);
    let (mut main, per) = (clean_unit(&main), clean_unit(&per));
    if tokens.contains(&main) {
        main.clear();
    }
    let per = match per.as_str() {
        "per_" => String::new(),
        p => {
            let p = p.trim_end_matches('_').to_owned();
            if tokens.contains(&p) {
                String::new()
            } else {
                p
            }
        }
    };
    if !per.is_empty() {
        main = main.trim_end_matches('_').to_owned();
    }
    for suffix in [main, per] {
        if !suffix.is_empty() {
            tokens.push(suffix);
        }
    }
    let mut push_last = |word: &str| {
        tokens.retain(|t| t != word);
        tokens.push(word.to_owned());
    };
    if kind == Kind::Counter {
        push_last("total");
    }
    if unit == "1" && kind == Kind::Gauge {
        push_last("ratio");
    }
    leading_digit(tokens.join("_"))
}

fn utf8_with_suffixes(name: &str, unit: &str, kind: Kind) -> String {
    let trim = |name: &str, suffix: &str| -> String {
        match name.strip_suffix(suffix) {
            Some(rest) if name.len() > suffix.len() + 1 => rest[..rest.len() - 1].to_owned(),
            _ => name.to_owned(),
        }
    };
    let mut name = name.to_owned();
    let mut tail = Vec::new();
    if unit == "1" && kind == Kind::Gauge {
        name = trim(&name, "ratio");
        tail.push("ratio".to_owned());
    }
    if kind == Kind::Counter {
        name = trim(&name, "total");
        tail.push("total".to_owned());
    }
    let (main, per) = unit_suffixes(unit);
    if !per.is_empty() {
        name = trim(&name, &per);
        tail.push(per);
    }
    if !main.is_empty() && !name.ends_with(&main) {
        name = format!("{name}_{main}");
    }
    for suffix in tail.iter().rev() {
        name = format!("{name}_{suffix}");
    }
    name
}

/// The Prometheus label name of an attribute key; an error when nothing valid is left.
pub fn label_name(key: &str, strategy: TranslationStrategy) -> Result<String, String> {
    if key.is_empty() {
        return Err("an attribute has an empty key".to_owned());
    }
    if !strategy.escapes() {
        return Ok(key.to_owned());
    }
    let sanitized: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = if sanitized.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{sanitized}")
    } else if sanitized.starts_with('_') && !sanitized.starts_with("__") {
        format!("key{sanitized}")
    } else {
        sanitized
    };
    if name != key && name.chars().all(|c| c == '_') {
        return Err(format!(
            "attribute {key:?} translates to the invalid label name {name:?}"
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: TranslationStrategy = TranslationStrategy::UnderscoreEscapingWithSuffixes;

    fn name(n: &str, unit: &str, kind: Kind) -> String {
        metric_name(n, unit, kind, DEFAULT).unwrap()
    }

    #[test]
    fn suffixes_as_prometheus_adds_them() {
        assert_eq!(
            name("http.server.duration", "s", Kind::Other),
            "http_server_duration_seconds"
        );
        assert_eq!(
            name("requests.count", "1", Kind::Counter),
            "requests_count_total"
        );
        assert_eq!(
            name("memory.usage", "By", Kind::Gauge),
            "memory_usage_bytes"
        );
        assert_eq!(
            name("cpu.utilization", "1", Kind::Gauge),
            "cpu_utilization_ratio"
        );
        assert_eq!(
            name("throughput", "By/s", Kind::Gauge),
            "throughput_bytes_per_second"
        );
        assert_eq!(
            name("requests", "{requests}", Kind::Counter),
            "requests_total"
        );
        assert_eq!(name("requests_total", "", Kind::Counter), "requests_total");
        assert_eq!(name("latency_seconds", "s", Kind::Other), "latency_seconds");
        assert_eq!(name("2xx.count", "", Kind::Gauge), "_2xx_count");
        assert_eq!(name("a..b__c", "", Kind::Gauge), "a_b_c");
        assert_eq!(name("temp", "Cel", Kind::Gauge), "temp_celsius");
        assert_eq!(name("odd", "foo bar", Kind::Gauge), "odd_foo_bar");
    }

    #[test]
    fn the_other_strategies() {
        let s = TranslationStrategy::UnderscoreEscapingWithoutSuffixes;
        assert_eq!(
            metric_name("http.server.duration", "s", Kind::Other, s).unwrap(),
            "http_server_duration"
        );
        let s = TranslationStrategy::NoUtf8EscapingWithSuffixes;
        assert_eq!(
            metric_name("http.server.duration", "s", Kind::Other, s).unwrap(),
            "http.server.duration_seconds"
        );
        assert_eq!(
            metric_name("jobs.done", "", Kind::Counter, s).unwrap(),
            "jobs.done_total"
        );
        assert_eq!(
            metric_name("jobs_total", "", Kind::Counter, s).unwrap(),
            "jobs_total"
        );
        let s = TranslationStrategy::NoTranslation;
        assert_eq!(
            metric_name("http.server.duration", "s", Kind::Other, s).unwrap(),
            "http.server.duration"
        );
        assert!(metric_name("...", "", Kind::Gauge, DEFAULT).is_err());
    }

    #[test]
    fn label_names() {
        assert_eq!(label_name("http.method", DEFAULT).unwrap(), "http_method");
        assert_eq!(label_name("123invalid", DEFAULT).unwrap(), "key_123invalid");
        assert_eq!(label_name("_private", DEFAULT).unwrap(), "key_private");
        assert_eq!(label_name("__reserved__", DEFAULT).unwrap(), "__reserved__");
        assert_eq!(
            label_name("http.method", TranslationStrategy::NoTranslation).unwrap(),
            "http.method"
        );
        assert!(label_name("...", DEFAULT).is_err());
        assert!(label_name("", DEFAULT).is_err());
    }
}
