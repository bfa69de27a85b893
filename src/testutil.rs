//! Helpers shared by unit tests.

/// xorshift64: deterministic, dependency-free pseudo-random numbers from `seed` (non-zero).
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}
