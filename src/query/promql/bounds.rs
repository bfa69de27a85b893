//! `@` timestamps the parser lets through but no evaluation can use. promql-parser accepts
//! any finite number of seconds; Prometheus refuses those whose value does not fit its int64
//! (and computes garbage between there and where milliseconds overflow). Quiver refuses with
//! Prometheus's message anything beyond about 31 million years, where millisecond arithmetic
//! on steps, ranges and offsets still has room: found by fuzzing, a subquery `@` 5e31
//! exhausted memory.

use std::time::UNIX_EPOCH;

use promql_parser::parser::{AtModifier, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};

/// The farthest `@` time from the epoch, in seconds.
const MAX_AT_SECONDS: f64 = 1e15;

/// Refuses `expr` if one of its `@` modifiers is out of bounds.
pub fn check(expr: &Expr) -> Result<(), String> {
    walk_expr(&mut AtBounds, expr).map(|_| ())
}

struct AtBounds;

impl ExprVisitor for AtBounds {
    type Error = String;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        let at = match expr {
            Expr::VectorSelector(vs) => &vs.at,
            Expr::MatrixSelector(ms) => &ms.vs.at,
            Expr::Subquery(sq) => &sq.at,
            _ => return Ok(true),
        };
        if let Some(AtModifier::At(time)) = at {
            let seconds = match time.duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_secs_f64(),
                Err(e) => -e.duration().as_secs_f64(),
            };
            if seconds.abs() > MAX_AT_SECONDS {
                return Err(format!("timestamp out of bounds for @ modifier: {seconds}"));
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_at_times_are_refused_near_ones_kept() {
        let parse = |q: &str| promql_parser::parser::parse(q).unwrap();
        assert!(check(&parse("up @ 1700000000")).is_ok());
        assert!(check(&parse("rate(up[5m] @ -1000)")).is_ok());
        let err = check(&parse(
            "info(last_over_time(metric[10m:1m] @ 49999999999999999999999999999920))",
        ))
        .unwrap_err();
        assert!(err.contains("out of bounds for @ modifier"), "{err}");
        assert!(check(&parse("sum(up @ 1e16)")).is_err());
    }
}
