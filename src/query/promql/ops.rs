//! PromQL's binary operators and aggregation operators as enums, read once from the
//! parser's tokens, so the planner matches on variants (a typo is a compile error) instead
//! of on the operators' spellings.

use promql_parser::parser::token::{self, TokenType};

use super::PromqlError;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
    /// `</`: a native histogram's observations above the right operand removed.
    TrimUpper,
    /// `>/`: a native histogram's observations below the right operand removed.
    TrimLower,
}

impl BinaryOp {
    pub fn from_token(op: TokenType) -> Result<BinaryOp, PromqlError> {
        Ok(match op.id() {
            token::T_ADD => BinaryOp::Add,
            token::T_SUB => BinaryOp::Sub,
            token::T_MUL => BinaryOp::Mul,
            token::T_DIV => BinaryOp::Div,
            token::T_MOD => BinaryOp::Mod,
            token::T_POW => BinaryOp::Pow,
            token::T_ATAN2 => BinaryOp::Atan2,
            token::T_EQLC => BinaryOp::Eq,
            token::T_NEQ => BinaryOp::Ne,
            token::T_GTR => BinaryOp::Gt,
            token::T_LSS => BinaryOp::Lt,
            token::T_GTE => BinaryOp::Ge,
            token::T_LTE => BinaryOp::Le,
            token::T_LAND => BinaryOp::And,
            token::T_LOR => BinaryOp::Or,
            token::T_LUNLESS => BinaryOp::Unless,
            _ => return Err(PromqlError::Unsupported(format!("binary operator {op}"))),
        })
    }

    /// As PromQL writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
            BinaryOp::Atan2 => "atan2",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Gt => ">",
            BinaryOp::Lt => "<",
            BinaryOp::Ge => ">=",
            BinaryOp::Le => "<=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Unless => "unless",
            BinaryOp::TrimUpper => "</",
            BinaryOp::TrimLower => ">/",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Gt | BinaryOp::Lt | BinaryOp::Ge | BinaryOp::Le
        )
    }

    /// `and`, `or`, `unless`: they match series and keep samples, computing nothing.
    pub fn is_set(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Unless)
    }

    /// `</` and `>/`, which only native histograms take.
    pub fn is_trim(self) -> bool {
        matches!(self, BinaryOp::TrimUpper | BinaryOp::TrimLower)
    }

    /// Whether the result loses the metric name: arithmetic does, a comparison only with
    /// `bool`; set operators and trims keep it.
    pub fn drops_name(self, return_bool: bool) -> bool {
        match self {
            _ if self.is_set() || self.is_trim() => false,
            _ if self.is_comparison() => return_bool,
            _ => true,
        }
    }

    /// The operator on two numbers, as Prometheus computes it (a comparison gives 1 or 0,
    /// as with `bool`); `None` for the set operators.
    pub fn on_floats(self, a: f64, b: f64) -> Option<f64> {
        Some(match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Mod => a % b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Atan2 => a.atan2(b),
            BinaryOp::Eq => f64::from(a == b),
            BinaryOp::Ne => f64::from(a != b),
            BinaryOp::Gt => f64::from(a > b),
            BinaryOp::Lt => f64::from(a < b),
            BinaryOp::Ge => f64::from(a >= b),
            BinaryOp::Le => f64::from(a <= b),
            BinaryOp::And
            | BinaryOp::Or
            | BinaryOp::Unless
            | BinaryOp::TrimUpper
            | BinaryOp::TrimLower => return None,
        })
    }
}

impl std::fmt::Display for BinaryOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.symbol())
    }
}

/// An aggregation operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Quantile,
    Topk,
    Bottomk,
    Limitk,
    LimitRatio,
    CountValues,
}

impl AggregateOp {
    pub fn from_token(op: TokenType) -> Result<AggregateOp, PromqlError> {
        Ok(match op.id() {
            token::T_SUM => AggregateOp::Sum,
            token::T_AVG => AggregateOp::Avg,
            token::T_MIN => AggregateOp::Min,
            token::T_MAX => AggregateOp::Max,
            token::T_COUNT => AggregateOp::Count,
            token::T_GROUP => AggregateOp::Group,
            token::T_STDDEV => AggregateOp::Stddev,
            token::T_STDVAR => AggregateOp::Stdvar,
            token::T_QUANTILE => AggregateOp::Quantile,
            token::T_TOPK => AggregateOp::Topk,
            token::T_BOTTOMK => AggregateOp::Bottomk,
            token::T_LIMITK => AggregateOp::Limitk,
            token::T_LIMIT_RATIO => AggregateOp::LimitRatio,
            token::T_COUNT_VALUES => AggregateOp::CountValues,
            _ => return Err(PromqlError::Unsupported(format!("aggregation {op}"))),
        })
    }

    /// As PromQL writes it.
    pub fn name(self) -> &'static str {
        match self {
            AggregateOp::Sum => "sum",
            AggregateOp::Avg => "avg",
            AggregateOp::Min => "min",
            AggregateOp::Max => "max",
            AggregateOp::Count => "count",
            AggregateOp::Group => "group",
            AggregateOp::Stddev => "stddev",
            AggregateOp::Stdvar => "stdvar",
            AggregateOp::Quantile => "quantile",
            AggregateOp::Topk => "topk",
            AggregateOp::Bottomk => "bottomk",
            AggregateOp::Limitk => "limitk",
            AggregateOp::LimitRatio => "limit_ratio",
            AggregateOp::CountValues => "count_values",
        }
    }

    /// `topk`, `bottomk`, `limitk`: they keep some series of each group as they are.
    pub fn selects_series(self) -> bool {
        matches!(
            self,
            AggregateOp::Topk | AggregateOp::Bottomk | AggregateOp::Limitk
        )
    }
}

impl std::fmt::Display for AggregateOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promql_parser::parser::{Expr, parse};

    #[test]
    fn every_operator_the_parser_knows_has_a_variant_spelled_as_promql_writes_it() {
        for op in [
            "+", "-", "*", "/", "%", "^", "atan2", "==", "!=", ">", "<", ">=", "<=", "and", "or",
            "unless",
        ] {
            let bool_kw = if matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=") {
                " bool"
            } else {
                ""
            };
            let Expr::Binary(b) = parse(&format!("a {op}{bool_kw} b")).unwrap() else {
                panic!("{op}");
            };
            assert_eq!(BinaryOp::from_token(b.op).unwrap().symbol(), op);
        }
        for op in [
            "sum",
            "avg",
            "min",
            "max",
            "count",
            "group",
            "stddev",
            "stdvar",
            "quantile",
            "topk",
            "bottomk",
            "limitk",
            "limit_ratio",
            "count_values",
        ] {
            let param = match op {
                "quantile" | "topk" | "bottomk" | "limitk" | "limit_ratio" => "1, ",
                "count_values" => "\"v\", ",
                _ => "",
            };
            let Expr::Aggregate(a) = parse(&format!("{op}({param}x)")).unwrap() else {
                panic!("{op}");
            };
            assert_eq!(AggregateOp::from_token(a.op).unwrap().name(), op);
        }
    }

    #[test]
    fn comparisons_of_numbers_follow_ieee() {
        assert_eq!(BinaryOp::Gt.on_floats(f64::NAN, 1.0), Some(0.0));
        assert_eq!(BinaryOp::Ne.on_floats(f64::NAN, f64::NAN), Some(1.0));
        assert_eq!(BinaryOp::And.on_floats(1.0, 1.0), None);
        assert!(BinaryOp::Mod.on_floats(1.0, 0.0).unwrap().is_nan());
    }
}
