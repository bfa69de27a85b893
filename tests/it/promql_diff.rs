//! Differential PromQL test: the same generated data remote-written to Quiver and to a real
//! Prometheus (3.5 from the test command, else the system's), then the same instant and range queries on both, compared
//! with Prometheus's float tolerance.
//!
//! Samples sit 7 s off the evaluation grid, so no sample lies exactly on a window edge.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::common::*;

const STEP_MS: i64 = 15_000;
const SAMPLES: i64 = 240; // one hour

/// Deterministic pseudo-random numbers (no external crates needed).
fn noise(seed: u64) -> f64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    (x % 10_000) as f64 / 100.0
}

/// One write request per timestamp, all series; ends 7 s past a whole minute before now.
fn generate(now_ms: i64) -> (i64, Vec<quiver::prompb::WriteRequest>) {
    let end = (now_ms / 60_000) * 60_000 - 60_000 + 7_000;
    let start = end - (SAMPLES - 1) * STEP_MS;
    let mut requests = Vec::new();
    let mut counters = [0.0f64; 6];
    for i in 0..SAMPLES {
        let ts = start + i * STEP_MS;
        let mut series_list = Vec::new();
        for (k, counter) in counters.iter_mut().enumerate() {
            let job = if k < 3 { "api" } else { "worker" };
            let instance = format!("host-{}", k % 3);
            // One counter resets halfway through.
            if k == 4 && i == SAMPLES / 2 {
                *counter = 0.0;
            }
            *counter += 1.0 + noise((k as u64) << 32 | i as u64);
            series_list.push(series(
                &[
                    ("__name__", "diff_requests_total"),
                    ("job", job),
                    ("instance", &instance),
                    ("code", if k % 2 == 0 { "200" } else { "500" }),
                ],
                &[(ts, *counter)],
            ));
            series_list.push(series(
                &[
                    ("__name__", "diff_temperature"),
                    ("job", job),
                    ("instance", &instance),
                ],
                &[(ts, 20.0 + noise(((k as u64) << 32 | i as u64) + 7) / 10.0)],
            ));
        }
        for (b, le) in ["0.1", "0.5", "1", "+Inf"].iter().enumerate() {
            let cumulative = (i as f64 + 1.0) * (b as f64 + 1.0) * 3.0;
            series_list.push(series(
                &[
                    ("__name__", "diff_latency_seconds_bucket"),
                    ("job", "api"),
                    ("le", le),
                ],
                &[(ts, cumulative)],
            ));
        }
        requests.push(write_request(series_list));
    }
    (end, requests)
}

/// Queries whose answers Prometheus 2.x gives differently from 3.x (the semantics Quiver
/// implements): compared only when the reference is 3.x.
const QUERIES_3X: &[&str] = &[
    // Subqueries: inner steps lie on the grid, where 3.x's windows are left-open.
    "max_over_time(rate(diff_requests_total[5m])[30m:1m])",
    "avg_over_time(diff_temperature[10m:30s])",
    "sum_over_time(sum by (job) (diff_temperature)[15m:2m] offset 1m)",
    // `@ start()` inside a subquery names the query's start, not the subquery's.
    "last_over_time(diff_temperature @ start()[30m:1m] offset 1m16s)",
    "max_over_time(rate(diff_requests_total[5m] @ end())[20m:2m])",
    // Windows that reach the data's first sample: 3.x applies the counter's zero-point
    // limit after the extrapolation threshold.
    "increase(diff_requests_total[2h])",
    "rate(diff_requests_total[90m])",
    // 3.x drops the metric name.
    "diff_temperature atan2 (diff_temperature offset 1m)",
    // Found by running queries as a user would (issue 19's float gaps), one of each class:
    // comparisons of two scalars with `bool` in range queries,
    "time() > bool 1",
    "scalar(sum(diff_temperature)) <= bool time()",
    // math outside a function's domain gives NaN or an infinity as Go's math does,
    "sqrt(diff_temperature - 25)",
    "ln(diff_temperature - 25)",
    "log2(diff_temperature - 25)",
    "log10(diff_temperature - 25)",
    "asin(diff_temperature)",
    "acos(diff_temperature)",
    "acosh(diff_temperature - 21)",
    "atanh(diff_temperature - 20)",
    "exp(diff_temperature * 40)",
    "diff_temperature ^ 200",
    "diff_temperature % 0",
    // NaN through clamp and the extremes, as Go's math.Max/Min propagate it,
    "clamp(diff_temperature * 0 / 0, 0, 1)",
    "clamp_min(diff_temperature * 0 / 0, 1)",
    "clamp_max(diff_temperature * 0 / 0, 1)",
    "clamp(diff_temperature, 25, 20)",
    "max(diff_temperature * 0 / 0)",
    "min_over_time((diff_temperature * 0 / 0)[5m:1m])",
    // parameters that are expressions, not literals,
    "histogram_quantile(scalar(count(diff_temperature)) * 0 + 0.9, sum by (le) (rate(diff_latency_seconds_bucket[5m])))",
    "topk(scalar(count(diff_temperature)) - 4, diff_temperature)",
    "bottomk(scalar(count(diff_temperature)) / 3, diff_temperature)",
    "quantile(scalar(count(diff_temperature)) / 10, diff_temperature)",
    "clamp_max(diff_temperature, scalar(min(diff_temperature)))",
    "clamp(diff_temperature, scalar(min(diff_temperature)), scalar(max(diff_temperature)) - 1)",
    "round(diff_temperature, scalar(count(diff_temperature)) / 60)",
    "predict_linear(diff_temperature[10m], scalar(count(diff_temperature)) * 100)",
    // label names that are valid in 3.x (any UTF-8), in label_replace as in label_join.
    "label_replace(diff_temperature, \"invalid-label\", \"$1\", \"instance\", \"(.*)\")",
    "label_join(diff_temperature, \"invalid-label\", \"-\", \"instance\", \"job\")",
];

/// Instant queries whose result is a range vector (3.x returns it as a matrix); a range
/// query of them is an error on both servers.
const INSTANT_ONLY_3X: &[&str] = &[
    "diff_temperature[30m:1m]",
    "rate(diff_requests_total[5m])[20m:5m]",
    "diff_temperature[10m]",
];

const QUERIES: &[&str] = &[
    "diff_requests_total",
    "diff_temperature",
    "rate(diff_requests_total[5m])",
    "irate(diff_requests_total[5m])",
    "increase(diff_requests_total[10m])",
    "delta(diff_temperature[10m])",
    "idelta(diff_temperature[5m])",
    "deriv(diff_temperature[10m])",
    "predict_linear(diff_temperature[10m], 600)",
    "resets(diff_requests_total[30m])",
    "changes(diff_temperature[10m])",
    "sum(rate(diff_requests_total[5m]))",
    "sum by (job) (rate(diff_requests_total[5m]))",
    "sum without (instance) (rate(diff_requests_total[5m]))",
    "avg by (job) (diff_temperature)",
    "max by (job) (diff_temperature)",
    "min(diff_temperature)",
    "count by (code) (diff_requests_total)",
    "stddev by (job) (diff_temperature)",
    "stdvar(diff_temperature)",
    "quantile(0.9, diff_temperature)",
    "topk(2, diff_temperature)",
    "bottomk(2, diff_temperature)",
    "group by (job) (diff_temperature)",
    "avg_over_time(diff_temperature[10m])",
    "max_over_time(diff_temperature[10m])",
    "min_over_time(diff_temperature[10m])",
    "sum_over_time(diff_temperature[10m])",
    "count_over_time(diff_temperature[10m])",
    "stddev_over_time(diff_temperature[10m])",
    "quantile_over_time(0.5, diff_temperature[10m])",
    "histogram_quantile(0.9, rate(diff_latency_seconds_bucket[5m]))",
    "histogram_quantile(0.5, sum by (le) (rate(diff_latency_seconds_bucket[5m])))",
    "diff_temperature > 25",
    "diff_temperature > bool 25",
    "diff_temperature * 2 + 1",
    "-diff_temperature",
    "diff_temperature / on(job, instance) group_left rate(diff_requests_total{code=\"200\"}[5m])",
    "rate(diff_requests_total[5m]) / ignoring(code) group_left diff_temperature",
    "diff_temperature and on(instance) diff_requests_total{code=\"500\"}",
    "diff_temperature unless on(instance) diff_requests_total{job=\"worker\"}",
    "diff_temperature{job=\"api\"} or diff_temperature{instance=\"host-1\"}",
    "abs(diff_temperature - 25)",
    "clamp(diff_temperature, 21, 25)",
    "round(diff_temperature, 0.5)",
    "sqrt(diff_temperature)",
    "ln(diff_temperature)",
    "label_replace(diff_temperature, \"host\", \"$1\", \"instance\", \"host-(.*)\")",
    "label_join(diff_temperature, \"id\", \"/\", \"job\", \"instance\")",
    "count_values(\"code\", diff_requests_total > 0 > bool 0)",
    "absent(diff_nonexistent{job=\"x\"})",
    "scalar(sum(diff_temperature)) * diff_temperature",
    "time() - timestamp(diff_temperature)",
    "diff_temperature offset 5m",
    "rate(diff_requests_total[5m] offset 10m)",
    "sum(diff_temperature) by (job) / on(job) group_left count(diff_temperature) by (job)",
    "vector(1) + 2",
    "time()",
    // Selectors and matchers.
    "diff_requests_total{code=~\"5..\"}",
    "diff_requests_total{code!~\"5..\", job!=\"api\"}",
    "{__name__=~\"diff_temp.*\", job=\"worker\"}",
    "diff_temperature offset 1m",
    "-diff_temperature offset 1m",
    "timestamp(diff_temperature offset 3m)",
    "diff_temperature @ end()",
    "rate(diff_requests_total[5m] @ end())",
    "sum by (job) (diff_temperature @ end())",
    // Range functions, short and long windows.
    "rate(diff_requests_total{code=\"500\"}[10m])",
    "rate(diff_requests_total[1m])",
    "rate(diff_requests_total[20s])",
    "increase(diff_requests_total[15m])",
    "delta(diff_requests_total[5m])",
    "idelta(diff_requests_total[5m])",
    "irate(diff_temperature[5m])",
    "deriv(diff_requests_total[15m])",
    "predict_linear(diff_requests_total[15m], 3600)",
    "resets(diff_temperature[15m])",
    "changes(diff_requests_total[15m])",
    "last_over_time(diff_temperature[10m])",
    "present_over_time(diff_temperature[10m])",
    "absent_over_time(diff_nonexistent[10m])",
    "avg_over_time(diff_temperature[30s])",
    "stdvar_over_time(diff_temperature[20m])",
    "quantile_over_time(0.9, diff_requests_total[15m])",
    "avg(avg_over_time(diff_temperature[15m]))",
    // Aggregations.
    "sum by (instance) (increase(diff_requests_total[15m]))",
    "avg without (code) (rate(diff_requests_total[5m]))",
    "sum(diff_requests_total) without (code, instance)",
    "count(diff_temperature > 22)",
    "count(count by (job) (diff_temperature))",
    "topk by (job) (1, diff_temperature)",
    "bottomk by (job) (1, rate(diff_requests_total[5m]))",
    "topk(3, sum by (instance, code) (rate(diff_requests_total[5m])))",
    "quantile by (job) (0.25, diff_temperature)",
    "quantile(0.5, rate(diff_requests_total[5m]))",
    "count_values by (job) (\"value\", round(diff_temperature))",
    "sum(diff_temperature) / count(diff_temperature)",
    "max(rate(diff_requests_total[5m])) by (code) - min(rate(diff_requests_total[5m])) by (code)",
    "absent(diff_temperature)",
    // Arithmetic, comparisons and special values.
    "diff_temperature % 3",
    "diff_temperature ^ 2",
    "2 ^ (diff_temperature / 10)",
    "diff_temperature / 0",
    "-diff_temperature / 0",
    "diff_temperature * 0 / 0",
    "diff_temperature > 22 < 26",
    "(diff_temperature > 22) + 1",
    "diff_temperature >= diff_temperature offset 1m",
    "diff_temperature == bool diff_temperature offset 1m",
    "diff_temperature != diff_temperature offset 5m",
    "rate(diff_requests_total[5m]) > bool 1",
    "sum(rate(diff_requests_total[5m])) by (job) > 3",
    // Vector matching.
    "rate(diff_requests_total[5m]) / on(instance) group_left max by (instance) (diff_temperature)",
    "max by (instance) (diff_temperature) / on(instance) group_right rate(diff_requests_total[5m])",
    "diff_temperature * on(job, instance) group_left(code) rate(diff_requests_total[5m])",
    "diff_temperature unless diff_temperature{job=\"api\"}",
    "diff_temperature and diff_temperature > 23",
    "diff_temperature or vector(0)",
    // Instant-vector functions.
    "clamp_min(diff_temperature, 23)",
    "clamp_max(diff_temperature, 23)",
    "ceil(diff_temperature)",
    "floor(diff_temperature)",
    "exp(diff_temperature / 10)",
    "exp(-diff_temperature)",
    "abs(-diff_temperature)",
    "log2(diff_temperature)",
    "log10(diff_temperature)",
    "sgn(diff_temperature - 25)",
    "sin(diff_temperature)",
    "cos(diff_temperature)",
    "tan(diff_temperature / 100)",
    "asin(diff_temperature / 100)",
    "acos(diff_temperature / 100)",
    "atan(diff_temperature)",
    "sinh(diff_temperature / 10)",
    "cosh(diff_temperature / 10)",
    "tanh(diff_temperature / 10)",
    "deg(diff_temperature)",
    "rad(diff_temperature)",
    "sort(diff_temperature)",
    "sort_desc(diff_temperature)",
    "label_replace(diff_temperature, \"job\", \"renamed\", \"job\", \"api\")",
    "sum by (host) (label_replace(diff_temperature, \"host\", \"$1\", \"instance\", \"(.*)-.*\"))",
    "scalar(diff_temperature{instance=\"host-0\", job=\"api\"})",
    "vector(scalar(count(diff_temperature)))",
    "histogram_quantile(0.99, sum by (le, job) (rate(diff_latency_seconds_bucket[10m])))",
    "histogram_quantile(0.5, diff_latency_seconds_bucket)",
    // Time functions.
    "day_of_month()",
    "day_of_week()",
    "day_of_year()",
    "days_in_month()",
    "hour()",
    "minute()",
    "month()",
    "year()",
    "hour(timestamp(diff_temperature))",
    // More aggregations.
    "sum by (job, code) (rate(diff_requests_total[5m]))",
    "avg(rate(diff_requests_total[10m]))",
    "count without (job) (diff_temperature)",
    "group(diff_requests_total)",
    "stddev(rate(diff_requests_total[5m]))",
    "stdvar by (code) (rate(diff_requests_total[5m]))",
    "topk(1, diff_temperature) by (job)",
    "bottomk(1, diff_temperature offset 2m)",
    "topk(10, diff_temperature)",
    "quantile(0, diff_temperature)",
    "quantile(1, diff_temperature)",
    "quantile(0.3, diff_temperature) by (instance)",
    "sum(diff_temperature > 23) by (job)",
    "min by (instance) (diff_temperature) - max by (instance) (diff_temperature)",
    "max without (instance, code) (increase(diff_requests_total[10m]))",
    "count by (job, instance) (diff_requests_total)",
    "sum(sum by (instance) (diff_temperature))",
    "avg by (instance) (rate(diff_requests_total[5m])) * 60",
    // More matching and operators.
    "diff_temperature + on(instance, job) diff_temperature offset 2m",
    "diff_temperature - ignoring(job) group_left max by (instance) (diff_temperature)",
    "rate(diff_requests_total[5m]) * on(instance, job) group_left diff_temperature",
    "(rate(diff_requests_total[5m]) > 1) and on(instance) (diff_temperature > 22)",
    "diff_temperature or on(instance) diff_requests_total",
    "diff_requests_total unless on(job, instance) (diff_temperature > 24)",
    "diff_temperature / ignoring(code) diff_temperature offset 1m",
    "diff_temperature > on(job, instance) diff_temperature offset 1m",
    "diff_temperature < bool on(job, instance) diff_temperature offset 1m",
    "1 - diff_temperature / 100",
    "100 * (1 - diff_temperature / 100)",
    "2 * 3 + diff_temperature",
    "diff_temperature - diff_temperature",
    "diff_temperature != 20",
    "diff_temperature < bool 23",
    "diff_temperature <= 23",
    "diff_temperature >= bool 23",
    "1 > bool 2",
    "(1 + 2) * 3 ^ 2 % 5",
    "+diff_temperature",
    "-(diff_temperature - 20) ^ 2",
    // More functions.
    "clamp(diff_temperature, 25, 21)",
    "round(diff_temperature)",
    "round(rate(diff_requests_total[5m]), 0.1)",
    "exp(ln(diff_temperature))",
    "sqrt(rate(diff_requests_total[5m]))",
    "abs(deriv(diff_temperature[10m]))",
    "log2(rate(diff_requests_total[5m]) + 1)",
    "timestamp(rate(diff_requests_total[5m]))",
    "last_over_time(diff_requests_total[1m])",
    "count_over_time(diff_requests_total[1m])",
    "sum_over_time(diff_requests_total[2m])",
    "max_over_time(diff_requests_total[15m])",
    "changes(diff_requests_total{code=\"200\"}[15m])",
    "irate(diff_requests_total[1m])",
    "delta(diff_temperature[1m])",
    "predict_linear(diff_temperature[5m], -300)",
    "deriv(diff_temperature[1m])",
    "label_join(diff_requests_total, \"job_code\", \"-\", \"job\", \"code\")",
    "label_replace(diff_requests_total, \"code_class\", \"${1}xx\", \"code\", \"(.).*\")",
    "label_replace(diff_requests_total, \"code\", \"\", \"code\", \"200\")",
    "sort(rate(diff_requests_total[5m]))",
    "sort_desc(sum by (instance) (diff_temperature))",
    "histogram_quantile(0.25, sum by (le) (rate(diff_latency_seconds_bucket[15m])))",
    "histogram_quantile(1, sum by (le) (rate(diff_latency_seconds_bucket[5m])))",
    "absent(nonexistent_metric)",
    "minute(timestamp(diff_temperature offset 10m))",
    "days_in_month(vector(1700000000))",
    "year(vector(0))",
    // Further forms, added to reach about three hundred queries.
    "diff_temperature{instance=~\"host-[01]\"}",
    "{__name__=~\"diff_(requests_total|temperature)\", instance=\"host-1\"}",
    "diff_requests_total{code=\"200\", instance!~\"host-0\"}",
    "diff_temperature @ start()",
    "sum_over_time(diff_temperature[5m] offset 10m)",
    "max_over_time(diff_temperature[10m] @ end())",
    "asinh(diff_temperature)",
    "acosh(diff_temperature)",
    "atanh(diff_temperature / 100)",
    "pi() * diff_temperature",
    "min_over_time(diff_temperature[2m])",
    "stddev_over_time(diff_temperature[30m])",
    "count_over_time(diff_temperature[10m]) > 35",
    "quantile_over_time(0, diff_temperature[10m])",
    "quantile_over_time(1, diff_temperature[10m])",
    "quantile_over_time(0.5, diff_temperature[3m])",
    "absent_over_time(diff_temperature[5m])",
    "present_over_time(diff_requests_total{code=\"500\"}[1m])",
    "resets(diff_requests_total{code=\"500\"}[1h])",
    "sum(increase(diff_requests_total[12m]))",
    "increase(diff_requests_total[1m])",
    "rate(diff_requests_total[2m]) * 60",
    "irate(diff_temperature[1m])",
    "idelta(diff_temperature[1m])",
    "delta(diff_temperature[15m])",
    "deriv(diff_temperature[30m])",
    "predict_linear(diff_temperature[15m], 600)",
    "changes(diff_temperature[5m])",
    "last_over_time(diff_temperature[1m] offset 2m)",
    "vector(time())",
    "scalar(count(diff_temperature)) + diff_temperature",
    "count_values(\"value\", ceil(diff_temperature))",
    "absent(diff_temperature{job=\"nope\"})",
    "sum without (instance, code) (rate(diff_requests_total[2m]))",
    "min(diff_temperature) by (instance)",
    "max(diff_temperature) by (job)",
    "avg without (job) (diff_temperature)",
    "group by (code) (diff_requests_total)",
    "bottomk(2, rate(diff_requests_total[5m])) by (job)",
    "topk(2, sum by (instance, job) (diff_temperature))",
    "stddev without (instance) (diff_temperature)",
    "stdvar by (instance) (diff_temperature)",
    "sum by (job) (diff_temperature) / ignoring(job) group_left sum(diff_temperature)",
    "count without (code) (diff_requests_total)",
    "sum(diff_temperature) or vector(0)",
    "diff_temperature unless diff_temperature > 22",
    "diff_temperature * -1 > -22",
    "2 ^ -1 * diff_temperature",
    "diff_temperature ^ 0.5",
    "(diff_temperature - 20) % 2",
    "diff_temperature + 1 > bool 23",
    "1 - diff_temperature > bool -22",
    "sum(rate(diff_requests_total[5m])) * 60",
    "avg by (job) (diff_temperature) > ignoring(job) group_left avg(diff_temperature)",
    "rate(diff_requests_total[5m]) and on(instance, job) diff_temperature > 22",
    "diff_requests_total or on(job) diff_temperature",
    "max by (instance) (rate(diff_requests_total[5m])) * on(instance) group_right max by (instance, job) (diff_temperature)",
    "diff_temperature / on(instance, job) group_left topk by (instance, job) (1, rate(diff_requests_total[5m]))",
    "label_replace(rate(diff_requests_total[5m]), \"inst\", \"$1\", \"instance\", \"host-(.*)\")",
    "label_join(diff_temperature, \"id\", \":\", \"job\", \"instance\")",
    "sum by (id) (label_join(diff_temperature, \"id\", \":\", \"job\", \"instance\"))",
    "sort_desc(rate(diff_requests_total[5m]))",
    "sort(count by (job) (diff_requests_total))",
    "clamp(rate(diff_requests_total[5m]), 1, 2)",
    "round(diff_temperature, 5)",
    "timestamp(diff_requests_total @ end())",
    "hour(vector(1700000000))",
    "month(vector(1700000000))",
    "day_of_week(vector(1700000000))",
    "minute(vector(time()))",
    "histogram_quantile(0.95, sum by (le) (rate(diff_latency_seconds_bucket[2m])))",
    "histogram_quantile(0.75, sum without (job) (rate(diff_latency_seconds_bucket[10m])))",
    "histogram_quantile(0, sum by (le) (rate(diff_latency_seconds_bucket[5m])))",
    "sum(rate(diff_latency_seconds_bucket{le=\"+Inf\"}[5m]))",
    "diff_latency_seconds_bucket{le=~\"0.*\"}",
    "count(diff_latency_seconds_bucket) by (le)",
    "avg(diff_temperature) by (instance) - on(instance) group_left min(diff_temperature) by (instance)",
    "exp(ln(rate(diff_requests_total[5m])))",
    "sqrt(diff_temperature) ^ 2",
];

/// (labels, points) from a Prometheus-style JSON result, keyed by the label set.
fn parse_result(body: &Value) -> Result<BTreeMap<String, Vec<(i64, f64)>>, String> {
    if body["status"] != "success" {
        return Err(format!("error: {body}"));
    }
    let data = &body["data"];
    let mut out = BTreeMap::new();
    let point = |p: &Value| -> (i64, f64) {
        let t = (p[0].as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
        let v = match p[1].as_str().unwrap_or("NaN") {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            s => s.parse().unwrap_or(f64::NAN),
        };
        (t, v)
    };
    match data["resultType"].as_str() {
        Some("scalar") => {
            out.insert("scalar".to_string(), vec![point(&data["result"])]);
        }
        _ => {
            for s in data["result"].as_array().cloned().unwrap_or_default() {
                let mut labels: Vec<(String, String)> = s["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                labels.sort();
                let key = format!("{labels:?}");
                let points = if s["values"].is_array() {
                    s["values"].as_array().unwrap().iter().map(point).collect()
                } else {
                    vec![point(&s["value"])]
                };
                out.insert(key, points);
            }
        }
    }
    Ok(out)
}

fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    (a - b).abs() / (a.abs() + b.abs()) < 1e-6
}

pub(crate) fn compare(query: &str, mode: &str, ours: &Value, theirs: &Value) -> Result<(), String> {
    let a = parse_result(ours).map_err(|e| format!("{mode} {query}: quiver {e}"))?;
    let b = parse_result(theirs).map_err(|e| format!("{mode} {query}: prometheus {e}"))?;
    if a.keys().collect::<Vec<_>>() != b.keys().collect::<Vec<_>>() {
        return Err(format!(
            "{mode} {query}: series differ\nquiver: {:?}\nprometheus: {:?}",
            a.keys(),
            b.keys()
        ));
    }
    for (key, points) in &a {
        let other = &b[key];
        let same = points.len() == other.len()
            && points
                .iter()
                .zip(other)
                .all(|(p, q)| p.0 == q.0 && almost_equal(p.1, q.1));
        if !same {
            return Err(format!(
                "{mode} {query}: {key} differs\nquiver: {points:?}\nprometheus: {other:?}"
            ));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_agree_with_a_real_prometheus() {
    let q = Quiver::start(&config_without_scrapes("  out_of_order_time_window: 2h")).await;
    let prometheus = Prometheus::start(
        "global:\n  scrape_interval: 1h\n",
        &["--web.enable-remote-write-receiver"],
    )
    .await;
    let client = reqwest::Client::new();
    let prom_url = prometheus.url("");
    let (end, requests) = generate(now_ms());
    for request in &requests {
        assert_eq!(q.remote_write(request).await.0, 204);
        prometheus.remote_write(request).await;
    }
    // Evaluate on the whole-minute grid, 7 s away from every sample.
    let eval_end = (end - 7_000) / 1000;
    let eval_start = eval_end - 40 * 60;
    let mut failures = Vec::new();
    let mut compared = 0;
    let build = get_json_at(&client, &format!("{prom_url}/api/v1/status/buildinfo"), &[]).await;
    let version = build["data"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let three = version.starts_with("3.");
    if !three {
        println!(
            "differential PromQL: the reference is Prometheus {version}; the {} queries whose 2.x answers differ from 3.x are not compared",
            QUERIES_3X.len()
        );
    }
    let queries = QUERIES.iter().chain(QUERIES_3X.iter().filter(|_| three));
    for query in queries {
        for (mode, path, params) in [
            (
                "instant",
                "/api/v1/query",
                vec![("query", query.to_string()), ("time", eval_end.to_string())],
            ),
            (
                "instant",
                "/api/v1/query",
                vec![
                    ("query", query.to_string()),
                    ("time", (eval_end - 1234).to_string()),
                ],
            ),
            (
                "range",
                "/api/v1/query_range",
                vec![
                    ("query", query.to_string()),
                    ("start", eval_start.to_string()),
                    ("end", eval_end.to_string()),
                    ("step", "60".to_string()),
                ],
            ),
        ] {
            let ours = post_form(&client, &q.url(path), &params).await;
            let theirs = post_form(&client, &format!("{prom_url}{path}"), &params).await;
            compared += 1;
            if let Err(e) = compare(query, mode, &ours, &theirs) {
                failures.push(e);
            }
        }
    }
    for query in INSTANT_ONLY_3X.iter().filter(|_| three) {
        let params = vec![("query", query.to_string()), ("time", eval_end.to_string())];
        let ours = post_form(&client, &q.url("/api/v1/query"), &params).await;
        let theirs = post_form(&client, &format!("{prom_url}/api/v1/query"), &params).await;
        compared += 1;
        if ours["data"]["resultType"] != "matrix" {
            failures.push(format!("instant {query}: not a matrix: {ours}"));
        } else if let Err(e) = compare(query, "instant", &ours, &theirs) {
            failures.push(e);
        }
        let params = vec![
            ("query", query.to_string()),
            ("start", eval_start.to_string()),
            ("end", eval_end.to_string()),
            ("step", "60".to_string()),
        ];
        let ours = post_form(&client, &q.url("/api/v1/query_range"), &params).await;
        let theirs = post_form(&client, &format!("{prom_url}/api/v1/query_range"), &params).await;
        compared += 1;
        if (ours["status"].as_str(), ours["errorType"].as_str())
            != (theirs["status"].as_str(), theirs["errorType"].as_str())
        {
            failures.push(format!(
                "range {query}: quiver answered {ours}, prometheus {theirs}"
            ));
        }
    }
    println!(
        "differential PromQL: {} of {compared} query evaluations agree with Prometheus",
        compared - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
