//! The PostgreSQL wire protocol against real clients: psql (`\dt`, `\d`, aggregates, errors),
//! psycopg2 and psycopg 3 (simple and extended protocol) and a replay of Grafana's
//! PostgreSQL datasource session (tests/it/pg_clients.py), password and trust
//! authentication, TLS, and broken clients that must not take the server down.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{Quiver, free_port, post_form, series, write_request};

const METRIC: &str = "pg_test_metric";

/// Quiver with the wire protocol on its own port; `postgres_yaml` goes under `postgres:`.
async fn start(postgres_yaml: &str) -> (Quiver, u16) {
    let port = free_port();
    let config = format!("global:\n  scrape_interval: 15s\npostgres:\n{postgres_yaml}\n");
    let listen = format!("--postgres.listen-address=127.0.0.1:{port}");
    let q = Quiver::start_with_args(&config, &[&listen]).await;
    (q, port)
}

/// 20 samples from 2024-06-01T00:00Z every 3 minutes, alternating hosts `a` and `b`, values
/// 0..19.
async fn load(q: &Quiver) {
    let start = 1_717_200_000_000i64;
    let mut timeseries = Vec::new();
    for host in ["a", "b"] {
        let samples: Vec<(i64, f64)> = (0..20)
            .filter(|i| (i % 2 == 0) == (host == "a"))
            .map(|i| (start + i * 180_000, i as f64))
            .collect();
        timeseries.push(series(&[("__name__", METRIC), ("host", host)], &samples));
    }
    let (status, body) = q.remote_write(&write_request(timeseries)).await;
    assert_eq!(status, 204, "{body}");
}

fn psql(port: u16, user: &str, password: &str, extra: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("psql")
        .arg("-X")
        .arg(format!(
            "host=127.0.0.1 port={port} user={user} dbname=quiver {extra}"
        ))
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("running psql");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_and_python_drivers_with_scram_passwords() {
    let (q, port) = start(
        "  users:\n    - name: grafana\n      password: s3cret\n    - name: analyst\n      password: other\n",
    )
    .await;
    load(&q).await;
    let ok = |args: &[&str]| {
        let (success, out) = psql(port, "grafana", "s3cret", "sslmode=disable", args);
        assert!(success, "psql {args:?}: {out}");
        out
    };
    let tables = ok(&["-c", "\\dt"]);
    assert!(tables.contains("series"), "{tables}");
    let views = ok(&["-c", "\\dv"]);
    assert!(
        views.contains(METRIC) && views.contains("samples"),
        "{views}"
    );
    let described = ok(&["-c", &format!("\\d {METRIC}")]);
    assert!(
        described.contains("timestamp with time zone"),
        "{described}"
    );
    assert!(described.contains("double precision"), "{described}");
    assert!(described.contains("host"), "{described}");
    let aggregate = ok(&[
        "-A",
        "-t",
        "-c",
        &format!("SELECT host, count(*), sum(value) FROM {METRIC} GROUP BY host ORDER BY host"),
    ]);
    let rows: Vec<(String, i64, f64)> = aggregate
        .trim()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![("a".to_string(), 10, 90.0), ("b".to_string(), 10, 100.0)],
        "{aggregate}"
    );
    let version = ok(&["-A", "-t", "-c", "SHOW server_version"]);
    assert!(version.trim().starts_with("16"), "{version}");

    let (success, out) = psql(
        port,
        "grafana",
        "s3cret",
        "sslmode=disable",
        &["-v", "VERBOSITY=verbose", "-c", "SELECT * FROM nope"],
    );
    assert!(!success);
    assert!(out.contains("42P01"), "{out}");
    let (success, out) = psql(
        port,
        "grafana",
        "wrong",
        "sslmode=disable",
        &["-c", "SELECT 1"],
    );
    assert!(!success, "a wrong password was accepted: {out}");
    assert!(
        out.to_lowercase()
            .contains("password authentication failed"),
        "{out}"
    );
    let (success, _) = psql(
        port,
        "nobody",
        "s3cret",
        "sslmode=disable",
        &["-c", "SELECT 1"],
    );
    assert!(!success, "an unknown user was accepted");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/pg_clients.py");
    // Bounded: a client stuck on a query the server failed to stop must not hang the suite.
    let out = Command::new("timeout")
        .args(["300", "python3"])
        .arg(&script)
        .args([&port.to_string(), "grafana", "s3cret", METRIC])
        .output()
        .expect("running python3");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(
        out.status.success(),
        "python clients failed:\n{text}\n{}",
        q.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_and_cleartext_passwords() {
    for method in ["md5", "password"] {
        let (q, port) = start(&format!(
            "  auth_method: {method}\n  users:\n    - name: u\n      password: pw\n"
        ))
        .await;
        let (success, out) = psql(
            port,
            "u",
            "pw",
            "sslmode=disable",
            &["-A", "-t", "-c", "SELECT 40 + 2"],
        );
        assert!(success && out.trim() == "42", "{method}: {out}");
        let (success, out) = psql(port, "u", "bad", "sslmode=disable", &["-c", "SELECT 1"]);
        assert!(!success, "{method} accepted a wrong password: {out}");
        let (success, out) = psql(port, "nobody", "pw", "sslmode=disable", &["-c", "SELECT 1"]);
        assert!(!success, "{method} accepted an unknown user: {out}");
        let metrics = q.metrics_text().await;
        assert!(
            metrics.contains("quiver_postgres_failed_logins_total{reason=\"password\"} 2"),
            "{method}: {metrics}"
        );
        drop(q);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_on_loopback_and_tls_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("running openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (q, port) = start(&format!(
        "  tls:\n    cert_file: {}\n    key_file: {}\n",
        cert.display(),
        key.display()
    ))
    .await;
    // Trust: no users configured, any user name, no password.
    for sslmode in ["sslmode=disable", "sslmode=require"] {
        let (success, out) = psql(
            port,
            "anyone",
            "",
            sslmode,
            &["-A", "-t", "-c", "SELECT 'hi'"],
        );
        assert!(success && out.trim() == "hi", "{sslmode}: {out}");
    }
    drop(q);

    // With `require: true`, a connection that does not negotiate TLS is refused.
    let (q, port) = start(&format!(
        "  tls:\n    cert_file: {}\n    key_file: {}\n    require: true\n",
        cert.display(),
        key.display()
    ))
    .await;
    let (success, out) = psql(port, "anyone", "", "sslmode=disable", &["-c", "SELECT 1"]);
    assert!(!success && out.contains("requires TLS"), "{out}");
    let (success, out) = psql(
        port,
        "anyone",
        "",
        "sslmode=require",
        &["-A", "-t", "-c", "SELECT 'hi'"],
    );
    assert!(success && out.trim() == "hi", "{out}");
    let metrics = q.metrics_text().await;
    assert!(
        metrics.contains("quiver_postgres_failed_logins_total{reason=\"tls_required\"} 1"),
        "{metrics}"
    );
    drop(q);
}

/// Reads until the server closes the socket or stops sending (a FATAL error then EOF is fine).
fn read_until_quiet(stream: &mut TcpStream) -> Vec<u8> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    all
}

fn startup_message(user: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes());
    for (k, v) in [("user", user), ("database", "quiver")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend(body);
    msg
}

/// The type bytes of the backend messages in `bytes` (after the start-up exchange).
fn message_kinds(bytes: &[u8]) -> Vec<u8> {
    let mut kinds = Vec::new();
    let mut at = 0;
    while at + 5 <= bytes.len() {
        kinds.push(bytes[at]);
        let len = u32::from_be_bytes([bytes[at + 1], bytes[at + 2], bytes[at + 3], bytes[at + 4]]);
        at += 1 + len as usize;
    }
    kinds
}

fn query_message(sql: &str) -> Vec<u8> {
    let mut msg = vec![b'Q'];
    msg.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
    msg.extend_from_slice(sql.as_bytes());
    msg.push(0);
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_clients_do_not_hurt_the_server() {
    let (q, port) = start("  users: []\n").await;
    load(&q).await;
    let addr = format!("127.0.0.1:{port}");
    // Garbage instead of a startup message.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    read_until_quiet(&mut s);
    // A startup message that announces more than it sends, then hangs up.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&[0, 0, 0, 100, 0, 3, 0, 0]).unwrap();
    drop(s);
    // A message claiming to be 1 GiB.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&startup_message("x")).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut huge = vec![b'Q'];
    huge.extend_from_slice(&(1u32 << 30).to_be_bytes());
    huge.extend_from_slice(&[b'x'; 1024]);
    let _ = s.write_all(&huge);
    read_until_quiet(&mut s);
    // An unknown message type after a good start-up.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&startup_message("x")).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let _ = s.write_all(&[b'?', 0, 0, 0, 4]);
    read_until_quiet(&mut s);
    // Messages shorter than their fields (found by scripts/fuzz.sh): a Describe or Close of
    // length 0, a Parse of length 4, a Bind whose parameter runs past its end. pgwire
    // panics decoding them; the panic ends that connection's task only.
    let bind: &[u8] = &[b'B', 0, 0, 0, 2, 0, 0, 0, 0, 1, 1, 1, 0xff, 0xf8, 0, 4];
    for message in [
        &[b'D', 0, 0, 0, 0][..],
        &[b'C', 0, 0, 0, 0],
        &[b'P', 0, 0, 0, 4],
        bind,
    ] {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(&startup_message("x")).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let _ = s.write_all(message);
        read_until_quiet(&mut s);
    }
    // A client that sends a query and disconnects before reading the answer.
    for _ in 0..5 {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(&startup_message("x")).unwrap();
        s.write_all(&query_message(&format!(
            "SELECT a.value FROM {METRIC} a, {METRIC} b, {METRIC} c"
        )))
        .unwrap();
        drop(s);
    }
    // A SQL syntax error gets an ErrorResponse with SQLSTATE 42601 and the session goes on.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&startup_message("x")).unwrap();
    s.write_all(&query_message("SELEC 1")).unwrap();
    s.write_all(&query_message("SELECT 7")).unwrap();
    let answer = String::from_utf8_lossy(&read_until_quiet(&mut s)).to_string();
    assert!(answer.contains("42601"), "{answer:?}");
    assert!(
        answer.contains("SELECT 1"),
        "command tag of the second query: {answer:?}"
    );

    // Grafana's health checks: EmptyQueryResponse ('I'), no ErrorResponse.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&startup_message("x")).unwrap();
    s.write_all(&query_message(";")).unwrap();
    s.write_all(&query_message("-- ping")).unwrap();
    let answer = read_until_quiet(&mut s);
    let kinds = message_kinds(&answer);
    assert_eq!(
        kinds.iter().filter(|k| **k == b'I').count(),
        2,
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        !kinds.contains(&b'E'),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    // Still serving, over the wire protocol and HTTP.
    let (success, out) = psql(
        port,
        "x",
        "",
        "sslmode=disable",
        &["-A", "-t", "-c", &format!("SELECT count(*) FROM {METRIC}")],
    );
    assert!(success && out.trim() == "20", "{out}");
    assert_eq!(
        q.scalar(&format!("SELECT count(*) FROM {METRIC}")).await,
        20.0
    );
}

/// `1+1+...+1` with `n` terms.
fn chain(n: usize) -> String {
    vec!["1"; n].join("+")
}

/// Expressions too deep to plan (which used to overflow a thread's stack and abort the
/// server) are refused in each language's convention, on every entrance; the server keeps
/// serving, and queries at the limit still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_expressions_are_refused_everywhere_and_the_server_keeps_serving() {
    let (q, port) = start("  users:\n    - name: grafana\n      password: s3cret\n").await;
    // At the limit: 999 additions and the SELECT's own nothing else.
    assert_eq!(q.scalar(&format!("SELECT {}", chain(1000))).await, 1000.0);
    let (status, body) = q.sql_raw(&format!("SELECT {}", chain(20_000))).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("too complex"),
        "{body}"
    );
    let parens = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    assert_eq!(q.sql_raw(&parens).await.0, 400);

    let promql = |query: String| {
        let q = &q;
        async move { post_form(&q.client, &q.url("/api/v1/query"), &[("query", query)]).await }
    };
    let ok = promql(chain(1000)).await;
    assert_eq!(ok["data"]["result"][1], "1000", "{ok}");
    let refused = promql(chain(20_000)).await;
    assert_eq!(refused["errorType"], "bad_data", "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("too complex"),
        "{refused}"
    );

    // psql (simple protocol) and psycopg 3 (extended protocol, server-side parameters).
    let deep = format!("SELECT {}", chain(20_000));
    let (ok, out) = psql(port, "grafana", "s3cret", "", &["-c", &deep]);
    assert!(!ok && out.contains("too complex"), "{out}");
    let script = format!(
        "import psycopg\n\
         with psycopg.connect('host=127.0.0.1 port={port} user=grafana password=s3cret dbname=quiver') as c:\n\
         \x20   try:\n\
         \x20       c.execute('SELECT %s + ' + '+'.join(['1'] * 20000), [1])\n\
         \x20       print('accepted')\n\
         \x20   except psycopg.Error as e:\n\
         \x20       print(e.sqlstate, e)\n"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.starts_with("54001") && text.contains("too complex"),
        "{text}"
    );
    let (ok, out) = psql(port, "grafana", "s3cret", "", &["-c", "SELECT 1"]);
    assert!(ok, "{out}");
    assert_eq!(q.scalar("SELECT 2").await, 2.0);
}
