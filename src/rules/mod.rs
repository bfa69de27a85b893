//! Recording and alerting rules: Prometheus rule files evaluated on schedule over the same
//! query engines the API uses. Recording rules write their results back as series (and so
//! appear as SQL tables named after the rule); alerting rules keep Prometheus's state
//! machine and hand alerts to the notifier.

pub mod alerting;
pub mod file;
pub mod group;
pub mod manager;
pub mod query;
pub mod template;
pub mod unittest;

pub use alerting::{Alert, AlertState};
pub use file::{GroupSpec, RuleKind, RuleQuery, RuleSpec, load_file, load_rule_files};
pub use group::{EvalEnv, Group, Health, RestoreSettings};
pub use manager::{ManagerOptions, RuleManager};
pub use query::{EngineQuerier, RuleQuerier, RuleSample};
