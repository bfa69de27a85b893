//! Go's `math.Max` and `math.Min`, which PromQL's `clamp`, `clamp_min`, `clamp_max`,
//! `min_of` and `max_of` use. They differ from Rust's `f64::max`/`f64::min`, which return the
//! other operand when one is NaN: Go's return NaN, and order -0 below +0.

/// Go's `math.Max`: +Inf if either is +Inf, else NaN if either is NaN; `max(+0, -0)` is +0.
pub fn max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        return f64::INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { y } else { x };
    }
    if x > y { x } else { y }
}

/// Go's `math.Min`: -Inf if either is -Inf, else NaN if either is NaN; `min(+0, -0)` is -0.
pub fn min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { x } else { y };
    }
    if x < y { x } else { y }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn special_cases_as_go_documents_them() {
        let (inf, nan) = (f64::INFINITY, f64::NAN);
        for (x, y, want) in [
            (1.0, 2.0, 2.0),
            (nan, 1.0, nan),
            (1.0, nan, nan),
            (nan, inf, inf),
            (-inf, nan, nan),
            (0.0, -0.0, 0.0),
            (-0.0, 0.0, 0.0),
            (-0.0, -0.0, -0.0),
        ] {
            assert!(same(max(x, y), want), "max({x}, {y}) = {}", max(x, y));
        }
        for (x, y, want) in [
            (1.0, 2.0, 1.0),
            (nan, 1.0, nan),
            (1.0, nan, nan),
            (nan, -inf, -inf),
            (inf, nan, nan),
            (0.0, -0.0, -0.0),
            (-0.0, 0.0, -0.0),
            (0.0, 0.0, 0.0),
        ] {
            assert!(same(min(x, y), want), "min({x}, {y}) = {}", min(x, y));
        }
    }
}
