//! Reads conservative time bounds out of pushed-down filters, so a scan can skip blocks and
//! head samples outside them. DataFusion still applies the filters exactly afterwards.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

/// Inclusive bounds in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub min: i64,
    pub max: i64,
}

impl TimeRange {
    pub const ALL: TimeRange = TimeRange {
        min: i64::MIN,
        max: i64::MAX,
    };

    /// Intersects the bounds implied by every filter on `column`.
    pub fn from_filters(filters: &[Expr], column: &str) -> TimeRange {
        let mut range = TimeRange::ALL;
        for f in filters {
            range.narrow(f, column);
        }
        range
    }

    /// True when the filter constrains only `column` in a way `narrow` understands.
    /// How a table whose time column is `column` takes `filters`: the time bounds it
    /// understands prune its scan (inexactly: the caller filters again), the rest not.
    pub fn pushdown(
        filters: &[&Expr],
        column: &str,
    ) -> Vec<datafusion::logical_expr::TableProviderFilterPushDown> {
        use datafusion::logical_expr::TableProviderFilterPushDown as Pushdown;
        filters
            .iter()
            .map(|f| match TimeRange::understands(f, column) {
                true => Pushdown::Inexact,
                false => Pushdown::Unsupported,
            })
            .collect()
    }

    pub fn understands(expr: &Expr, column: &str) -> bool {
        let mut probe = TimeRange::ALL;
        probe.narrow(expr, column);
        probe != TimeRange::ALL
    }

    fn narrow(&mut self, expr: &Expr, column: &str) {
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) if *op == Operator::And => {
                self.narrow(left, column);
                self.narrow(right, column);
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                if is_column(left, column)
                    && let Some(ms) = literal_ms(right)
                {
                    self.apply(*op, ms);
                } else if is_column(right, column)
                    && let Some(ms) = literal_ms(left)
                    && let Some(op) = op.swap()
                {
                    self.apply(op, ms);
                }
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if is_column(expr, column) => {
                if let (Some(lo), Some(hi)) = (literal_ms(low), literal_ms(high)) {
                    self.apply(Operator::GtEq, lo);
                    self.apply(Operator::LtEq, hi);
                }
            }
            _ => {}
        }
    }

    fn apply(&mut self, op: Operator, ms: Ms) {
        match op {
            Operator::Gt | Operator::GtEq => self.min = self.min.max(ms.floor),
            Operator::Lt | Operator::LtEq => self.max = self.max.min(ms.ceil),
            Operator::Eq => {
                self.min = self.min.max(ms.floor);
                self.max = self.max.min(ms.ceil);
            }
            _ => {}
        }
    }
}

/// A literal timestamp rounded both ways to milliseconds.
#[derive(Debug, Clone, Copy)]
struct Ms {
    floor: i64,
    ceil: i64,
}

fn is_column(expr: &Expr, column: &str) -> bool {
    match expr {
        Expr::Column(c) => c.name == column,
        Expr::Cast(c) => is_column(&c.expr, column),
        Expr::TryCast(c) => is_column(&c.expr, column),
        _ => false,
    }
}

fn literal_ms(expr: &Expr) -> Option<Ms> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    let (v, per_ms) = match value {
        ScalarValue::TimestampSecond(Some(v), _) => return Some(exact(v.checked_mul(1000)?)),
        ScalarValue::TimestampMillisecond(Some(v), _) => return Some(exact(*v)),
        ScalarValue::TimestampMicrosecond(Some(v), _) => (*v, 1_000),
        ScalarValue::TimestampNanosecond(Some(v), _) => (*v, 1_000_000),
        _ => return None,
    };
    Some(Ms {
        floor: v.div_euclid(per_ms),
        ceil: v.div_euclid(per_ms) + i64::from(v.rem_euclid(per_ms) != 0),
    })
}

fn exact(ms: i64) -> Ms {
    Ms {
        floor: ms,
        ceil: ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn ts(ms: i64) -> Expr {
        lit(ScalarValue::TimestampMillisecond(
            Some(ms),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn reads_bounds_from_comparisons_and_between() {
        let filters = vec![
            col("timestamp").gt_eq(ts(1000)),
            ts(5000).gt(col("timestamp")),
        ];
        assert_eq!(
            TimeRange::from_filters(&filters, "timestamp"),
            TimeRange {
                min: 1000,
                max: 5000
            }
        );
        let between = vec![col("timestamp").between(ts(10), ts(20))];
        assert_eq!(
            TimeRange::from_filters(&between, "timestamp"),
            TimeRange { min: 10, max: 20 }
        );
    }

    #[test]
    fn ignores_other_columns_and_rounds_outwards() {
        let ns = lit(ScalarValue::TimestampNanosecond(Some(1_500_000), None));
        let filters = vec![col("value").gt(ts(1)), col("timestamp").lt(ns)];
        assert_eq!(
            TimeRange::from_filters(&filters, "timestamp"),
            TimeRange {
                min: i64::MIN,
                max: 2
            }
        );
    }
}
