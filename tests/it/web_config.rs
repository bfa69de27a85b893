//! The HTTP port under Prometheus's web configuration file (`--web.config.file`): TLS,
//! client certificates, basic authentication, headers and rotation, checked with real
//! clients and peers: Prometheus 3.5 scraping and remote-writing Quiver, curl,
//! node_exporter and Alertmanager behind their own web configuration, and promtool's
//! `check web-config` on the shipped example.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    Process, Prometheus, Quiver, config_without_scrapes, eventually, free_port, peer_bin,
};

/// A throwaway PKI made with the openssl command: CAs and the certificates they issue.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("running openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A self-signed CA `<name>.crt`/`<name>.key`.
    fn ca(&self, name: &str) -> &Self {
        let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &crt,
        ]);
        self
    }

    /// `<name>.crt`/`<name>.key` issued by `ca` for `san` ("IP:127.0.0.1",
    /// "DNS:client.test"), for `usage` (serverAuth or clientAuth), valid `days` (negative:
    /// already expired).
    fn issue(&self, ca: &str, name: &str, san: &str, usage: &str, days: i32) -> &Self {
        let (crt, key, csr, ext) = (
            format!("{name}.crt"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
        );
        std::fs::write(
            self.path(&ext),
            format!("subjectAltName={san}\nextendedKeyUsage={usage}\n"),
        )
        .unwrap();
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            &days.to_string(),
            "-extfile",
            &ext,
            "-out",
            &crt,
        ]);
        self
    }

    fn pem(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.path(file)).unwrap()
    }

    /// A client trusting `ca`, presenting `identity` (a certificate name) if given, sending
    /// `user:password` on every request if given.
    fn client(
        &self,
        ca: &str,
        identity: Option<&str>,
        user: Option<(&str, &str)>,
    ) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(&self.pem(&format!("{ca}.crt"))).unwrap(),
            );
        if let Some(name) = identity {
            let mut pem = self.pem(&format!("{name}.crt"));
            pem.extend(self.pem(&format!("{name}.key")));
            builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        if let Some((user, password)) = user {
            use base64::Engine;
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Basic {token}").parse().unwrap(),
            );
            builder = builder.default_headers(headers);
        }
        builder.build().unwrap()
    }
}

/// A bcrypt hash of `password` (cost 4: tests need speed, not strength).
fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

/// Quiver over TLS with `web` (YAML; `DIR` in it is the PKI folder) as its web config.
async fn start(pki: &Pki, web: &str, client: reqwest::Client) -> (Quiver, PathBuf) {
    let path = pki.path("web.yml");
    std::fs::write(
        &path,
        web.replace("DIR", &pki.dir.path().display().to_string()),
    )
    .unwrap();
    let flag = format!("--web.config.file={}", path.display());
    let q = Quiver::start_with_client(&config_without_scrapes(""), &[&flag], "https", client).await;
    (q, path)
}

/// curl's `(exit code, HTTP status, headers)` for a GET of `url` with `args`.
fn curl(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.lines().last().unwrap_or_default().to_owned();
    (out.status.code().unwrap_or(-1), status, text)
}

#[tokio::test]
async fn prometheus_scrapes_and_remote_writes_quiver_over_tls_with_basic_auth() {
    let pki = Pki::new();
    pki.ca("ca").issue(
        "ca",
        "server",
        "IP:127.0.0.1,DNS:localhost",
        "serverAuth",
        2,
    );
    let web = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
         http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n\
         basic_auth_users:\n  prometheus: {}\n  grafana: {}\n",
        hash("scrape-secret"),
        hash("dash-secret")
    );
    let client = pki.client("ca", None, Some(("prometheus", "scrape-secret")));
    let (q, _) = start(&pki, &web, client).await;
    let url = q.url("/api/v1/status/buildinfo");
    let ca = pki.path("ca.crt").display().to_string();

    // curl as a user would: the right password, a wrong one, none, an unknown user, and
    // cleartext HTTP on the TLS port.
    let (rc, status, headers) = curl(&url, &["--cacert", &ca, "-u", "grafana:dash-secret"]);
    assert_eq!((rc, status.as_str()), (0, "200"), "{headers}");
    let lower = headers.to_ascii_lowercase();
    assert!(lower.contains("x-frame-options: deny"), "{headers}");
    assert!(
        lower.contains("x-content-type-options: nosniff"),
        "{headers}"
    );
    for args in [
        vec!["--cacert", &ca, "-u", "grafana:wrong"],
        vec!["--cacert", &ca],
        vec!["--cacert", &ca, "-u", "mallory:dash-secret"],
    ] {
        let (rc, status, headers) = curl(&url, &args);
        assert_eq!((rc, status.as_str()), (0, "401"), "{args:?}: {headers}");
        assert!(
            headers
                .to_ascii_lowercase()
                .contains("www-authenticate: basic"),
            "{headers}"
        );
        // The headers are on refusals too.
        assert!(
            headers
                .to_ascii_lowercase()
                .contains("x-frame-options: deny")
        );
    }
    // Every route is behind the gate, writes and self-metrics included.
    for path in [
        "/metrics",
        "/api/v1/write",
        "/federate?match[]=up",
        "/-/ready",
    ] {
        let (_, status, _) = curl(&q.url(path), &["--cacert", &ca]);
        assert_eq!(status, "401", "{path}");
    }
    let plain = format!("http://127.0.0.1:{}/api/v1/status/buildinfo", q.port);
    let (_, status, _) = curl(&plain, &["-u", "grafana:dash-secret"]);
    assert_ne!(
        status, "200",
        "cleartext HTTP must not be served on the TLS port"
    );
    // Without the CA the server is not trusted.
    let (rc, _, _) = curl(&url, &["-u", "grafana:dash-secret"]);
    assert_ne!(rc, 0);

    // A real Prometheus scrapes Quiver's /metrics and remote-writes to it, over TLS with
    // basic auth.
    let prometheus = Prometheus::start(
        &format!(
            r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: quiver
    scheme: https
    tls_config:
      ca_file: {ca}
    basic_auth:
      username: prometheus
      password: scrape-secret
    static_configs:
      - targets: ["127.0.0.1:{port}"]
remote_write:
  - url: https://127.0.0.1:{port}/api/v1/write
    tls_config:
      ca_file: {ca}
    basic_auth:
      username: prometheus
      password: scrape-secret
    queue_config:
      batch_send_deadline: 1s
"#,
            port = q.port
        ),
        &[],
    )
    .await;
    let prom_client = reqwest::Client::new();
    let up_url = prometheus.url("/api/v1/query?query=up%7Bjob%3D%22quiver%22%7D");
    eventually(
        "Prometheus scrapes Quiver over TLS",
        Duration::from_secs(30),
        || {
            let (client, url) = (prom_client.clone(), up_url.clone());
            async move {
                let body: Value = client.get(url).send().await.ok()?.json().await.ok()?;
                (body["data"]["result"][0]["value"][1] == "1").then_some(())
            }
        },
    )
    .await;
    // What Prometheus scraped from Quiver arrives back in Quiver by remote write.
    eventually(
        "Prometheus remote-writes to Quiver over TLS",
        Duration::from_secs(30),
        || {
            let q = &q;
            async move {
                let body = q
                    .get_json("/api/v1/query", &[("query", "up{job=\"quiver\"}")])
                    .await;
                (body["data"]["result"][0]["value"][1] == "1").then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn client_certificates_are_required_verified_and_matched_by_san() {
    let pki = Pki::new();
    pki.ca("ca")
        .ca("other")
        .issue("ca", "server", "IP:127.0.0.1", "serverAuth", 2)
        .issue("ca", "client", "DNS:client.test", "clientAuth", 2)
        .issue("ca", "stranger", "DNS:stranger.test", "clientAuth", 2)
        .issue("ca", "expired", "DNS:client.test", "clientAuth", -1)
        .issue("other", "forged", "DNS:client.test", "clientAuth", 2);
    let web = "tls_server_config:\n  cert_file: DIR/server.crt\n  key_file: DIR/server.key\n  \
               client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: DIR/ca.crt\n  \
               client_allowed_sans: [client.test]\n  min_version: TLS12\n";
    let (q, _) = start(&pki, web, pki.client("ca", Some("client"), None)).await;
    let url = q.url("/api/v1/status/buildinfo");
    let ca = pki.path("ca.crt").display().to_string();
    let with = |name: &str| {
        [
            "--cacert".to_owned(),
            ca.clone(),
            "--cert".to_owned(),
            pki.path(&format!("{name}.crt")).display().to_string(),
            "--key".to_owned(),
            pki.path(&format!("{name}.key")).display().to_string(),
        ]
    };
    let args = with("client");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(curl(&url, &args).1, "200");
    for name in ["expired", "forged", "stranger"] {
        let args = with(name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (rc, status, _) = curl(&url, &args);
        assert!(
            rc != 0 && status != "200",
            "{name} must be refused ({rc}, {status})"
        );
    }
    let (rc, status, _) = curl(&url, &["--cacert", &ca]);
    assert!(
        rc != 0 && status != "200",
        "no client certificate: {rc} {status}"
    );
    // TLS 1.2 and 1.3 are both offered.
    for version in ["--tls-max", "--tlsv1.3"] {
        let extra: &[&str] = if version == "--tls-max" {
            &["--tls-max", "1.2"]
        } else {
            &["--tlsv1.3"]
        };
        let mut all = args.clone();
        all.extend_from_slice(extra);
        assert_eq!(curl(&url, &all).1, "200", "{version}");
    }
}

#[tokio::test]
async fn certificates_and_users_rotate_without_a_restart() {
    let pki = Pki::new();
    pki.ca("ca1")
        .ca("ca2")
        .issue("ca1", "server", "IP:127.0.0.1", "serverAuth", 2)
        .issue("ca2", "server2", "IP:127.0.0.1", "serverAuth", 2);
    let users =
        |user: &str, password: &str| format!("basic_auth_users:\n  {user}: {}\n", hash(password));
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let (q, web) = start(
        &pki,
        &format!("{tls}{}", users("alice", "one")),
        pki.client("ca1", None, Some(("alice", "one"))),
    )
    .await;
    let url = q.url("/api/v1/status/flags");
    let flags: Value = q
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(flags["data"]["web.config.file"], web.display().to_string());

    // A new certificate from another CA, moved into place as certificate managers do.
    for ext in ["crt", "key"] {
        let staged = pki.path(&format!("staged.{ext}"));
        std::fs::copy(pki.path(&format!("server2.{ext}")), &staged).unwrap();
        std::fs::rename(&staged, pki.path(&format!("server.{ext}"))).unwrap();
    }
    let trusts_ca2 = pki.client("ca2", None, Some(("alice", "one")));
    until_served("the rotated certificate is served", &trusts_ca2, &url).await;
    // (A new connection: the ones open before the rotation keep their session.)
    let trusts_ca1 = pki.client("ca1", None, Some(("alice", "one")));
    assert!(
        trusts_ca1.get(&url).send().await.is_err(),
        "a client trusting only the old CA must now refuse the server"
    );

    // A half-written file leaves the previous configuration in force.
    std::fs::write(&web, "basic_auth_users:\n  bob: [").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = trusts_ca2.get(&url).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "the last good configuration stays in force"
    );

    // Users change: alice's password no longer works, bob's does.
    std::fs::write(&web, format!("{tls}{}", users("bob", "two"))).unwrap();
    let bob = pki.client("ca2", None, Some(("bob", "two")));
    until_served("the new user list applies", &bob, &url).await;
    assert_eq!(trusts_ca2.get(&url).send().await.unwrap().status(), 401);
    assert!(
        q.log().contains("the previous one stays in force"),
        "{}",
        q.log()
    );
}

/// Waits until `client` gets a success from `url`.
async fn until_served(what: &str, client: &reqwest::Client, url: &str) {
    eventually(what, Duration::from_secs(15), || {
        let (client, url) = (client.clone(), url.to_owned());
        async move {
            let status = client.get(url).send().await.ok()?.status();
            status.is_success().then_some(())
        }
    })
    .await;
}

/// A peer (node_exporter or Alertmanager) serving TLS with basic auth by its own
/// `--web.config.file`, which is the same format as Quiver's.
/// With `client_ca`, the peer also requires a client certificate issued by that CA.
fn peer_web_config(
    pki: &Pki,
    name: &str,
    cert: &str,
    client_ca: Option<&str>,
    password: &str,
) -> PathBuf {
    let path = pki.path(&format!("{name}-web.yml"));
    let mtls = client_ca.map_or(String::new(), |ca| {
        format!("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca}.crt\n")
    });
    std::fs::write(
        &path,
        format!(
            "tls_server_config:\n  cert_file: {cert}.crt\n  key_file: {cert}.key\n{mtls}basic_auth_users:\n  quiver: {}\n",
            hash(password)
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn quiver_scrapes_and_notifies_peers_behind_tls_and_basic_auth() {
    let pki = Pki::new();
    // node_exporter's certificate names only node.test: the scrape reaches it at
    // 127.0.0.1 and verifies it with `server_name`.
    pki.ca("ca")
        .issue("ca", "server", "IP:127.0.0.1", "serverAuth", 2)
        .issue("ca", "node", "DNS:node.test", "serverAuth", 2)
        .issue("ca", "scraper", "DNS:quiver.test", "clientAuth", 2);
    let (scraper_crt, scraper_key) = (
        pki.path("scraper.crt").display().to_string(),
        pki.path("scraper.key").display().to_string(),
    );
    let ca = pki.path("ca.crt").display().to_string();

    let node_port = free_port();
    let _node = Process::spawn(
        "node_exporter",
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{node_port}"))
            .arg(format!(
                "--web.config.file={}",
                peer_web_config(&pki, "node", "node", Some("ca"), "node-secret").display()
            ))
            .args([
                "--collector.disable-defaults",
                "--collector.loadavg",
                "--collector.time",
            ]),
        &pki.path("node_exporter.log"),
    );
    let am_port = free_port();
    let _am = Process::spawn(
        "alertmanager",
        Command::new(peer_bin("prometheus-alertmanager"))
            .arg(format!("--config.file={}", am_config(&pki).display()))
            .arg(format!("--storage.path={}", pki.path("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg(format!(
                "--web.config.file={}",
                peer_web_config(&pki, "am", "server", None, "am-secret").display()
            ))
            .arg("--cluster.listen-address="),
        &pki.path("alertmanager.log"),
    );
    let rules = pki.path("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: NodeSeen\n        expr: up{job=\"node\"} == 1\n",
    )
    .unwrap();
    let config = format!(
        r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{rules}"]
scrape_configs:
  - job_name: node
    scheme: https
    tls_config: {{ ca_file: "{ca}", server_name: node.test, cert_file: "{scraper_crt}", key_file: "{scraper_key}" }}
    basic_auth: {{ username: quiver, password: node-secret }}
    static_configs: [{{ targets: ["127.0.0.1:{node_port}"] }}]
  - job_name: node-wrong-password
    scheme: https
    tls_config: {{ ca_file: "{ca}", server_name: node.test, cert_file: "{scraper_crt}", key_file: "{scraper_key}" }}
    basic_auth: {{ username: quiver, password: guessed }}
    static_configs: [{{ targets: ["127.0.0.1:{node_port}"] }}]
  - job_name: node-without-server-name
    scheme: https
    tls_config: {{ ca_file: "{ca}", cert_file: "{scraper_crt}", key_file: "{scraper_key}" }}
    basic_auth: {{ username: quiver, password: node-secret }}
    static_configs: [{{ targets: ["127.0.0.1:{node_port}"] }}]
  - job_name: node-without-client-cert
    scheme: https
    tls_config: {{ ca_file: "{ca}", server_name: node.test }}
    basic_auth: {{ username: quiver, password: node-secret }}
    static_configs: [{{ targets: ["127.0.0.1:{node_port}"] }}]
alerting:
  alertmanagers:
    - scheme: https
      tls_config: {{ ca_file: "{ca}" }}
      basic_auth: {{ username: quiver, password: am-secret }}
      static_configs: [{{ targets: ["127.0.0.1:{am_port}"] }}]
"#,
        rules = rules.display()
    );
    let q = Quiver::start(&config).await;
    eventually(
        "node_exporter scraped over TLS with basic auth",
        Duration::from_secs(30),
        || {
            let q = &q;
            async move {
                let body = q
                    .get_json("/api/v1/query", &[("query", "node_load1")])
                    .await;
                body["data"]["result"]
                    .as_array()
                    .filter(|r| !r.is_empty())
                    .map(|_| ())
            }
        },
    )
    .await;
    // Each target's state once it has been scraped: a wrong password is a 401; without
    // server_name the certificate (for node.test) does not match 127.0.0.1.
    let errors = eventually("every job scraped", Duration::from_secs(30), || {
        let q = &q;
        async move {
            let targets = q.get_json("/api/v1/targets", &[]).await;
            let mut errors = std::collections::BTreeMap::new();
            for t in targets["data"]["activeTargets"].as_array()? {
                if t["health"] == "unknown" {
                    return None;
                }
                let job = t["labels"]["job"].as_str()?.to_owned();
                errors.insert(
                    job,
                    (t["health"].clone(), t["lastError"].as_str()?.to_owned()),
                );
            }
            (errors.len() == 4).then_some(errors)
        }
    })
    .await;
    assert_eq!(errors["node"].0, "up", "{errors:?}");
    let (health, error) = &errors["node-wrong-password"];
    assert!(health == "down" && error.contains("401"), "{errors:?}");
    let (health, error) = &errors["node-without-server-name"];
    assert!(health == "down" && !error.contains("401"), "{errors:?}");
    eprintln!("without server_name: {error}");
    // node_exporter requires a client certificate: a scrape without one is refused.
    let (health, error) = &errors["node-without-client-cert"];
    assert!(health == "down" && !error.contains("401"), "{errors:?}");

    let am = pki.client("ca", None, Some(("quiver", "am-secret")));
    let alerts_url = format!("https://127.0.0.1:{am_port}/api/v2/alerts");
    eventually(
        "the alert reaches Alertmanager over TLS with basic auth",
        Duration::from_secs(30),
        || {
            let (am, url) = (am.clone(), alerts_url.clone());
            async move {
                let alerts: Value = am.get(url).send().await.ok()?.json().await.ok()?;
                alerts
                    .as_array()?
                    .iter()
                    .any(|a| a["labels"]["alertname"] == "NodeSeen")
                    .then_some(())
            }
        },
    )
    .await;
}

fn am_config(pki: &Pki) -> PathBuf {
    let path = pki.path("alertmanager.yml");
    std::fs::write(
        &path,
        "route:\n  receiver: \"null\"\n  group_wait: 1s\nreceivers:\n  - name: \"null\"\n",
    )
    .unwrap();
    path
}

/// The shipped example passes `quiver check web-config` and promtool's; broken files fail
/// both.
#[test]
fn the_shipped_web_config_passes_quiver_and_promtool_checks() {
    let pki = Pki::new();
    pki.ca("ca")
        .issue("ca", "server", "IP:127.0.0.1", "serverAuth", 2);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prod/web.yml");
    // The example names the certificate Secret's mount, /etc/quiver/tls/.
    let text = std::fs::read_to_string(&example).unwrap().replace(
        "/etc/quiver/tls/",
        &format!("{}/", pki.dir.path().display()),
    );
    std::fs::copy(pki.path("server.crt"), pki.path("tls.crt")).unwrap();
    std::fs::copy(pki.path("server.key"), pki.path("tls.key")).unwrap();
    let good = pki.path("web.yml");
    std::fs::write(&good, &text).unwrap();
    let bad_key = pki.path("unknown-key.yml");
    std::fs::write(&bad_key, format!("{text}\ntls_config: {{}}\n")).unwrap();
    let plain_password = pki.path("plain-password.yml");
    std::fs::write(&plain_password, "basic_auth_users:\n  alice: secret\n").unwrap();
    let missing_cert = pki.path("missing-cert.yml");
    std::fs::write(
        &missing_cert,
        "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
    )
    .unwrap();
    let check = |program: PathBuf, file: &Path| {
        let out = Command::new(&program)
            .args(["check", "web-config"])
            .arg(file)
            .output()
            .expect("running the checker");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    for program in [
        PathBuf::from(env!("CARGO_BIN_EXE_quiver")),
        peer_bin("promtool"),
    ] {
        let (ok, out) = check(program.clone(), &good);
        assert!(ok, "{} refused the example: {out}", program.display());
        for bad in [&bad_key, &plain_password, &missing_cert] {
            let (ok, out) = check(program.clone(), bad);
            assert!(
                !ok,
                "{} accepted {}: {out}",
                program.display(),
                bad.display()
            );
        }
    }
}
