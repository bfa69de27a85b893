//! The SQL a PromQL instant query corresponds to, for `/api/v1/explain`: a query over the
//! metric tables with the `prom_*` aggregates (see [`super::sql_functions`]) that the SQL
//! endpoints run with the same results, minus `__name__`, which metric tables do not carry.
//!
//! It covers the forms dashboards use most: selectors with a metric name, range functions
//! over them, `offset` and `@`, aggregations (`sum`, `avg`, `min`, `max`, `count`, `group`,
//! `stddev`, `stdvar`) with `by`/`without`, arithmetic and comparisons with a number, one-to-one
//! arithmetic between vectors with the same labels, and math functions. Anything else has no
//! SQL form here, and explain says so.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Call, Expr as PromExpr, LabelModifier, VectorSelector,
};

use crate::model::METRIC_NAME_LABEL;
use crate::query::scan::label_column_name;

use super::functions::RangeFunc;
use super::ops::{AggregateOp, BinaryOp};
use super::planner::{const_arg, offset_ms, strip_parens, system_time_ms};
use super::sql_functions::sql_name;
use super::syntax::{MODE_LABEL, SelectorMode, selector_mode};

/// Metric names a query selects, whose table columns the translation needs.
pub fn metric_names(expr: &PromExpr, out: &mut BTreeSet<String>) {
    match expr {
        PromExpr::VectorSelector(vs) => out.extend(super::planner::metric_name(vs)),
        PromExpr::MatrixSelector(ms) => out.extend(super::planner::metric_name(&ms.vs)),
        PromExpr::Paren(p) => metric_names(&p.expr, out),
        PromExpr::Unary(u) => metric_names(&u.expr, out),
        PromExpr::Aggregate(a) => metric_names(&a.expr, out),
        PromExpr::Binary(b) => {
            metric_names(&b.lhs, out);
            metric_names(&b.rhs, out);
        }
        PromExpr::Call(c) => c.args.args.iter().for_each(|a| metric_names(a, out)),
        PromExpr::Subquery(s) => metric_names(&s.expr, out),
        _ => {}
    }
}

/// Translates instant queries at one time.
pub struct Translator {
    pub time_ms: i64,
    pub lookback_ms: i64,
    /// Label columns of each metric table.
    pub columns: BTreeMap<String, Vec<String>>,
}

/// A relation `(label columns..., value)`.
struct Rel {
    sql: String,
    labels: Vec<String>,
}

type Translated = Result<Rel, String>;

impl Translator {
    /// The SQL for `expr`, or why there is none.
    pub fn translate(&self, expr: &PromExpr) -> Result<String, String> {
        let rel = self.vector(expr)?;
        let mut columns: Vec<String> = rel.labels.iter().map(|l| ident(l)).collect();
        columns.push("value".into());
        let order: Vec<String> = rel.labels.iter().map(|l| ident(l)).collect();
        let order = if order.is_empty() {
            String::new()
        } else {
            format!("\nORDER BY {}", order.join(", "))
        };
        Ok(format!(
            "SELECT {}\nFROM ({}) AS result{order}",
            columns.join(", "),
            rel.sql
        ))
    }

    fn vector(&self, expr: &PromExpr) -> Translated {
        match expr {
            PromExpr::Paren(p) => self.vector(&p.expr),
            PromExpr::VectorSelector(vs) => self.selector(vs, None),
            PromExpr::Call(c) => self.call(c),
            PromExpr::Aggregate(a) => self.aggregate(a),
            PromExpr::Binary(b) => self.binary(b),
            PromExpr::Unary(u) => {
                let inner = self.vector(&u.expr)?;
                Ok(map_value(inner, |v| format!("-{v}")))
            }
            other => Err(format!(
                "{} has no SQL form here",
                other.value_type().to_string().to_lowercase()
            )),
        }
    }

    /// The data time a selector reads at, after `@` and offset.
    fn data_time(&self, vs: &VectorSelector) -> i64 {
        let at = match &vs.at {
            Some(AtModifier::At(t)) => system_time_ms(*t),
            _ => self.time_ms,
        };
        at - offset_ms(&vs.offset)
    }

    /// `prom_instant` (no range) or a range function over one metric table.
    fn selector(&self, vs: &VectorSelector, range: Option<(RangeFunc, i64, &[f64])>) -> Translated {
        if selector_mode(vs) != SelectorMode::Plain {
            return Err("anchored and smoothed selectors have no SQL form".into());
        }
        let metric = super::planner::metric_name(vs)
            .ok_or("only selectors with a metric name have a SQL form")?;
        let columns = self.columns.get(&metric).cloned().unwrap_or_default();
        let t = self.data_time(vs);
        let window = range.map_or(self.lookback_ms, |r| r.1);
        let mut filters = vec![
            format!("timestamp > {} - {}", timestamp(t), interval(window)),
            format!("timestamp <= {}", timestamp(t)),
        ];
        for m in vs.matchers.matchers.iter().filter(|m| m.name != MODE_LABEL) {
            if m.name == METRIC_NAME_LABEL {
                continue;
            }
            filters.push(matcher(m, &columns));
        }
        if !vs.matchers.or_matchers.is_empty() {
            return Err("`or` inside a selector has no SQL form here".into());
        }
        let call = match range {
            None => format!(
                "prom_instant(timestamp, value, {}, {})",
                timestamp(t),
                interval(window)
            ),
            Some((func, range, params)) => {
                let mut args = vec![
                    "timestamp".to_string(),
                    "value".to_string(),
                    timestamp(t),
                    interval(range),
                ];
                args.extend(params.iter().map(|p| number(*p)));
                format!("{}({})", sql_name(func), args.join(", "))
            }
        };
        let label_list: Vec<String> = columns.iter().map(|c| ident(c)).collect();
        let mut select = label_list.clone();
        select.push(format!("{call} AS value"));
        let group = if label_list.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {}", label_list.join(", "))
        };
        let inner = format!(
            "SELECT {} FROM {} WHERE {}{group}",
            select.join(", "),
            ident(&metric),
            filters.join(" AND ")
        );
        Ok(Rel {
            sql: format!("SELECT * FROM ({inner}) AS s WHERE value IS NOT NULL"),
            labels: columns,
        })
    }

    fn call(&self, call: &Call) -> Translated {
        let name = call.func.name;
        let args: Vec<&PromExpr> = call.args.args.iter().map(|a| a.as_ref()).collect();
        if let Some(func) = RangeFunc::from_name(name) {
            let (range_arg, params) = match func {
                RangeFunc::QuantileOverTime => (args[1], vec![args[0]]),
                _ => (args[0], args[1..].to_vec()),
            };
            let PromExpr::MatrixSelector(ms) = strip_parens(range_arg) else {
                return Err("range functions over subqueries have no SQL form here".into());
            };
            let params: Vec<f64> = params
                .iter()
                .map(|p| constant(p).ok_or("a non-constant parameter has no SQL form here"))
                .collect::<Result<_, _>>()?;
            let range = ms.range.as_millis() as i64;
            return self.selector(&ms.vs, Some((func, range, &params)));
        }
        let sql_fn = match name {
            "abs" | "ceil" | "floor" | "exp" | "sqrt" | "ln" | "log2" | "log10" | "sin" | "cos"
            | "tan" | "asin" | "acos" | "atan" | "sinh" | "cosh" | "tanh" => name,
            _ => return Err(format!("{name}() has no SQL form here")),
        };
        let inner = self.vector(args[0])?;
        Ok(map_value(inner, |v| format!("{sql_fn}({v})")))
    }

    fn aggregate(&self, a: &AggregateExpr) -> Translated {
        let op = AggregateOp::from_token(a.op).map_err(|e| e.to_string())?;
        let function = match op {
            AggregateOp::Sum => "sum(value)",
            AggregateOp::Avg => "avg(value)",
            AggregateOp::Min => "min(value)",
            AggregateOp::Max => "max(value)",
            AggregateOp::Count => "CAST(count(value) AS DOUBLE)",
            AggregateOp::Group => "1.0",
            AggregateOp::Stddev => "stddev_pop(value)",
            AggregateOp::Stdvar => "var_pop(value)",
            other => return Err(format!("{other} has no SQL form here")),
        };
        let inner = self.vector(&a.expr)?;
        let labels: Vec<String> = match &a.modifier {
            None => Vec::new(),
            Some(LabelModifier::Include(l)) => l
                .labels
                .iter()
                .filter(|n| *n != METRIC_NAME_LABEL)
                .cloned()
                .collect(),
            Some(LabelModifier::Exclude(l)) => inner
                .labels
                .iter()
                .filter(|n| !l.labels.contains(n))
                .cloned()
                .collect(),
        };
        let select: Vec<String> = labels
            .iter()
            .map(|l| {
                if inner.labels.contains(l) {
                    ident(l)
                } else {
                    format!("NULL AS {}", ident(l))
                }
            })
            .collect();
        let group: Vec<String> = labels
            .iter()
            .filter(|l| inner.labels.contains(l))
            .map(|l| ident(l))
            .collect();
        let mut columns = select;
        columns.push(format!("{function} AS value"));
        let group = if group.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {}", group.join(", "))
        };
        Ok(Rel {
            sql: format!(
                "SELECT {} FROM ({}) AS a{group}",
                columns.join(", "),
                inner.sql
            ),
            labels,
        })
    }

    fn binary(&self, b: &BinaryExpr) -> Translated {
        let op = BinaryOp::from_token(b.op).map_err(|e| e.to_string())?;
        let comparison = op.is_comparison();
        let bool_modifier = b.return_bool();
        match (constant(&b.lhs), constant(&b.rhs)) {
            (Some(_), Some(_)) => Err("a scalar expression has no SQL form here".into()),
            (None, Some(c)) => {
                let inner = self.vector(&b.lhs)?;
                Ok(scalar_op(
                    inner,
                    |v| operation(op, v, &number(c)),
                    comparison,
                    bool_modifier,
                ))
            }
            (Some(c), None) => {
                let inner = self.vector(&b.rhs)?;
                Ok(scalar_op(
                    inner,
                    |v| operation(op, &number(c), v),
                    comparison,
                    bool_modifier,
                ))
            }
            (None, None) if comparison || op.is_set() => {
                Err(format!("{op} between vectors has no SQL form here"))
            }
            (None, None)
                if b.modifier.as_ref().is_some_and(|m| {
                    m.matching.is_some()
                        || m.card != promql_parser::parser::VectorMatchCardinality::OneToOne
                }) =>
            {
                Err("vector matching modifiers have no SQL form here".into())
            }
            (None, None) => {
                let (l, r) = (self.vector(&b.lhs)?, self.vector(&b.rhs)?);
                if l.labels != r.labels {
                    return Err("vectors with different labels have no SQL form here".into());
                }
                let on: Vec<String> = l
                    .labels
                    .iter()
                    .map(|c| format!("(l.{0} IS NOT DISTINCT FROM r.{0})", ident(c)))
                    .collect();
                let mut columns: Vec<String> =
                    l.labels.iter().map(|c| format!("l.{}", ident(c))).collect();
                columns.push(format!("{} AS value", operation(op, "l.value", "r.value")));
                let on = if on.is_empty() {
                    "true".to_string()
                } else {
                    on.join(" AND ")
                };
                Ok(Rel {
                    sql: format!(
                        "SELECT {} FROM ({}) AS l JOIN ({}) AS r ON {on}",
                        columns.join(", "),
                        l.sql,
                        r.sql
                    ),
                    labels: l.labels,
                })
            }
        }
    }
}

/// `a op b` in SQL.
fn operation(op: BinaryOp, a: &str, b: &str) -> String {
    match op {
        BinaryOp::Pow => format!("power({a}, {b})"),
        BinaryOp::Atan2 => format!("atan2({a}, {b})"),
        BinaryOp::Eq => format!("{a} = {b}"),
        BinaryOp::Ne => format!("{a} <> {b}"),
        other => format!("{a} {other} {b}"),
    }
}

/// Arithmetic with a number maps the value; a comparison filters (or, with `bool`, gives
/// 0/1).
fn scalar_op(
    inner: Rel,
    expr: impl Fn(&str) -> String,
    comparison: bool,
    bool_modifier: bool,
) -> Rel {
    if !comparison {
        return map_value(inner, expr);
    }
    if bool_modifier {
        return map_value(inner, |v| format!("CAST({} AS DOUBLE)", expr(v)));
    }
    Rel {
        sql: format!("SELECT * FROM ({}) AS c WHERE {}", inner.sql, expr("value")),
        labels: inner.labels,
    }
}

fn map_value(inner: Rel, f: impl Fn(&str) -> String) -> Rel {
    let mut columns: Vec<String> = inner.labels.iter().map(|l| ident(l)).collect();
    columns.push(format!("{} AS value", f("value")));
    Rel {
        sql: format!("SELECT {} FROM ({}) AS m", columns.join(", "), inner.sql),
        labels: inner.labels,
    }
}

fn matcher(m: &Matcher, columns: &[String]) -> String {
    let column = label_column_name(&m.name);
    let value = if columns.contains(&column) {
        format!("coalesce({}, '')", ident(&column))
    } else {
        "''".to_string()
    };
    match &m.op {
        MatchOp::Equal => format!("{value} = {}", string(&m.value)),
        MatchOp::NotEqual => format!("{value} <> {}", string(&m.value)),
        MatchOp::Re(_) => format!("{value} ~ {}", string(&format!("^(?:{})$", m.value))),
        MatchOp::NotRe(_) => format!("{value} !~ {}", string(&format!("^(?:{})$", m.value))),
    }
}

/// A number the expression folds to (`2`, `-(1+1)`), if it is constant.
fn constant(expr: &PromExpr) -> Option<f64> {
    const_arg(Some(expr)).ok()
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "CAST('NaN' AS DOUBLE)".into()
    } else if v.is_infinite() {
        format!("CAST('{}inf' AS DOUBLE)", if v > 0.0 { "" } else { "-" })
    } else {
        format!("{v:?}")
    }
}

fn timestamp(ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    format!("TIMESTAMP '{}'", t.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
}

fn interval(ms: i64) -> String {
    format!("INTERVAL '{ms} milliseconds'")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(q: &str) -> Result<String, String> {
        let expr = super::super::PromqlEngine::parse(q).unwrap();
        Translator {
            time_ms: 1_000_000,
            lookback_ms: 300_000,
            columns: BTreeMap::from([(
                "http_requests_total".to_string(),
                vec!["instance".to_string(), "job".to_string()],
            )]),
        }
        .translate(&expr)
    }

    #[test]
    fn rate_by_job() {
        let sql =
            translate(r#"sum by (job) (rate(http_requests_total{job=~"api.*"}[5m]))"#).unwrap();
        assert!(sql.contains("prom_rate(timestamp, value, TIMESTAMP '1970-01-01T00:16:40.000Z', INTERVAL '300000 milliseconds')"), "{sql}");
        assert!(
            sql.contains(r#"coalesce("job", '') ~ '^(?:api.*)$'"#),
            "{sql}"
        );
        assert!(sql.contains(r#"GROUP BY "job""#), "{sql}");
    }

    #[test]
    fn untranslatable_forms_say_why() {
        assert!(
            translate("{job=\"x\"}")
                .unwrap_err()
                .contains("metric name")
        );
        assert!(translate("a and b").unwrap_err().contains("and"));
        assert!(
            translate("rate(x[5m:1m])")
                .unwrap_err()
                .contains("subqueries")
        );
    }
}
