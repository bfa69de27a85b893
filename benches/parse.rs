//! Throughput of the scrape parser (`quiver::scrape::parser::parse`) on generated, realistic
//! exposition text, in both the Prometheus text format 0.0.4 and OpenMetrics 1.0.
//!
//! The input mimics what a Kubernetes node's exporters return: counters with a handful of
//! labels, gauges with long file-system label values, histograms with a dozen buckets,
//! summaries with quantiles, HELP/TYPE lines for every family, and a few label values that
//! need escaping. Both formats carry the same samples, so their figures compare directly.
//!
//! Run it with `cargo bench --bench parse`, or with options:
//! `cargo bench --bench parse -- --series 10000 --iterations 30`.
//! It prints a markdown table on stdout. `--dump text` (or `openmetrics`) prints the generated
//! input instead.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use quiver::scrape::parser::{Format, parse};

#[derive(Debug, Parser)]
#[command(about = "Throughput of the Prometheus/OpenMetrics text parser")]
struct Args {
    /// Approximate number of samples in the generated exposition.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Timed parses per format. The median is reported, which shrugs off the odd slow run
    /// on a shared machine.
    #[arg(long, default_value_t = 30)]
    iterations: usize,
    /// Untimed parses per format first, so caches and the allocator are warm.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Print the generated exposition in this format instead of timing, e.g. to check it with
    /// `promtool check metrics`.
    #[arg(long, value_enum)]
    dump: Option<DumpFormat>,
    /// `cargo bench` passes `--bench` to every bench binary. It is accepted and ignored.
    #[arg(long = "bench", hide = true)]
    _bench: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DumpFormat {
    Text,
    Openmetrics,
}

impl From<DumpFormat> for Format {
    fn from(format: DumpFormat) -> Format {
        match format {
            DumpFormat::Text => Format::PrometheusText,
            DumpFormat::Openmetrics => Format::OpenMetrics,
        }
    }
}

/// HTTP-style buckets, as client libraries use by default (plus `+Inf`).
const BUCKETS: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];
const QUANTILES: [&str; 5] = ["0.5", "0.75", "0.9", "0.95", "0.99"];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const CODES: [&str; 5] = ["200", "201", "304", "404", "500"];
const HANDLERS: [&str; 8] = [
    "/api/v1/query",
    "/api/v1/query_range",
    "/api/v1/series",
    "/api/v1/labels",
    "/api/v1/write",
    "/metrics",
    "/-/healthy",
    "/static/*filepath",
];
const MOUNTS: [(&str, &str, &str); 4] = [
    ("/dev/nvme0n1p1", "ext4", "/"),
    ("/dev/nvme0n1p2", "xfs", "/var/lib/containerd"),
    ("tmpfs", "tmpfs", "/run/user/1000"),
    (
        "overlay",
        "overlay",
        "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/4721/fs",
    ),
];

/// Deterministic pseudo-random numbers (SplitMix64), so every run parses the same text
/// without pulling in a random-number crate.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in [0, scale) with a realistic number of significant digits.
    fn float(&mut self, scale: f64) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * scale
    }
}

/// Writes the expositions. Everything but the format-specific syntax is shared, so the two
/// outputs hold exactly the same samples.
struct Generator {
    format: Format,
    out: String,
    rng: SplitMix,
    samples: usize,
}

impl Generator {
    fn new(format: Format) -> Self {
        Self {
            format,
            out: String::new(),
            rng: SplitMix(42),
            samples: 0,
        }
    }

    /// HELP and TYPE lines. OpenMetrics names a counter family without `_total`, and its
    /// samples carry the suffix; 0.0.4 names the family exactly like its samples.
    fn header(&mut self, family: &str, kind: &str, help: &str) {
        let name = match (self.format, kind) {
            (Format::OpenMetrics, "counter") => family.strip_suffix("_total").unwrap_or(family),
            _ => family,
        };
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: f64) {
        let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        self.samples += 1;
    }

    /// Counter with method/code/handler labels, like an HTTP server's request counter.
    fn http_requests(&mut self, instance: &str) {
        for method in METHODS {
            for code in CODES {
                for handler in HANDLERS {
                    let labels = format!(
                        r#"instance="{instance}",job="api-server",method="{method}",code="{code}",handler="{handler}""#
                    );
                    let value = self.rng.float(1e7).floor();
                    self.sample("http_requests_total", &labels, value);
                }
            }
        }
    }

    /// Histogram: every bucket, then `_sum` and `_count`, per handler.
    fn request_durations(&mut self, instance: &str) {
        let name = "http_request_duration_seconds";
        for handler in HANDLERS {
            let base = format!(r#"instance="{instance}",job="api-server",handler="{handler}""#);
            let mut cumulative = 0.0;
            for le in BUCKETS {
                cumulative += self.rng.float(5000.0).floor();
                self.sample(
                    &format!("{name}_bucket"),
                    &format!(r#"{base},le="{le}""#),
                    cumulative,
                );
            }
            let sum = self.rng.float(cumulative);
            self.sample(&format!("{name}_sum"), &base, sum);
            self.sample(&format!("{name}_count"), &base, cumulative);
        }
    }

    /// Summary with quantiles, then `_sum` and `_count`.
    fn rpc_durations(&mut self, instance: &str) {
        let name = "rpc_duration_seconds";
        for service in ["auth", "billing", "inventory"] {
            let base = format!(r#"instance="{instance}",job="api-server",service="{service}""#);
            for quantile in QUANTILES {
                let value = self.rng.float(0.5);
                self.sample(name, &format!(r#"{base},quantile="{quantile}""#), value);
            }
            let count = self.rng.float(1e6).floor();
            let sum = self.rng.float(count);
            self.sample(&format!("{name}_sum"), &base, sum);
            self.sample(&format!("{name}_count"), &base, count);
        }
    }

    /// Gauge with the long label values node_exporter has for file systems.
    fn filesystem_free(&mut self, instance: &str) {
        for (device, fstype, mountpoint) in MOUNTS {
            let labels = format!(
                r#"instance="{instance}",job="node",device="{device}",fstype="{fstype}",mountpoint="{mountpoint}""#
            );
            let value = self.rng.float(5e11).floor();
            self.sample("node_filesystem_avail_bytes", &labels, value);
        }
    }

    /// Info-style gauge whose label values need escaping: quotes, backslashes, newlines.
    fn build_info(&mut self, instance: &str) {
        let labels = format!(
            r#"instance="{instance}",job="node",version="1.8.2",goversion="go1.22.5",path="C:\\Program Files\\exporter\\bin",note="say \"hi\"\nthen leave""#
        );
        self.sample("exporter_build_info", &labels, 1.0);
    }
}

/// Writes one family's samples for one instance.
type FamilyWriter = fn(&mut Generator, &str);

/// Every family: name, type, HELP text, and its writer.
const FAMILIES: [(&str, &str, &str, FamilyWriter); 5] = [
    (
        "http_requests_total",
        "counter",
        "Total HTTP requests.",
        Generator::http_requests,
    ),
    (
        "http_request_duration_seconds",
        "histogram",
        "HTTP request latency.",
        Generator::request_durations,
    ),
    (
        "rpc_duration_seconds",
        "summary",
        "RPC latency.",
        Generator::rpc_durations,
    ),
    (
        "node_filesystem_avail_bytes",
        "gauge",
        "Filesystem space available to non-root users in bytes.",
        Generator::filesystem_free,
    ),
    (
        "exporter_build_info",
        "gauge",
        // Escaped backslash and newline, which both formats allow in HELP.
        r"Build information, with \\ and \n escapes in HELP.",
        Generator::build_info,
    ),
];

/// The `instance` label of the index-th simulated host.
fn instance_address(index: usize) -> String {
    format!(
        "10.{}.{}.{}:9100",
        index / 65536 % 256,
        index / 256 % 256,
        index % 256
    )
}

/// Samples one instance contributes over all families.
fn samples_per_instance() -> usize {
    let mut probe = Generator::new(Format::PrometheusText);
    for (_, _, _, write) in FAMILIES {
        write(&mut probe, &instance_address(0));
    }
    probe.samples
}

/// Builds an exposition of about `series` samples and returns it with its exact sample count.
/// OpenMetrics wants each family's metadata once, before all its samples, so the text is
/// written family by family across all instances rather than instance by instance.
fn exposition(format: Format, series: usize) -> (String, usize) {
    let instances = series.div_ceil(samples_per_instance()).max(1);
    let addresses: Vec<String> = (0..instances).map(instance_address).collect();
    let mut generator = Generator::new(format);
    for (family, kind, help, write) in FAMILIES {
        generator.header(family, kind, help);
        for address in &addresses {
            write(&mut generator, address);
        }
    }
    if format == Format::OpenMetrics {
        generator.out.push_str("# EOF\n");
    }
    (generator.out, generator.samples)
}

/// Result of timing one format.
struct Measurement {
    name: &'static str,
    bytes: usize,
    samples: usize,
    median: Duration,
}

/// Parses `text` `warmup + iterations` times and returns the median duration. It also checks
/// that the parser accepted the text and returned every sample, so the benchmark cannot
/// silently time an early error.
fn time_parse(
    text: &str,
    format: Format,
    expected: usize,
    args: &Args,
) -> anyhow::Result<Duration> {
    let mut durations = Vec::with_capacity(args.iterations);
    for i in 0..args.warmup + args.iterations {
        let start = Instant::now();
        let result = parse(black_box(text), format);
        let elapsed = start.elapsed();
        let exposition = result.with_context(|| format!("{format:?} input was rejected"))?;
        ensure!(
            exposition.samples.len() == expected,
            "{format:?}: parsed {} samples, generated {expected}",
            exposition.samples.len()
        );
        // Only parsing is timed; freeing the result happens after the clock stops.
        black_box(exposition);
        if i >= args.warmup {
            durations.push(elapsed);
        }
    }
    durations.sort_unstable();
    Ok(durations[durations.len() / 2])
}

fn measure(name: &'static str, format: Format, args: &Args) -> anyhow::Result<Measurement> {
    let (text, samples) = exposition(format, args.series);
    let median = time_parse(&text, format, samples, args)?;
    Ok(Measurement {
        name,
        bytes: text.len(),
        samples,
        median,
    })
}

fn print_table(results: &[Measurement], args: &Args) {
    println!(
        "Parser throughput, median of {} parses per format (after {} warm-up parses)\n",
        args.iterations, args.warmup
    );
    println!("| format | bytes | samples | ms/parse | MB/s | samples/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for m in results {
        let secs = m.median.as_secs_f64();
        println!(
            "| {} | {} | {} | {:.2} | {:.1} | {:.0} |",
            m.name,
            m.bytes,
            m.samples,
            secs * 1e3,
            m.bytes as f64 / secs / 1e6,
            m.samples as f64 / secs
        );
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.series > 0, "--series must be positive");
    ensure!(args.iterations > 0, "--iterations must be positive");
    if let Some(format) = args.dump {
        print!("{}", exposition(format.into(), args.series).0);
        return Ok(());
    }
    let results = [
        measure("Prometheus text 0.0.4", Format::PrometheusText, &args)?,
        measure("OpenMetrics 1.0", Format::OpenMetrics, &args)?,
    ];
    print_table(&results, &args);
    Ok(())
}
