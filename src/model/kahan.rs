//! Kahan-Neumaier compensated summation, as Prometheus sums floats and histograms
//! (its `kahansum` package): `sum`, `avg`, `sum_over_time`, `avg_over_time` and the
//! histogram functions keep a compensation term beside the running sum.

/// One summation step: adds `v` to `sum` with compensation `c`, returning both updated.
/// An infinite sum drops the compensation (it would be NaN).
#[inline]
pub fn kahan_add(v: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + v;
    if t.is_infinite() {
        return (t, 0.0);
    }
    let c = if sum.abs() >= v.abs() {
        c + ((sum - t) + v)
    } else {
        c + ((v - t) + sum)
    };
    (t, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_terms_do_not_absorb_small_ones() {
        let (mut sum, mut c) = (0.0, 0.0);
        for v in [3.1, 1e100, -1e100, 1.3] {
            (sum, c) = kahan_add(v, sum, c);
        }
        assert_eq!(sum + c, 4.4);
        assert_eq!(kahan_add(f64::MAX, f64::MAX, 1.0), (f64::INFINITY, 0.0));
    }
}
