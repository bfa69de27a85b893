//! The `quiver` binary: runs the server, as `prometheus` does, or a tool subcommand.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use quiver::config::Config;
use quiver::model::parse_duration;
use quiver::server::{self, ServerOptions};

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Address the HTTP API listens on.
    #[arg(long = "web.listen-address", default_value = "127.0.0.1:9090")]
    listen_address: SocketAddr,
    /// Allow shutdown and reload over HTTP (`/-/quit`, `/-/reload`).
    #[arg(long = "web.enable-lifecycle")]
    enable_lifecycle: bool,
    /// Allow the admin API (deleting series).
    #[arg(long = "web.enable-admin-api")]
    enable_admin_api: bool,
    /// Regex for CORS origin (fully anchored), e.g. 'https?://(domain1|domain2)\.com'.
    #[arg(long = "web.cors.origin", default_value = ".*")]
    cors_origin: String,
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
    /// Validate a configuration file.
    Config { files: Vec<PathBuf> },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cli.log_level));
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
        Some(Command::Explain { expr, url }) => explain(&url, &expr),
        None => run_server(cli),
    }
}

fn run_server(cli: Cli) -> ExitCode {
    let options = ServerOptions {
        config_file: cli.config_file,
        data_dir: cli.data_dir,
        retention: cli.retention,
        listen_address: cli.listen_address,
        enable_lifecycle: cli.enable_lifecycle,
        cors_origin: cli.cors_origin,
        enable_admin_api: cli.enable_admin_api,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
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
            Some(plan) => Ok(plan.to_string()),
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

fn check_config(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for file in files {
        match Config::load(file).and_then(|c| c.check_referenced_files()) {
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
