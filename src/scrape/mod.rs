//! Scraping: a pool per job follows service discovery, one loop per target fetches and
//! parses the exposition formats and appends through the same storage path as remote write.

pub mod manager;
mod nhcb;
pub mod parser;
pub mod protobuf;
mod scrapeloop;
pub mod target;

pub use manager::{ActiveTarget, ScrapeManager};
pub use scrapeloop::TargetStatus;
pub use target::{DroppedTarget, Target};
