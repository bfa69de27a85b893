//! The `quiver` binary: runs the server, as `prometheus` does, or a tool subcommand.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use quiver::config::Config;
use quiver::model::parse_duration;
use quiver::rules;
use quiver::server::{self, ServerOptions};

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start: a background thread gives freed pages back to the
/// system within about a second (the default keeps them ten seconds, and only purges while
/// allocating), so memory freed after a burst of writes or a large query leaves the RSS.
#[cfg(feature = "jemalloc")]
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[derive(Debug, Parser)]
#[command(
    name = "quiver",
    version,
    about = "A Prometheus-compatible metrics server on Arrow, Parquet and DataFusion"
)]
struct Cli {
    /// Configuration file (prometheus.yml format). Without it, an embedded default is used:
    /// local storage, scraping Quiver's own /metrics.
    #[arg(long = "config.file", global = true)]
    config_file: Option<PathBuf>,
    /// Directory for the WAL and (with local storage) the blocks.
    #[arg(long = "storage.tsdb.path", default_value = "data/")]
    data_dir: PathBuf,
    /// How long to keep blocks, as a Prometheus duration; 0 keeps them forever.
    #[arg(long = "storage.tsdb.retention.time", default_value = "15d", value_parser = parse_duration)]
    retention: std::time::Duration,
    /// Most bytes of blocks to keep (`512MB`, `10GB`); past it the oldest go first. 0 keeps
    /// any size.
    #[arg(long = "storage.tsdb.retention.size", default_value = "0", value_parser = parse_byte_size)]
    retention_size: u64,
    /// Thanos's name for the raw data's retention; when given, it overrides
    /// --storage.tsdb.retention.time.
    #[arg(long = "retention.resolution-raw", value_parser = parse_duration)]
    retention_raw: Option<std::time::Duration>,
    /// How long 5 m downsampled data is kept; 0 keeps it forever.
    #[arg(long = "retention.resolution-5m", default_value = "0", value_parser = parse_duration)]
    retention_5m: std::time::Duration,
    /// How long 1 h downsampled data is kept; 0 keeps it forever.
    #[arg(long = "retention.resolution-1h", default_value = "0", value_parser = parse_duration)]
    retention_1h: std::time::Duration,
    /// Serve queries over the writers' buckets in `storage.query_tier` (or this node's own
    /// storage), with no WAL, scraping, rules or writes.
    #[arg(long = "storage.read-only")]
    read_only: bool,
    /// On a read-only node, a label that tells HA replicas apart (repeatable); adds to
    /// `storage.query_tier.replica_labels`.
    #[arg(long = "query.replica-label")]
    replica_labels: Vec<String>,
    /// Address the HTTP API listens on.
    #[arg(long = "web.listen-address", default_value = "127.0.0.1:9090")]
    listen_address: SocketAddr,
    /// Allow shutdown and reload over HTTP (`/-/quit`, `/-/reload`).
    #[arg(long = "web.enable-lifecycle")]
    enable_lifecycle: bool,
    /// Allow the admin API (deleting series).
    #[arg(long = "web.enable-admin-api")]
    enable_admin_api: bool,
    /// Accept OpenTelemetry metrics on /api/v1/otlp/v1/metrics (OTLP/HTTP, protobuf or JSON).
    #[arg(long = "web.enable-otlp-receiver")]
    enable_otlp_receiver: bool,
    /// Most HTTP connections open at once (0: no limit); more clients wait to be accepted.
    #[arg(long = "web.max-connections", default_value_t = 512)]
    max_connections: usize,
    /// Longest wait for a request's headers, between pieces of its body, and for an idle
    /// connection's next request.
    #[arg(long = "web.read-timeout", default_value = "5m", value_parser = parse_duration)]
    read_timeout: std::time::Duration,
    /// Prometheus's web configuration file (exporter-toolkit format): TLS, client
    /// certificates, basic authentication and response headers for the HTTP port.
    #[arg(long = "web.config.file")]
    web_config_file: Option<PathBuf>,
    /// Regex for CORS origin (fully anchored), e.g. 'https?://(domain1|domain2)\.com'.
    #[arg(long = "web.cors.origin", default_value = ".*")]
    cors_origin: String,
    /// The URL users reach Quiver at (alerts link back to it); default from the listen address.
    #[arg(long = "web.external-url")]
    external_url: Option<String>,
    /// Prefix of every HTTP route (API and UI); default: the path of --web.external-url,
    /// so a proxy that keeps the path needs no second flag.
    #[arg(long = "web.route-prefix")]
    route_prefix: Option<String>,
    /// Longest outage after which alerts' `for` state is still restored at start-up.
    #[arg(long = "rules.alert.for-outage-tolerance", default_value = "1h", value_parser = parse_duration)]
    outage_tolerance: std::time::Duration,
    /// Least time an alert still needs to be pending after a restore before it fires.
    #[arg(long = "rules.alert.for-grace-period", default_value = "10m", value_parser = parse_duration)]
    grace_period: std::time::Duration,
    /// Least time between re-sends of a firing alert to Alertmanager.
    #[arg(long = "rules.alert.resend-delay", default_value = "1m", value_parser = parse_duration)]
    resend_delay: std::time::Duration,
    /// Alerts waiting for Alertmanager beyond this many are dropped, oldest first.
    #[arg(long = "alertmanager.notification-queue-capacity", default_value_t = quiver::notifier::DEFAULT_QUEUE_CAPACITY)]
    queue_capacity: usize,
    /// Address of the PostgreSQL wire protocol; an empty value turns it off.
    #[arg(long = "postgres.listen-address", default_value = "127.0.0.1:5433")]
    postgres_listen_address: String,
    /// Log level: error, warn, info, debug or trace (RUST_LOG overrides).
    #[arg(long = "log.level", default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate files.
    Check {
        #[command(subcommand)]
        what: CheckCommand,
    },
    /// Run unit tests.
    Test {
        #[command(subcommand)]
        what: TestCommand,
    },
    /// Print the DataFusion plan a PromQL expression runs as, from a running server.
    Explain {
        /// The PromQL expression.
        expr: String,
        /// The server to ask.
        #[arg(long, default_value = "http://127.0.0.1:9090")]
        url: String,
    },
}

#[derive(Debug, Subcommand)]
enum CheckCommand {
    /// Validate a configuration file and the rule files it names.
    Config { files: Vec<PathBuf> },
    /// Validate a web configuration file (TLS, basic auth), as `promtool check web-config` does.
    WebConfig {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate rule files, as `promtool check rules` does.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TestCommand {
    /// Run rule unit tests in promtool's test-file format.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The tools print their own results; only the server logs at info by default.
    let level = if cli.command.is_some() && cli.log_level == "info" {
        "warn"
    } else {
        cli.log_level.as_str()
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colours only for a terminal; log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Some(Command::Check {
            what: CheckCommand::Config { files },
        }) => check_config(&files),
        Some(Command::Check {
            what: CheckCommand::Rules { files },
        }) => check_rules(&files),
        Some(Command::Check {
            what: CheckCommand::WebConfig { files },
        }) => check_web_config(&files),
        Some(Command::Test {
            what: TestCommand::Rules { files },
        }) => test_rules(&files),
        Some(Command::Explain { expr, url }) => explain(&url, &expr),
        None => run_server(cli),
    }
}

fn run_server(cli: Cli) -> ExitCode {
    let external_url = cli.external_url.unwrap_or_else(|| {
        let tls = cli.web_config_file.as_deref().is_some_and(|file| {
            quiver::web::config::WebConfig::load(file)
                .is_ok_and(|c| c.tls_server_config.is_enabled())
        });
        let scheme = if tls { "https" } else { "http" };
        format!("{scheme}://{}", cli.listen_address)
    });
    let options = ServerOptions {
        config_file: cli.config_file,
        data_dir: cli.data_dir,
        retention: cli.retention_raw.unwrap_or(cli.retention),
        retention_size: cli.retention_size,
        retention_downsampled: [cli.retention_5m, cli.retention_1h],
        read_only: cli.read_only,
        replica_labels: cli.replica_labels,
        listen_address: cli.listen_address,
        enable_lifecycle: cli.enable_lifecycle,
        cors_origin: cli.cors_origin,
        enable_admin_api: cli.enable_admin_api,
        enable_otlp_receiver: cli.enable_otlp_receiver,
        max_connections: cli.max_connections,
        route_prefix: match quiver::ui::route_prefix(cli.route_prefix.as_deref(), &external_url) {
            Ok(prefix) => prefix,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        external_url,
        web_config_file: cli.web_config_file,
        read_timeout: cli.read_timeout,
        outage_tolerance: cli.outage_tolerance,
        grace_period: cli.grace_period,
        resend_delay: cli.resend_delay,
        queue_capacity: cli.queue_capacity,
        postgres_listen_address: match cli.postgres_listen_address.trim() {
            "" => None,
            address => match address.parse() {
                Ok(a) => Some(a),
                Err(e) => {
                    eprintln!("error: --postgres.listen-address {address:?}: {e}");
                    return ExitCode::FAILURE;
                }
            },
        },
    };
    let Some(runtime) = multi_thread_runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(server::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Asks a running server's `/api/v1/explain` and prints the plan.
fn explain(url: &str, expr: &str) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let endpoint = format!("{}/api/v1/explain", url.trim_end_matches('/'));
    let result = runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(&endpoint)
            .form(&[("query", expr)])
            .send()
            .await
            .map_err(|e| format!("asking {endpoint}: {e}"))?;
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| format!("reading the answer of {endpoint}: {e}"))?;
        match body["data"]["plan"].as_str() {
            Some(plan) => {
                let sql = match body["data"]["sql"].as_str() {
                    Some(sql) => sql.to_string(),
                    None => format!(
                        "-- no SQL form: {}",
                        body["data"]["sqlUnavailable"].as_str().unwrap_or("unknown")
                    ),
                };
                Ok(format!("{plan}\n\nEquivalent SQL:\n{sql}"))
            }
            None => Err(body["error"]
                .as_str()
                .unwrap_or("unexpected answer")
                .to_string()),
        }
    });
    match result {
        Ok(plan) => {
            println!("{plan}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn multi_thread_runtime() -> Option<tokio::runtime::Runtime> {
    // Deep enough for the expression depth `query::complexity` allows, in a debug build
    // too (DataFusion recurses over expression trees; a thread's stack does not grow).
    // Only the pages a thread touches are resident.
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}

fn check_config(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for file in files {
        match Config::load(file).and_then(|c| {
            let mut report = c.check_referenced_files()?;
            report.extend(
                c.ignored_sections()
                    .into_iter()
                    .map(|w| format!("WARNING: {w}")),
            );
            for rule_file in rules::file::expand_rule_files(&c.rule_files, &c.base_dir)? {
                let n = count_rules(&rules::load_file(&rule_file)?);
                report.push(format!("{}: {n} rules found", rule_file.display()));
            }
            Ok(report)
        }) {
            Ok(report) => {
                println!("Checking {}", file.display());
                for line in report {
                    println!("  {line}");
                }
                println!("  SUCCESS: {} is valid", file.display());
            }
            Err(e) => {
                println!("Checking {}\n  FAILED: {e:#}", file.display());
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn count_rules(groups: &[rules::GroupSpec]) -> usize {
    groups.iter().map(|g| g.rules.len()).sum()
}

/// `promtool check web-config`: each file's verdict, exit 1 if any failed.
fn check_web_config(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for file in files {
        match quiver::web::check(file) {
            Ok(report) => {
                println!("{} SUCCESS", file.display());
                for line in report {
                    println!("  {line}");
                }
            }
            Err(e) => {
                println!("{} FAILED: {e:#}", file.display());
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `promtool check rules`: each file's verdict, exit 1 if any failed.
fn check_rules(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for file in files {
        println!("Checking {}", file.display());
        match rules::load_file(file) {
            Ok(groups) => println!("  SUCCESS: {} rules found\n", count_rules(&groups)),
            Err(e) => {
                ok = false;
                println!("  FAILED:");
                for problem in &e.problems {
                    println!("{problem}");
                }
                println!();
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `promtool test rules`: runs each test file, exit 1 if any test failed.
fn test_rules(files: &[PathBuf]) -> ExitCode {
    let Some(runtime) = multi_thread_runtime() else {
        return ExitCode::FAILURE;
    };
    if runtime.block_on(rules::unittest::run_files(files)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn parse_byte_size(text: &str) -> Result<u64, String> {
    quiver::config::ByteSize::parse(text).map(|b| b.0)
}
