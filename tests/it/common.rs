//! Test harness: starts real processes (Quiver, Prometheus, s3s-fs) on loopback ports and
//! stops them when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use quiver::prompb::{TimeSeries, WriteRequest};
use serde_json::Value;

/// A free loopback port (bound then released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    // The kernel may hand the same ephemeral port out again once its listener is closed,
    // and two servers given one port collide (seen: a Quiver whose HTTP and PostgreSQL
    // ports came out equal). No port is handed out twice in one test run.
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// A child process killed (and reaped) on drop.
pub struct Process {
    pub child: Child,
    /// For messages about this process.
    pub name: String,
}

impl Process {
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Process {
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Process {
            child,
            name: name.to_string(),
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            eprintln!("{} had already exited: {status}", self.name);
        }
        self.kill9();
    }
}

/// A Quiver server on a loopback port with its own data directory.
pub struct Quiver {
    pub process: Option<Process>,
    pub port: u16,
    /// The PostgreSQL wire protocol port (unless a test passes its own flag).
    pub pg_port: u16,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub client: reqwest::Client,
    /// Extra command-line flags for every launch.
    pub extra_args: Vec<String>,
    /// `http`, or `https` when a web configuration file asks for TLS.
    pub scheme: &'static str,
}

impl Quiver {
    /// Starts Quiver with `config` (YAML) and waits until it is ready.
    pub async fn start(config: &str) -> Quiver {
        Self::start_with_args(config, &[]).await
    }

    /// Starts Quiver with extra flags (for example `--web.enable-lifecycle`).
    pub async fn start_with_args(config: &str, args: &[&str]) -> Quiver {
        Self::start_with_client(config, args, "http", reqwest::Client::new()).await
    }

    /// Starts Quiver speaking `scheme`, asked by `client` (which carries what the web
    /// configuration requires: CA, client certificate, credentials).
    pub async fn start_with_client(
        config: &str,
        args: &[&str],
        scheme: &'static str,
        client: reqwest::Client,
    ) -> Quiver {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("quiver.yml");
        std::fs::write(&config_path, config).expect("writing config");
        let mut q = Quiver {
            process: None,
            port: free_port(),
            pg_port: free_port(),
            dir,
            config_path,
            client,
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            scheme,
        };
        q.launch().await;
        q
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `path` on this server, under its route prefix (`--web.route-prefix`, else the path of
    /// `--web.external-url`).
    pub fn url(&self, path: &str) -> String {
        let flag = |name: &str| {
            self.extra_args
                .iter()
                .find_map(|a| a.strip_prefix(name).map(str::to_owned))
        };
        let prefix = flag("--web.route-prefix=")
            .or_else(|| {
                flag("--web.external-url=")
                    .and_then(|u| url::Url::parse(&u).ok())
                    .map(|u| u.path().to_owned())
            })
            .unwrap_or_default();
        let prefix = prefix.trim_end_matches('/');
        format!("{}://127.0.0.1:{}{prefix}{path}", self.scheme, self.port)
    }

    /// (Re)starts the process on the same port and data directory.
    pub async fn launch(&mut self) {
        let log = self.dir.path().join("quiver.log");
        let mut cmd = Command::new(server_bin());
        cmd.arg(format!("--config.file={}", self.config_path.display()))
            .arg(format!("--storage.tsdb.path={}", self.data_dir().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--storage.tsdb.retention.time=0")
            .args(&self.extra_args);
        if !self
            .extra_args
            .iter()
            .any(|a| a.starts_with("--postgres.listen-address"))
        {
            cmd.arg(format!(
                "--postgres.listen-address=127.0.0.1:{}",
                self.pg_port
            ));
        }
        // Append to the log so a restart keeps the earlier run's lines.
        let previous = std::fs::read_to_string(&log).unwrap_or_default();
        self.process = Some(Process::spawn("quiver", &mut cmd, &log));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.client.get(self.url("/-/ready")).send().await
                && r.status().is_success()
            {
                break;
            }
            if let Some(p) = self.process.as_mut()
                && let Ok(Some(status)) = p.child.try_wait()
            {
                panic!("quiver exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "quiver did not become ready: {previous}{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's resident memory, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.process.as_ref().expect("running").child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kib * 1024
    }

    /// Quiver's own `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics request")
            .text()
            .await
            .expect("metrics body")
    }

    /// Rewrites the configuration file (the server re-reads it on reload).
    pub fn write_config(&self, config: &str) {
        std::fs::write(&self.config_path, config).expect("writing config");
    }

    /// `/api/v1/targets` as JSON.
    pub async fn targets(&self) -> Value {
        self.client
            .get(self.url("/api/v1/targets"))
            .send()
            .await
            .expect("targets request")
            .json()
            .await
            .expect("targets JSON")
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, name: &str) {
        let pid = self
            .process
            .as_ref()
            .expect("running")
            .child
            .id()
            .to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("quiver.log")).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        if let Some(p) = self.process.as_mut() {
            p.kill9();
        }
        self.process = None;
    }

    pub fn stop(&mut self) {
        if let Some(p) = self.process.as_mut() {
            p.terminate();
        }
        self.process = None;
    }

    /// GETs `path` with `query` parameters and returns the JSON body.
    pub async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> Value {
        get_json_at(&self.client, &self.url(path), query).await
    }

    /// Runs SQL and returns the JSON body; panics unless it succeeded.
    pub async fn sql(&self, query: &str) -> Value {
        let (status, body) = self.sql_raw(query).await;
        assert_eq!(status, 200, "query {query:?} failed: {body}");
        body
    }

    /// Runs SQL; returns status code and JSON body.
    pub async fn sql_raw(&self, query: &str) -> (u16, Value) {
        let r = self
            .client
            .post(self.url("/api/v1/sql"))
            .form(&[("query", query)])
            .send()
            .await
            .expect("SQL request");
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("JSON body");
        (status, body)
    }

    /// Rows of a successful SQL query.
    pub async fn rows(&self, query: &str) -> Vec<Vec<Value>> {
        let body = self.sql(query).await;
        serde_json::from_value(body["data"]["rows"].clone()).expect("rows")
    }

    /// A single number from a one-row, one-column query.
    pub async fn scalar(&self, query: &str) -> f64 {
        let rows = self.rows(query).await;
        rows[0][0]
            .as_f64()
            .unwrap_or_else(|| panic!("not a number: {rows:?}"))
    }

    /// Sends a remote-write request; returns status code and body text.
    pub async fn remote_write(&self, request: &WriteRequest) -> (u16, String) {
        let body = snappy(&request.encode_to_vec());
        let r = self
            .client
            .post(self.url("/api/v1/write"))
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
            .send()
            .await
            .expect("remote write request");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }
}

pub fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).expect("snappy")
}

/// One series for a WriteRequest.
pub fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries::from_pairs(labels, samples)
}

pub fn write_request(timeseries: Vec<TimeSeries>) -> WriteRequest {
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
}

/// The Quiver binary the servers run: this build's, or `QUIVER_BIN` (scripts that measure,
/// such as scripts/soak.sh, point it at a release build).
pub fn server_bin() -> PathBuf {
    std::env::var_os("QUIVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_quiver")))
}

/// A config with no scrape jobs (so only what a test writes is stored) plus `storage_yaml`
/// lines under `storage:`.
pub fn config_without_scrapes(storage_yaml: &str) -> String {
    format!("global:\n  scrape_interval: 15s\nstorage:\n{storage_yaml}\n")
}

/// GETs `url` with `query` parameters and returns the JSON body.
pub async fn get_json_at(client: &reqwest::Client, url: &str, query: &[(&str, &str)]) -> Value {
    client
        .get(url)
        .query(query)
        .send()
        .await
        .expect("GET request")
        .json()
        .await
        .expect("JSON body")
}

/// POSTs `form` to `url` (an HTML form, as Grafana sends queries) and returns the JSON body.
pub async fn post_form(client: &reqwest::Client, url: &str, form: &[(&str, String)]) -> Value {
    client
        .post(url)
        .form(form)
        .send()
        .await
        .expect("POST request")
        .json()
        .await
        .expect("JSON body")
}

/// Polls `check` until it returns Some or the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Now in Unix milliseconds.
pub fn now_ms() -> i64 {
    quiver::model::now_ms()
}

/// The binary of a Prometheus-project peer: from the folder in `QUIVER_PROMETHEUS3_DIR`
/// (Prometheus 3.5, promtool and Alertmanager, which the test command fetches), else the
/// system's package.
pub fn peer_bin(name: &str) -> PathBuf {
    match std::env::var_os("QUIVER_PROMETHEUS3_DIR") {
        Some(dir) if Path::new(&dir).join(name).exists() => Path::new(&dir).join(name),
        _ => PathBuf::from(name),
    }
}

/// A real Prometheus (3.5 when the test command fetched it) on a loopback port with its own
/// data directory.
pub struct Prometheus {
    _process: Process,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML; `PROMETHEUS_PORT` in it is replaced by the
    /// port it listens on) and extra flags, and waits until it is ready.
    pub async fn start(config: &str, flags: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let path = dir.path().join("prometheus.yml");
        let config = config.replace("PROMETHEUS_PORT", &port.to_string());
        std::fs::write(&path, config).expect("writing prometheus.yml");
        let process = Process::spawn(
            "prometheus",
            Command::new(peer_bin("prometheus"))
                .arg(format!("--config.file={}", path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args(flags),
            &dir.path().join("prometheus.log"),
        );
        let client = reqwest::Client::new();
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        eventually("prometheus ready", Duration::from_secs(30), || {
            let client = client.clone();
            let ready = ready.clone();
            async move {
                let r = client.get(ready).send().await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
        Prometheus {
            _process: process,
            port,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The version it reports (`/api/v1/status/buildinfo`).
    pub async fn version(&self) -> String {
        let body: serde_json::Value = reqwest::get(self.url("/api/v1/status/buildinfo"))
            .await
            .expect("buildinfo")
            .json()
            .await
            .expect("buildinfo JSON");
        body["data"]["version"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Remote-writes `request` (needs `--web.enable-remote-write-receiver`).
    pub async fn remote_write(&self, request: &WriteRequest) {
        let r = reqwest::Client::new()
            .post(self.url("/api/v1/write"))
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .body(snappy(&request.encode_to_vec()))
            .send()
            .await
            .expect("remote write to prometheus");
        let status = r.status();
        assert!(
            status.is_success(),
            "prometheus refused a write: {status} {}",
            r.text().await.unwrap_or_default()
        );
    }
}

/// A storage in `dir` and a PromQL engine over it, without a server: for tests of the
/// query engine and storage themselves.
pub async fn embedded_engine(
    dir: &Path,
    config: quiver::config::StorageConfig,
    max_samples: usize,
) -> (
    std::sync::Arc<quiver::storage::Storage>,
    quiver::query::promql::PromqlEngine,
) {
    let options = quiver::storage::StorageOptions {
        data_dir: dir.to_path_buf(),
        config,
        retention: Duration::ZERO,
        retention_size: 0,
        retention_downsampled: [Duration::ZERO; 2],
    };
    let storage =
        quiver::storage::Storage::open(options, quiver::metrics::StorageMetrics::unregistered())
            .await
            .expect("storage opens");
    let sql = quiver::query::sql::SqlEngine::new(
        storage.clone(),
        quiver::config::QueryConfig::default(),
        quiver::metrics::QueryMetrics::unregistered(),
    )
    .expect("sql engine");
    let engine = quiver::query::promql::PromqlEngine::new(
        storage.clone(),
        sql.context().runtime_env(),
        max_samples,
    );
    (storage, engine)
}

/// s3s-fs on a loopback port, serving buckets from a directory.
pub struct S3Server {
    process: Option<Process>,
    pub port: u16,
    pub root: tempfile::TempDir,
}

impl S3Server {
    fn spawn(port: u16, root: &Path) -> Process {
        let process = Process::spawn(
            "s3s-fs",
            Command::new("s3s-fs")
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", "testkey", "--secret-key", "testsecret"])
                .arg(root),
            &root.join("s3s.log"),
        );
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        process
    }

    /// An outage: the server is killed; its files stay.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9();
        }
    }

    /// The server back on the same port, over the same files.
    pub fn restart(&mut self) {
        self.stop();
        self.process = Some(Self::spawn(self.port, self.root.path()));
    }
}

pub fn start_s3() -> S3Server {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("metrics")).unwrap();
    let port = free_port();
    S3Server {
        process: Some(S3Server::spawn(port, root.path())),
        port,
        root,
    }
}

/// The `storage:` lines that put blocks in bucket `metrics` of `s3` under `prefix`.
pub fn s3_storage_yaml(s3: &S3Server, prefix: &str) -> String {
    format!(
        "  backend: s3\n  s3:\n    bucket: metrics\n    prefix: {prefix}\n    endpoint: http://127.0.0.1:{}\n    region: us-east-1\n    access_key_id: testkey\n    secret_access_key: testsecret\n    allow_http: true",
        s3.port
    )
}

/// node_exporter on a free loopback port (with its log in its own temporary directory),
/// once it accepts connections.
pub fn start_node_exporter() -> (Process, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let process = Process::spawn(
        "node_exporter",
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Collectors whose series come and go between scrapes would make the two
            // servers' series sets differ by timing alone.
            .args([
                "--no-collector.netstat",
                "--no-collector.softnet",
                "--no-collector.systemd",
            ]),
        &dir.path().join("node_exporter.log"),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (process, port, dir)
}
