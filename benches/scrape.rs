//! Scrape-target simulator for the scraping benchmark (`scripts/bench-scrape.sh`).
//!
//! `scrape serve --base-port P --targets N --series M` binds N HTTP listeners on
//! 127.0.0.1:P ..= 127.0.0.1:P+N-1. Each serves `/metrics` in the Prometheus text format 0.0.4
//! with M series, spread over `--families` metric families (counters and gauges, HELP and
//! TYPE lines included). Every request changes the values: counters grow and gauges move, so
//! the scraper stores real changing data rather than one repeated value.
//!
//! The simulator must never be what limits a scraper, so the text of every line up to its
//! value is rendered once at start-up and shared by all targets; a request only appends
//! numbers. On SIGTERM or SIGINT it prints how many requests and bytes it served and exits.
//!
//! Run it with `cargo bench --bench scrape -- serve --base-port 20000 --targets 10`, or run
//! the built binary directly.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail, ensure};
use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const CODES: [&str; 4] = ["200", "201", "404", "500"];
const ZONES: [&str; 3] = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];

#[derive(Debug, Parser)]
#[command(about = "Simulated Prometheus scrape targets")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// `cargo bench` passes `--bench` to every bench binary. It is accepted and ignored.
    #[arg(long = "bench", hide = true, global = true)]
    _bench: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve N targets until SIGTERM or SIGINT.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// First port; the targets use this port and the next `--targets - 1`.
    #[arg(long, default_value_t = 20_000)]
    base_port: u16,
    /// Number of targets (listeners).
    #[arg(long, default_value_t = 500)]
    targets: u16,
    /// Series per target.
    #[arg(long, default_value_t = 1000)]
    series: usize,
    /// Metric families the series are spread over, alternately counters and gauges.
    #[arg(long, default_value_t = 10)]
    families: usize,
    /// Tokio worker threads. One is plenty for hundreds of targets at a 15 s interval, and
    /// keeps the simulator from taking CPU the measured server could use.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// One series of the exposition: everything up to its value, pre-rendered.
struct Line {
    /// HELP/TYPE lines when the series opens a family, then `name{labels} `.
    text: String,
    counter: bool,
    /// Makes series of one family move at different rates.
    step: u64,
}

/// The exposition every target serves, minus the values.
struct Template {
    lines: Vec<Line>,
    /// Size of one rendered response, to allocate it in one go.
    size_hint: usize,
}

impl Template {
    fn new(series: usize, families: usize) -> Template {
        let families = families.clamp(1, series.max(1));
        let mut lines = Vec::with_capacity(series);
        for family in 0..families {
            // Spread the remainder over the first families so the total is exactly `series`.
            let count = series / families + usize::from(family < series % families);
            let counter = family % 2 == 0;
            for combo in 0..count {
                let mut text = String::new();
                if combo == 0 {
                    family_header(&mut text, family, counter);
                }
                let _ = write!(
                    text,
                    "{}{{{}}} ",
                    family_name(family, counter),
                    label_set(combo)
                );
                let step = (combo % 13 + 1) as u64;
                lines.push(Line {
                    text,
                    counter,
                    step,
                });
            }
        }
        // 24 bytes covers any value this program writes, plus the newline.
        let size_hint = lines.iter().map(|l| l.text.len() + 24).sum();
        Template { lines, size_hint }
    }

    /// The body for the `request`-th request to target `target`. Counter values depend on
    /// both, so targets differ and values never repeat between scrapes.
    fn render(&self, target: u64, request: u64) -> String {
        let mut body = String::with_capacity(self.size_hint);
        for (index, line) in self.lines.iter().enumerate() {
            body.push_str(&line.text);
            let seed = target * 7_919 + index as u64;
            if line.counter {
                let _ = writeln!(body, "{}", seed * 31 + request * line.step);
            } else {
                // A gauge that wanders with two decimals, as latencies or ratios do.
                let hundredths = (seed * 104_729 + request * 7_907) % 100_000;
                let _ = writeln!(body, "{}.{:02}", hundredths / 100, hundredths % 100);
            }
        }
        body
    }
}

fn family_name(family: usize, counter: bool) -> String {
    if counter {
        format!("sim_http_requests_{family}_total")
    } else {
        format!("sim_http_inflight_bytes_{family}")
    }
}

fn family_header(out: &mut String, family: usize, counter: bool) {
    let name = family_name(family, counter);
    let (kind, help) = if counter {
        ("counter", "Requests handled, by method, code and handler.")
    } else {
        (
            "gauge",
            "Bytes of requests in flight, by method, code and handler.",
        )
    };
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Label values of realistic length; `handler` makes every combination unique.
fn label_set(combo: usize) -> String {
    format!(
        r#"method="{}",code="{}",zone="{}",handler="/api/v1/tenants/{}/resources""#,
        METHODS[combo % METHODS.len()],
        CODES[combo / METHODS.len() % CODES.len()],
        ZONES[combo % ZONES.len()],
        combo
    )
}

/// Counts shared by all targets, for the summary printed at exit.
#[derive(Default)]
struct Totals {
    requests: AtomicU64,
    bytes: AtomicU64,
}

/// What one target's handler needs.
struct Target {
    index: u64,
    requests: AtomicU64,
    template: Arc<Template>,
    totals: Arc<Totals>,
}

async fn metrics(State(target): State<Arc<Target>>) -> impl IntoResponse {
    let request = target.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let body = target.template.render(target.index, request);
    target.totals.requests.fetch_add(1, Ordering::Relaxed);
    target
        .totals
        .bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    ([(CONTENT_TYPE, TEXT_FORMAT)], body)
}

/// Binds every listener before serving any, so a taken port fails the start rather than
/// leaving a partial set of targets.
async fn bind_all(args: &ServeArgs) -> anyhow::Result<Vec<TcpListener>> {
    let last = u32::from(args.base_port) + u32::from(args.targets) - 1;
    ensure!(
        last <= u32::from(u16::MAX),
        "ports {}..={last} do not fit below 65536",
        args.base_port
    );
    let mut listeners = Vec::with_capacity(usize::from(args.targets));
    for offset in 0..args.targets {
        let port = args.base_port + offset;
        // Loopback only: the benchmark must never expose anything beyond this host.
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("binding {address}"))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    ensure!(args.targets > 0, "--targets must be positive");
    ensure!(args.series > 0, "--series must be positive");
    let template = Arc::new(Template::new(args.series, args.families));
    let totals = Arc::new(Totals::default());
    let listeners = bind_all(&args).await?;
    let mut targets = Vec::with_capacity(listeners.len());
    let mut servers = JoinSet::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let target = Arc::new(Target {
            index: index as u64,
            requests: AtomicU64::new(0),
            template: template.clone(),
            totals: totals.clone(),
        });
        targets.push(target.clone());
        let app = Router::new()
            .route("/metrics", get(metrics))
            .with_state(target);
        servers.spawn(async move { axum::serve(listener, app).await });
    }
    eprintln!(
        "serving {} targets on 127.0.0.1:{}-{}, {} series each, {} bytes per response",
        args.targets,
        args.base_port,
        u32::from(args.base_port) + u32::from(args.targets) - 1,
        args.series,
        template.render(0, 1).len()
    );
    wait_for_stop(&mut servers).await?;
    print_summary(&totals, &targets);
    Ok(())
}

/// Returns on SIGTERM or SIGINT, or with an error if a listener fails first.
async fn wait_for_stop(servers: &mut JoinSet<std::io::Result<()>>) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => Ok(()),
        _ = int.recv() => Ok(()),
        Some(result) = servers.join_next() => match result {
            Ok(Ok(())) => bail!("a listener stopped unexpectedly"),
            Ok(Err(e)) => Err(e).context("serving a target"),
            Err(e) => Err(e).context("a target task failed"),
        },
    }
}

/// One line on stdout; the per-target spread shows whether the scraper reached every target
/// equally often.
fn print_summary(totals: &Totals, targets: &[Arc<Target>]) {
    let per_target = targets.iter().map(|t| t.requests.load(Ordering::Relaxed));
    let min = per_target.clone().min().unwrap_or(0);
    let max = per_target.max().unwrap_or(0);
    println!(
        "served {} requests, {} bytes, to {} targets (per target: min {min}, max {max})",
        totals.requests.load(Ordering::Relaxed),
        totals.bytes.load(Ordering::Relaxed),
        targets.len()
    );
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Command::Serve(args) = cli.command;
    ensure!(args.threads > 0, "--threads must be positive");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    // Leaving `block_on` drops the runtime, which closes every listener and connection.
    runtime.block_on(serve(args))
}
