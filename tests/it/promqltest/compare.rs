//! Checks a query outcome against an eval's expectations (FORMAT.md
//! §5.3–§6): expected failure, annotations, and the result itself.
//!
//! The runner evaluates the query with its own engine and hands the outcome
//! over as [`Actual`] plus [`Annotations`]. Histograms in results use
//! [`HistogramLiteral`] with absolute bucket counts; spans may be flattened
//! with zero-filled gaps, since zero buckets are normalised away here.

use std::collections::{HashMap, HashSet};

use super::script::{
    Eval, EvalMode, Expected, ExpectedSeries, HistogramLiteral, Labels, SampleValue, TextMatch,
    format_float, format_labels, is_stale_marker,
};

/// A successful query result.
#[derive(Debug, Clone, PartialEq)]
pub enum Actual {
    Vector(Vec<(Labels, SampleValue)>),
    /// Points per series in time order. A scalar expression in a range eval
    /// is a matrix with one `{}` series.
    Matrix(Vec<(Labels, Vec<(i64, SampleValue)>)>),
    Scalar(f64),
    String(String),
}

/// Annotation texts as the harness sees them, e.g.
/// `PromQL warning: <msg> (<line>:<col>)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Treat every `msg:` / `regex:` as "any text of this kind" (§9), for
    /// engines whose error and annotation wording differs from Prometheus's.
    pub loose_messages: bool,
}

/// Prometheus's float comparison (§6.4, ε = 1e-6): rules applied in order.
pub fn almost_equal(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 1e-6;
    // Smallest normal double, 2.2250738585072014e-308.
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if is_stale_marker(a) || is_stale_marker(b) {
        return is_stale_marker(a) && is_stale_marker(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

/// `Ok(())` if the outcome satisfies the eval; otherwise a short reason.
pub fn check(eval: &Eval, outcome: &Result<(Actual, Annotations), String>) -> Result<(), String> {
    check_with(eval, outcome, CheckOptions::default())
}

/// [`check`] with options.
pub fn check_with(
    eval: &Eval,
    outcome: &Result<(Actual, Annotations), String>,
    options: CheckOptions,
) -> Result<(), String> {
    match (&eval.expect.fail, outcome) {
        // An expected failure is the whole check: results and annotations
        // are not looked at (§5.3).
        (Some(expected), Err(error)) => check_error(expected, error, options),
        (Some(_), Ok(_)) => Err("expected failure, got success".into()),
        (None, Err(error)) => Err(format!("unexpected error: {error}")),
        (None, Ok((actual, annotations))) => {
            check_result(eval, actual)?;
            check_annotations(eval, annotations, options)
        }
    }
}

fn check_error(expected: &TextMatch, error: &str, options: CheckOptions) -> Result<(), String> {
    if options.loose_messages || expected.matches(error) {
        Ok(())
    } else {
        Err(format!(
            "error {error:?} does not match expected {expected}"
        ))
    }
}

// ---------------------------------------------------------------------------
// Annotations (§5.3)
// ---------------------------------------------------------------------------

fn check_annotations(
    eval: &Eval,
    annotations: &Annotations,
    options: CheckOptions,
) -> Result<(), String> {
    let e = &eval.expect;
    check_annotation_kind(
        "warning",
        &annotations.warnings,
        &e.warn,
        e.no_warn,
        options,
    )?;
    check_annotation_kind("info", &annotations.infos, &e.info, e.no_info, options)
}

/// One annotation kind: forbidden (`no_*`), unchecked (nothing stated), or
/// matched both ways (every expectation matches some annotation and every
/// annotation matches some expectation).
fn check_annotation_kind(
    kind: &str,
    actual: &[String],
    expected: &[TextMatch],
    forbidden: bool,
    options: CheckOptions,
) -> Result<(), String> {
    if forbidden {
        return match actual.first() {
            Some(first) => Err(format!("expected no {kind}, got {first:?}")),
            None => Ok(()),
        };
    }
    if expected.is_empty() {
        return Ok(());
    }
    if actual.is_empty() {
        return Err(format!("expected {kind}, got none"));
    }
    if options.loose_messages {
        return Ok(());
    }
    if let Some(unmatched) = expected
        .iter()
        .find(|m| !actual.iter().any(|a| m.matches(a)))
    {
        return Err(format!(
            "no {kind} matches expected {unmatched}; got {actual:?}"
        ));
    }
    if let Some(extra) = actual
        .iter()
        .find(|a| !expected.iter().any(|m| m.matches(a)))
    {
        return Err(format!("unexpected {kind} {extra:?}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Result type dispatch (§6.1)
// ---------------------------------------------------------------------------

fn check_result(eval: &Eval, actual: &Actual) -> Result<(), String> {
    match actual {
        Actual::Scalar(v) => check_scalar(eval, *v),
        Actual::String(s) => check_string(eval, s),
        Actual::Vector(vector) => check_vector(eval, vector),
        Actual::Matrix(matrix) => check_matrix(eval, matrix),
    }
}

/// The result type the eval's expectations describe.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ExpectedKind {
    Scalar,
    String,
    Vector,
    Matrix,
}

fn expected_kind(eval: &Eval) -> ExpectedKind {
    if eval.expect.string.is_some() {
        ExpectedKind::String
    } else if matches!(eval.mode, EvalMode::Range { .. }) || eval.expect.range_vector.is_some() {
        ExpectedKind::Matrix
    } else if matches!(eval.expected, Expected::Scalar(_)) {
        ExpectedKind::Scalar
    } else {
        ExpectedKind::Vector
    }
}

fn kind_name(kind: ExpectedKind) -> &'static str {
    match kind {
        ExpectedKind::Scalar => "a scalar",
        ExpectedKind::String => "a string",
        ExpectedKind::Vector => "an instant vector",
        ExpectedKind::Matrix => "a matrix",
    }
}

fn type_mismatch(eval: &Eval, got: &str) -> String {
    format!("expected {}, got {got}", kind_name(expected_kind(eval)))
}

fn expected_series(eval: &Eval) -> &[ExpectedSeries] {
    match &eval.expected {
        Expected::Series(series) => series,
        Expected::Scalar(_) => &[],
    }
}

// ---------------------------------------------------------------------------
// Scalars and strings (§6.6)
// ---------------------------------------------------------------------------

fn check_scalar(eval: &Eval, value: f64) -> Result<(), String> {
    match (&eval.expected, expected_kind(eval)) {
        (Expected::Scalar(want), ExpectedKind::Scalar) if almost_equal(*want, value) => Ok(()),
        (Expected::Scalar(want), ExpectedKind::Scalar) => Err(format!(
            "scalar {} != expected {}",
            format_float(value),
            format_float(*want)
        )),
        _ => Err(type_mismatch(
            eval,
            &format!("scalar {}", format_float(value)),
        )),
    }
}

fn check_string(eval: &Eval, value: &str) -> Result<(), String> {
    // With no `expect string` and no result lines, the expected string is
    // empty (§6.6); result lines mean a vector was expected.
    let plain_instant_without_lines =
        expected_kind(eval) == ExpectedKind::Vector && expected_series(eval).is_empty();
    if expected_kind(eval) != ExpectedKind::String && !plain_instant_without_lines {
        return Err(type_mismatch(eval, &format!("string {value:?}")));
    }
    let want = eval.expect.string.as_deref().unwrap_or("");
    if value == want {
        Ok(())
    } else {
        Err(format!("string {value:?} != expected {want:?}"))
    }
}

// ---------------------------------------------------------------------------
// Series matching shared by vectors and matrices (§6.1)
// ---------------------------------------------------------------------------

/// A label set as compared: sorted, with empty values dropped (Prometheus
/// treats an empty label value as an absent label).
fn normalize(labels: &[(String, String)]) -> Labels {
    let mut out: Labels = labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .cloned()
        .collect();
    out.sort();
    out
}

/// The expected series keyed by normalised label set. Should two lines name
/// the same series, the later one counts, as with the harness's map.
struct ExpectedIndex<'a> {
    series: Vec<&'a ExpectedSeries>,
    by_labels: HashMap<Labels, usize>,
}

impl<'a> ExpectedIndex<'a> {
    fn new(expected: &'a [ExpectedSeries]) -> Self {
        let keys: Vec<Labels> = expected.iter().map(|s| normalize(&s.labels)).collect();
        let last: HashMap<&Labels, usize> = keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
        let mut index = ExpectedIndex {
            series: Vec::new(),
            by_labels: HashMap::new(),
        };
        for (i, key) in keys.iter().enumerate() {
            if last[key] == i {
                index.by_labels.insert(key.clone(), index.series.len());
                index.series.push(&expected[i]);
            }
        }
        index
    }

    /// Position of the expected series for `labels`; errors on unknown or
    /// repeated series.
    fn claim(
        &self,
        labels: &[(String, String)],
        seen: &mut HashSet<usize>,
        shown: impl FnOnce() -> String,
    ) -> Result<usize, String> {
        let Some(&pos) = self.by_labels.get(&normalize(labels)) else {
            return Err(format!(
                "unexpected series {} {}",
                format_labels(labels),
                shown()
            ));
        };
        if !seen.insert(pos) {
            return Err(format!(
                "series {} appears twice in the result",
                format_labels(labels)
            ));
        }
        Ok(pos)
    }

    /// Errors listing the expected series the result lacks.
    fn check_all_seen(&self, seen: &HashSet<usize>) -> Result<(), String> {
        let missing: Vec<String> = (0..self.series.len())
            .filter(|i| !seen.contains(i))
            .map(|i| format_labels(&self.series[i].labels))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("missing series {}", missing.join(", ")))
        }
    }
}

fn compare_sample(expected: &SampleValue, actual: &SampleValue) -> Result<(), String> {
    match (expected, actual) {
        (SampleValue::Float(e), SampleValue::Float(a)) if almost_equal(*e, *a) => Ok(()),
        (SampleValue::Float(e), SampleValue::Float(a)) => Err(format!(
            "value {} != expected {}",
            format_float(*a),
            format_float(*e)
        )),
        (SampleValue::Histogram(e), SampleValue::Histogram(a)) => {
            compare_histograms(e, a).map_err(|why| format!("histogram {a} != expected {e} ({why})"))
        }
        (SampleValue::Float(e), SampleValue::Histogram(a)) => Err(format!(
            "expected float {}, got histogram {a}",
            format_float(*e)
        )),
        (SampleValue::Histogram(e), SampleValue::Float(a)) => Err(format!(
            "expected histogram {e}, got float {}",
            format_float(*a)
        )),
    }
}

// ---------------------------------------------------------------------------
// Instant vectors (§6.2)
// ---------------------------------------------------------------------------

fn check_vector(eval: &Eval, vector: &[(Labels, SampleValue)]) -> Result<(), String> {
    if expected_kind(eval) != ExpectedKind::Vector {
        return Err(type_mismatch(eval, "an instant vector"));
    }
    let index = ExpectedIndex::new(expected_series(eval));
    let mut seen = HashSet::new();
    for (pos, (labels, value)) in vector.iter().enumerate() {
        let expected_pos = index.claim(labels, &mut seen, || value.to_string())?;
        if eval.expect.ordered && expected_pos != pos {
            return Err(format!(
                "series {} is at result position {} but expected at {}",
                format_labels(labels),
                pos + 1,
                expected_pos + 1
            ));
        }
        if let Some(Some(want)) = index.series[expected_pos].values.first() {
            compare_sample(want, value)
                .map_err(|e| format!("series {} {e}", format_labels(labels)))?;
        }
    }
    index.check_all_seen(&seen)
}

// ---------------------------------------------------------------------------
// Matrices (§6.3)
// ---------------------------------------------------------------------------

type MatrixSeries = (Labels, Vec<(i64, SampleValue)>);

fn check_matrix(eval: &Eval, matrix: &[MatrixSeries]) -> Result<(), String> {
    if eval.expect.ordered {
        return Err("`expect ordered` cannot be satisfied by a matrix result".into());
    }
    let (start, end, step) = match (eval.mode, eval.expect.range_vector) {
        (
            EvalMode::Range {
                start_ms,
                end_ms,
                step_ms,
            },
            _,
        ) => (start_ms, end_ms, step_ms),
        (EvalMode::Instant { .. }, Some(range)) => range,
        (EvalMode::Instant { .. }, None) => return Err(type_mismatch(eval, "a matrix")),
    };
    if expected_kind(eval) != ExpectedKind::Matrix {
        return Err(type_mismatch(eval, "a matrix"));
    }
    check_sorted(matrix)?;
    let expected = expected_series(eval);
    check_step_counts(expected, start, end, step)?;
    let index = ExpectedIndex::new(expected);
    let mut seen = HashSet::new();
    for (labels, points) in matrix {
        let expected_pos = index.claim(labels, &mut seen, || {
            format_points(points.iter().map(|(t, v)| (*t, v)))
        })?;
        compare_points(index.series[expected_pos], start, step, points)
            .map_err(|e| format!("series {} {e}", format_labels(labels)))?;
    }
    index.check_all_seen(&seen)
}

/// The harness fails a matrix whose series are not sorted by label set:
/// sorted (name, value) pairs compared in turn, a prefix sorting first.
fn check_sorted(matrix: &[MatrixSeries]) -> Result<(), String> {
    let keys: Vec<Labels> = matrix
        .iter()
        .map(|(labels, _)| {
            let mut sorted = labels.clone();
            sorted.sort();
            sorted
        })
        .collect();
    match keys.windows(2).find(|w| w[0] > w[1]) {
        Some(w) => Err(format!(
            "matrix is not sorted by labels: {} comes before {}",
            format_labels(&w[0]),
            format_labels(&w[1])
        )),
        None => Ok(()),
    }
}

/// Giving more values than the range has steps is an error (§6.3).
fn check_step_counts(
    expected: &[ExpectedSeries],
    start: i64,
    end: i64,
    step: i64,
) -> Result<(), String> {
    let steps = (i128::from(end) - i128::from(start)) / i128::from(step.max(1)) + 1;
    match expected.iter().find(|s| s.values.len() as i128 > steps) {
        Some(s) => Err(format!(
            "expected series {} has {} values but the range has only {steps} steps",
            format_labels(&s.labels),
            s.values.len()
        )),
        None => Ok(()),
    }
}

/// Non-`_` expected values must match the points one to one, with exactly
/// the same timestamps.
fn compare_points(
    expected: &ExpectedSeries,
    start: i64,
    step: i64,
    points: &[(i64, SampleValue)],
) -> Result<(), String> {
    let want: Vec<(i64, &SampleValue)> = expected
        .values
        .iter()
        .enumerate()
        .filter_map(|(j, v)| {
            Some((
                start.saturating_add((j as i64).saturating_mul(step)),
                v.as_ref()?,
            ))
        })
        .collect();
    if want.len() != points.len() {
        return Err(format!(
            "has {} points, expected {}: got {}, expected {}",
            points.len(),
            want.len(),
            format_points(points.iter().map(|(t, v)| (*t, v))),
            format_points(want.iter().copied())
        ));
    }
    for ((want_t, want_v), (got_t, got_v)) in want.iter().zip(points) {
        if want_t != got_t {
            return Err(format!(
                "has a point at t={got_t}ms where one was expected at t={want_t}ms"
            ));
        }
        compare_sample(want_v, got_v).map_err(|e| format!("at t={got_t}ms: {e}"))?;
    }
    Ok(())
}

/// `[v@t …]`, cut short so failure reasons stay readable.
fn format_points<'a>(points: impl Iterator<Item = (i64, &'a SampleValue)>) -> String {
    const SHOWN: usize = 8;
    let mut parts: Vec<String> = Vec::new();
    let mut total = 0;
    for (t, v) in points {
        if total < SHOWN {
            parts.push(format!("{v}@{t}"));
        }
        total += 1;
    }
    if total > SHOWN {
        parts.push(format!("… ({total} in all)"));
    }
    format!("[{}]", parts.join(" "))
}

// ---------------------------------------------------------------------------
// Histograms (§6.5)
// ---------------------------------------------------------------------------

/// Compares after dropping zero-count buckets, by absolute bucket index.
fn compare_histograms(
    expected: &HistogramLiteral,
    actual: &HistogramLiteral,
) -> Result<(), String> {
    if expected.schema != actual.schema {
        return Err(format!("schema {} != {}", actual.schema, expected.schema));
    }
    if expected.z_bucket_w != actual.z_bucket_w {
        return Err(format!(
            "z_bucket_w {} != {}",
            actual.z_bucket_w, expected.z_bucket_w
        ));
    }
    if expected.is_custom_buckets() && expected.custom_values != actual.custom_values {
        return Err("custom_values differ".into());
    }
    for (field, want, got) in [
        ("count", expected.count, actual.count),
        ("sum", expected.sum, actual.sum),
        ("z_bucket", expected.z_bucket, actual.z_bucket),
    ] {
        if !almost_equal(want, got) {
            return Err(format!(
                "{field} {} != {}",
                format_float(got),
                format_float(want)
            ));
        }
    }
    compare_buckets(
        "buckets",
        &expected.positive_buckets(),
        &actual.positive_buckets(),
    )?;
    compare_buckets(
        "n_buckets",
        &expected.negative_buckets(),
        &actual.negative_buckets(),
    )?;
    check_hint(expected, actual)
}

fn compare_buckets(
    field: &str,
    expected: &std::collections::BTreeMap<i64, f64>,
    actual: &std::collections::BTreeMap<i64, f64>,
) -> Result<(), String> {
    let non_zero = |m: &std::collections::BTreeMap<i64, f64>| -> Vec<(i64, f64)> {
        m.iter()
            .filter(|(_, c)| **c != 0.0)
            .map(|(i, c)| (*i, *c))
            .collect()
    };
    let (want, got) = (non_zero(expected), non_zero(actual));
    let same = want.len() == got.len()
        && want
            .iter()
            .zip(&got)
            .all(|((wi, wc), (gi, gc))| wi == gi && almost_equal(*wc, *gc));
    if same {
        Ok(())
    } else {
        Err(format!("{field} (index:count) {got:?} != {want:?}"))
    }
}

/// The hint is compared only when the expected literal states it; an
/// actual histogram without a hint counts as `unknown`.
fn check_hint(expected: &HistogramLiteral, actual: &HistogramLiteral) -> Result<(), String> {
    let Some(want) = expected.counter_reset_hint.as_deref() else {
        return Ok(());
    };
    let got = actual.counter_reset_hint.as_deref().unwrap_or("unknown");
    if got == want {
        Ok(())
    } else {
        Err(format!("counter_reset_hint {got} != {want}"))
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::super::script::{Command, parse_histogram_body, parse_script, stale_marker};
    use super::*;

    /// The single eval of a script made of one eval block.
    fn eval(text: &str) -> Eval {
        let script = parse_script("t.test", text).unwrap_or_else(|e| panic!("{e}"));
        script
            .commands
            .into_iter()
            .find_map(|c| match c {
                Command::Eval(e) => Some(e),
                _ => None,
            })
            .expect("an eval")
    }

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn f(v: f64) -> SampleValue {
        SampleValue::Float(v)
    }

    fn h(body: &str) -> SampleValue {
        SampleValue::Histogram(parse_histogram_body(body).unwrap())
    }

    fn ok(actual: Actual) -> Result<(Actual, Annotations), String> {
        Ok((actual, Annotations::default()))
    }

    fn with_annotations(
        actual: Actual,
        warnings: &[&str],
        infos: &[&str],
    ) -> Result<(Actual, Annotations), String> {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Ok((
            actual,
            Annotations {
                warnings: own(warnings),
                infos: own(infos),
            },
        ))
    }

    fn vector(items: &[(Labels, SampleValue)]) -> Actual {
        Actual::Vector(items.to_vec())
    }

    fn assert_err_contains(result: Result<(), String>, needle: &str) {
        match result {
            Ok(()) => panic!("expected an error containing {needle:?}"),
            Err(e) => assert!(e.contains(needle), "{e:?} should contain {needle:?}"),
        }
    }

    // --- §6.4 almost_equal ---

    #[test]
    fn almost_equal_rules() {
        let stale = stale_marker();
        assert!(almost_equal(stale, stale));
        assert!(!almost_equal(stale, f64::NAN));
        assert!(!almost_equal(f64::NAN, stale));
        assert!(almost_equal(f64::NAN, -f64::NAN));
        assert!(almost_equal(f64::INFINITY, f64::INFINITY));
        assert!(!almost_equal(f64::INFINITY, f64::NEG_INFINITY));
        assert!(!almost_equal(f64::INFINITY, 1e308));
        assert!(almost_equal(0.0, -0.0));
        assert!(!almost_equal(0.0, 1e-17));
        assert!(!almost_equal(1e-17, 0.0));
        assert!(almost_equal(249.99999999999997, 250.0));
        assert!(almost_equal(1.0, 1.0 + 1e-7));
        assert!(!almost_equal(1.0, 1.00001));
        assert!(!almost_equal(f64::NAN, 1.0));
        assert!(almost_equal(f64::MAX, f64::MAX * (1.0 - 1e-9)));
        assert!(almost_equal(1e-310, 1e-310));
        assert!(!almost_equal(1e-310, 2e-310));
    }

    // --- fail / errors ---

    #[test]
    fn expected_failure() {
        let e = eval("eval instant at 0 x\n  expect fail msg: boom\n  x 1\n");
        assert!(check(&e, &Err("boom".into())).is_ok());
        assert_err_contains(check(&e, &Err("bang".into())), "does not match");
        assert_err_contains(
            check(&e, &ok(Actual::Scalar(1.0))),
            "expected failure, got success",
        );
        let loose = CheckOptions {
            loose_messages: true,
        };
        assert!(check_with(&e, &Err("bang".into()), loose).is_ok());
        let e = eval("eval instant at 0 x\n  expect fail regex: same labelset\n");
        assert!(
            check(
                &e,
                &Err("vector cannot contain metrics with the same labelset".into())
            )
            .is_ok()
        );
    }

    #[test]
    fn unexpected_error_fails() {
        let e = eval("eval instant at 0 x\n  x 1\n");
        assert_err_contains(check(&e, &Err("boom".into())), "unexpected error: boom");
    }

    // --- §5.3 annotations ---

    #[test]
    fn annotations_unchecked_unless_stated() {
        let e = eval("eval instant at 0 x\n  x 1\n");
        let actual = vector(&[(l(&[("__name__", "x")]), f(1.0))]);
        assert!(
            check(
                &e,
                &with_annotations(
                    actual,
                    &["PromQL warning: w (1:1)"],
                    &["PromQL info: i (1:1)"]
                )
            )
            .is_ok()
        );
    }

    #[test]
    fn no_warn_and_no_info_forbid_annotations() {
        let e = eval("eval instant at 0 1\n  expect no_warn\n  expect no_info\n  1\n");
        assert!(check(&e, &ok(Actual::Scalar(1.0))).is_ok());
        assert_err_contains(
            check(&e, &with_annotations(Actual::Scalar(1.0), &["w"], &[])),
            "expected no warning",
        );
        assert_err_contains(
            check(&e, &with_annotations(Actual::Scalar(1.0), &[], &["i"])),
            "expected no info",
        );
    }

    #[test]
    fn warn_expectations_match_both_ways() {
        let e = eval(
            "eval instant at 0 1\n  expect warn msg: PromQL warning: a (1:1)\n  expect warn regex: b \\([0-9]+:[0-9]+\\)\n  1\n",
        );
        let run = |w: &[&str]| check(&e, &with_annotations(Actual::Scalar(1.0), w, &[]));
        assert!(run(&["PromQL warning: a (1:1)", "PromQL warning: b (3:4)"]).is_ok());
        assert_err_contains(run(&[]), "expected warning, got none");
        assert_err_contains(run(&["PromQL warning: a (1:1)"]), "no warning matches");
        assert_err_contains(
            run(&[
                "PromQL warning: a (1:1)",
                "PromQL warning: b (1:1)",
                "PromQL warning: c",
            ]),
            "unexpected warning",
        );
        let loose = CheckOptions {
            loose_messages: true,
        };
        assert!(
            check_with(
                &e,
                &with_annotations(Actual::Scalar(1.0), &["other"], &[]),
                loose
            )
            .is_ok()
        );
    }

    #[test]
    fn bare_expect_info_needs_at_least_one() {
        let e = eval("eval instant at 0 1\n  expect info\n  1\n");
        assert!(check(&e, &with_annotations(Actual::Scalar(1.0), &[], &["x", "y"])).is_ok());
        assert_err_contains(check(&e, &ok(Actual::Scalar(1.0))), "expected info");
    }

    // --- §6.2 instant vectors ---

    #[test]
    fn vector_set_comparison() {
        let e = eval("eval instant at 0 x\n  x{a=\"1\"} 1\n  {__name__=\"x\", a=\"2\"} 2\n");
        let one = (l(&[("__name__", "x"), ("a", "1")]), f(1.0));
        let two = (l(&[("a", "2"), ("__name__", "x")]), f(2.0));
        assert!(check(&e, &ok(vector(&[two.clone(), one.clone()]))).is_ok());
        assert_err_contains(
            check(&e, &ok(vector(std::slice::from_ref(&one)))),
            "missing series x{a=\"2\"}",
        );
        let three = (l(&[("__name__", "x"), ("a", "3")]), f(3.0));
        assert_err_contains(
            check(&e, &ok(vector(&[one.clone(), two.clone(), three]))),
            "unexpected series",
        );
        let wrong = (l(&[("__name__", "x"), ("a", "2")]), f(4.0));
        assert_err_contains(
            check(&e, &ok(vector(&[one.clone(), wrong]))),
            "series x{a=\"2\"} value 4 != expected 2",
        );
        assert_err_contains(check(&e, &ok(vector(&[one.clone(), one, two]))), "twice");
    }

    #[test]
    fn metric_name_is_part_of_identity() {
        let e = eval("eval instant at 0 x + 1\n  {a=\"1\"} 2\n");
        assert_err_contains(
            check(
                &e,
                &ok(vector(&[(l(&[("__name__", "x"), ("a", "1")]), f(2.0))])),
            ),
            "unexpected series",
        );
        assert!(check(&e, &ok(vector(&[(l(&[("a", "1")]), f(2.0))]))).is_ok());
    }

    #[test]
    fn empty_label_values_are_absent_labels() {
        let e = eval("eval instant at 0 x\n  x{u=\"\", a=\"1\"} 1\n");
        assert!(
            check(
                &e,
                &ok(vector(&[(l(&[("__name__", "x"), ("a", "1")]), f(1.0))]))
            )
            .is_ok()
        );
    }

    #[test]
    fn empty_expectation_needs_empty_vector() {
        let e = eval("eval instant at 0 x\n");
        assert!(check(&e, &ok(vector(&[]))).is_ok());
        assert_err_contains(
            check(&e, &ok(vector(&[(l(&[]), f(1.0))]))),
            "unexpected series {}",
        );
    }

    #[test]
    fn ordered_vector() {
        let e = eval(
            "eval instant at 0 sort_desc(x)\n  expect ordered\n  x{a=\"2\"} 2\n  x{a=\"1\"} 1\n",
        );
        let one = (l(&[("__name__", "x"), ("a", "1")]), f(1.0));
        let two = (l(&[("__name__", "x"), ("a", "2")]), f(2.0));
        assert!(check(&e, &ok(vector(&[two.clone(), one.clone()]))).is_ok());
        assert_err_contains(check(&e, &ok(vector(&[one, two]))), "position");
    }

    #[test]
    fn float_and_histogram_do_not_match() {
        let e = eval("eval instant at 0 x\n  x 1\n");
        assert_err_contains(
            check(&e, &ok(vector(&[(l(&[("__name__", "x")]), h("count:1"))]))),
            "expected float",
        );
        let e = eval("eval instant at 0 x\n  x {{count:1}}\n");
        assert_err_contains(
            check(&e, &ok(vector(&[(l(&[("__name__", "x")]), f(1.0))]))),
            "expected histogram",
        );
    }

    // --- result types ---

    #[test]
    fn scalar_results() {
        let e = eval("eval instant at 0 1\n  1.0000001\n");
        assert!(check(&e, &ok(Actual::Scalar(1.0))).is_ok());
        assert_err_contains(
            check(&e, &ok(Actual::Scalar(2.0))),
            "scalar 2 != expected 1",
        );
        assert_err_contains(
            check(&e, &ok(vector(&[(l(&[]), f(1.0))]))),
            "expected a scalar, got an instant vector",
        );
        let e = eval("eval instant at 0 vector(1)\n  {} 1\n");
        assert_err_contains(
            check(&e, &ok(Actual::Scalar(1.0))),
            "expected an instant vector, got scalar",
        );
        let e = eval("eval instant at 0 NaN\n  NaN\n");
        assert!(check(&e, &ok(Actual::Scalar(f64::NAN))).is_ok());
    }

    #[test]
    fn string_results() {
        let e = eval("eval instant at 0 \"a\"\n  expect string \"a\"\n");
        assert!(check(&e, &ok(Actual::String("a".into()))).is_ok());
        assert_err_contains(
            check(&e, &ok(Actual::String("b".into()))),
            "string \"b\" != expected \"a\"",
        );
        assert_err_contains(check(&e, &ok(Actual::Scalar(1.0))), "expected a string");
        let e = eval("eval instant at 0 \"\"\n");
        assert!(check(&e, &ok(Actual::String(String::new()))).is_ok());
        let e = eval("eval instant at 0 x\n  x 1\n");
        assert_err_contains(check(&e, &ok(Actual::String(String::new()))), "got string");
    }

    // --- §6.3 matrices ---

    fn matrix(series: &[(Labels, &[(i64, f64)])]) -> Actual {
        Actual::Matrix(
            series
                .iter()
                .map(|(labels, points)| {
                    (
                        labels.clone(),
                        points.iter().map(|&(t, v)| (t, f(v))).collect(),
                    )
                })
                .collect(),
        )
    }

    const RANGE_EVAL: &str = "eval range from 0 to 3m step 1m temp\n  temp{room=\"hall\"} 1+1x3\n  temp{room=\"lab\"} 10 10 _ 20\n";

    fn hall() -> Labels {
        l(&[("__name__", "temp"), ("room", "hall")])
    }

    fn lab() -> Labels {
        l(&[("__name__", "temp"), ("room", "lab")])
    }

    #[test]
    fn matrix_matches_points_one_to_one() {
        let e = eval(RANGE_EVAL);
        let hall_points: &[(i64, f64)] = &[(0, 1.0), (60_000, 2.0), (120_000, 3.0), (180_000, 4.0)];
        let good = matrix(&[
            (hall(), hall_points),
            (lab(), &[(0, 10.0), (60_000, 10.0), (180_000, 20.0)]),
        ]);
        assert!(check(&e, &ok(good)).is_ok());
        let extra = matrix(&[
            (hall(), hall_points),
            (
                lab(),
                &[(0, 10.0), (60_000, 10.0), (120_000, 5.0), (180_000, 20.0)],
            ),
        ]);
        assert_err_contains(check(&e, &ok(extra)), "has 4 points, expected 3");
        let trailing_missing = matrix(&[
            (hall(), &hall_points[..3]),
            (lab(), &[(0, 10.0), (60_000, 10.0), (180_000, 20.0)]),
        ]);
        assert_err_contains(check(&e, &ok(trailing_missing)), "has 3 points, expected 4");
        let shifted = matrix(&[
            (hall(), hall_points),
            (lab(), &[(0, 10.0), (120_000, 10.0), (180_000, 20.0)]),
        ]);
        assert_err_contains(
            check(&e, &ok(shifted)),
            "t=120000ms where one was expected at t=60000ms",
        );
        let wrong = matrix(&[
            (hall(), hall_points),
            (lab(), &[(0, 10.0), (60_000, 11.0), (180_000, 20.0)]),
        ]);
        assert_err_contains(
            check(&e, &ok(wrong)),
            "at t=60000ms: value 11 != expected 10",
        );
    }

    #[test]
    fn matrix_must_be_sorted() {
        let e = eval(RANGE_EVAL);
        let unsorted = matrix(&[
            (lab(), &[(0, 10.0), (60_000, 10.0), (180_000, 20.0)]),
            (
                hall(),
                &[(0, 1.0), (60_000, 2.0), (120_000, 3.0), (180_000, 4.0)],
            ),
        ]);
        assert_err_contains(check(&e, &ok(unsorted)), "not sorted");
        // A label set that is a prefix of another sorts first.
        let e = eval("eval range from 0 to 0 step 1m x\n  {a=\"1\"} 1\n  {a=\"1\", b=\"2\"} 2\n");
        let short = l(&[("a", "1")]);
        let long = l(&[("a", "1"), ("b", "2")]);
        assert!(
            check(
                &e,
                &ok(matrix(&[
                    (short.clone(), &[(0, 1.0)]),
                    (long.clone(), &[(0, 2.0)])
                ]))
            )
            .is_ok()
        );
        assert_err_contains(
            check(
                &e,
                &ok(matrix(&[(long, &[(0, 2.0)]), (short, &[(0, 1.0)])])),
            ),
            "not sorted",
        );
    }

    #[test]
    fn matrix_rejects_ordered_and_too_many_values() {
        let e = eval("eval range from 0 to 1m step 1m x\n  expect ordered\n  {} 1 1\n");
        assert_err_contains(
            check(&e, &ok(matrix(&[(l(&[]), &[(0, 1.0), (60_000, 1.0)])]))),
            "ordered",
        );
        let e = eval("eval range from 0 to 1m step 1m x\n  {} 1 1 1\n");
        assert_err_contains(
            check(&e, &ok(matrix(&[(l(&[]), &[(0, 1.0), (60_000, 1.0)])]))),
            "only 2 steps",
        );
    }

    #[test]
    fn range_eval_scalar_is_a_labelless_series() {
        let e = eval("eval range from 0 to 2m step 1m time()\n  {} 0 60 120\n");
        assert!(
            check(
                &e,
                &ok(matrix(&[(
                    l(&[]),
                    &[(0, 0.0), (60_000, 60.0), (120_000, 120.0)]
                )]))
            )
            .is_ok()
        );
        assert_err_contains(check(&e, &ok(Actual::Scalar(0.0))), "expected a matrix");
        assert_err_contains(check(&e, &ok(vector(&[]))), "expected a matrix");
    }

    #[test]
    fn expect_range_vector_uses_its_own_grid() {
        let e = eval(
            "eval instant at 3m temp{room=\"lab\"}[3m]\n  expect range vector from 1m to 3m step 1m\n  temp{room=\"lab\"} _ _ 20\n",
        );
        assert!(check(&e, &ok(matrix(&[(lab(), &[(180_000, 20.0)])]))).is_ok());
        assert_err_contains(
            check(&e, &ok(matrix(&[(lab(), &[(120_000, 20.0)])]))),
            "expected at t=180000ms",
        );
        assert_err_contains(
            check(&e, &ok(vector(&[(lab(), f(20.0))]))),
            "expected a matrix",
        );
        let plain = eval("eval instant at 0 x\n");
        assert_err_contains(check(&plain, &ok(matrix(&[]))), "got a matrix");
    }

    #[test]
    fn matrix_histograms_and_stale_values() {
        let e = eval(
            "eval range from 0 to 1m step 1m h\n  h {{count:1}} {{count:2 counter_reset_hint:not_reset}}\n",
        );
        let labels = l(&[("__name__", "h")]);
        let points = |hint: &str| {
            Actual::Matrix(vec![(
                labels.clone(),
                vec![
                    (0, h("count:1 counter_reset_hint:unknown")),
                    (60_000, h(&format!("count:2 {hint}"))),
                ],
            )])
        };
        assert!(check(&e, &ok(points("counter_reset_hint:not_reset"))).is_ok());
        assert_err_contains(
            check(&e, &ok(points("counter_reset_hint:reset"))),
            "counter_reset_hint reset != not_reset",
        );
        assert_err_contains(check(&e, &ok(points(""))), "unknown != not_reset");
    }

    // --- §6.5 histograms ---

    fn hist_eq(expected: &str, actual: &str) -> Result<(), String> {
        compare_sample(&h(expected), &h(actual))
    }

    #[test]
    fn histogram_zero_buckets_are_normalised_away() {
        assert!(
            hist_eq(
                "count:3 buckets:[1 2] offset:1",
                "count:3 buckets:[0 1 0 2 0] offset:0"
            )
            .is_err()
        );
        assert!(
            hist_eq(
                "count:3 buckets:[1 2] offset:1",
                "count:3 buckets:[0 1 2 0] offset:0"
            )
            .is_ok()
        );
        assert!(hist_eq("count:3 buckets:[1 0 2]", "count:3 buckets:[1 0 2 0 0]").is_ok());
        let err = hist_eq("buckets:[1 2] offset:1", "buckets:[1 2]").unwrap_err();
        assert!(err.contains("buckets"), "{err}");
        assert!(hist_eq("n_buckets:[3] n_offset:-2", "n_buckets:[0 3] n_offset:-3").is_ok());
    }

    #[test]
    fn histogram_field_rules() {
        assert!(hist_eq("count:4 sum:6.0000001", "count:4 sum:6").is_ok());
        assert!(
            hist_eq("schema:1", "schema:0")
                .unwrap_err()
                .contains("schema")
        );
        assert!(
            hist_eq("z_bucket_w:0.001", "z_bucket_w:0.0010000001")
                .unwrap_err()
                .contains("z_bucket_w")
        );
        assert!(
            hist_eq(
                "z_bucket:1 z_bucket_w:0.1",
                "z_bucket:1.0000001 z_bucket_w:0.1"
            )
            .is_ok()
        );
        assert!(hist_eq("count:0", "count:1e-17").is_err());
        assert!(
            hist_eq(
                "schema:-53 custom_values:[1 2]",
                "schema:-53 custom_values:[1 3]"
            )
            .unwrap_err()
            .contains("custom_values")
        );
        // Custom values only matter for schema -53.
        assert!(hist_eq("schema:0", "schema:0 custom_values:[1]").is_ok());
        // The hint is "don't care" unless the expectation states it.
        assert!(hist_eq("count:1", "count:1 counter_reset_hint:gauge").is_ok());
        assert!(hist_eq("count:1 counter_reset_hint:gauge", "count:1").is_err());
        assert!(hist_eq("count:1 counter_reset_hint:unknown", "count:1").is_ok());
    }
}
