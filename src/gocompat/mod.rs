//! Go's behaviour that Prometheus's depends on, implemented once: Quiver answers as
//! Prometheus does where Go's libraries and Rust's disagree.

pub mod case;
pub mod duration;
pub mod math;
pub mod regex;
pub mod strconv;
pub mod time;
