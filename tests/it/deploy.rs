//! The deployment files, checked without a container engine (none runs on the test
//! machines): the compose file against the Compose specification's schema, every file it
//! mounts present in the repository, every configuration it mounts accepted by the program
//! that reads it (`quiver check config`, `amtool check-config`), and the names and ports
//! of services agreeing with the configurations that reference them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::peer_bin;
use crate::dashboards::{repo, tool};

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn compose() -> Value {
    yaml(&repo().join("deploy/docker-compose.yml"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// A service's bind mounts from the repository: (host path, container path, read-only).
fn bind_mounts(service: &Value) -> Vec<(PathBuf, String, bool)> {
    let deploy = repo().join("deploy");
    service["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .filter(|v| v.starts_with('.'))
        .map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            (
                deploy.join(parts[0]),
                parts[1].to_string(),
                parts
                    .get(2)
                    .is_some_and(|o| o.split(',').any(|o| o == "ro")),
            )
        })
        .collect()
}

/// The repository file behind `container_path`, through the service's bind mounts.
fn host_path(service: &Value, container_path: &str) -> PathBuf {
    bind_mounts(service)
        .into_iter()
        .filter_map(|(host, inside, _)| {
            let rest = container_path
                .strip_prefix(&inside)?
                .trim_start_matches('/');
            Some(if rest.is_empty() {
                host
            } else {
                host.join(rest)
            })
        })
        .next()
        .unwrap_or_else(|| panic!("{container_path} is not mounted from the repository"))
}

/// The value of `--flag=value` in a service's command.
fn flag(service: &Value, name: &str) -> String {
    service["command"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str()?.strip_prefix(&format!("{name}=")))
        .next()
        .unwrap_or_else(|| panic!("no {name} in {service}"))
        .to_string()
}

fn port_of(address: &str) -> u16 {
    address.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn the_compose_file_follows_the_compose_specification() {
    let out = run(Command::new(tool("check-jsonschema"))
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(repo().join("deploy/docker-compose.yml")));
    assert!(out.contains("validation done"), "{out}");
}

#[test]
fn compose_mounts_exist_read_only_and_their_configs_check() {
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    for (name, service) in services {
        for (host, _, read_only) in bind_mounts(service) {
            assert!(
                host.exists(),
                "{name} mounts {} which is missing",
                host.display()
            );
            assert!(read_only, "{name} mounts {} writable", host.display());
        }
        // Only Grafana's and Quiver's ports are published.
        if service.get("ports").is_some() {
            assert!(
                ["quiver", "grafana"].contains(&name.as_str()),
                "{name} publishes ports"
            );
        }
        assert!(
            service["restart"].is_string(),
            "{name} has no restart policy"
        );
        assert_eq!(
            service["networks"],
            serde_json::json!(["monitoring"]),
            "{name}"
        );
    }
    // Named volumes for every store of state.
    for volume in ["quiver-data", "grafana-data", "alertmanager-data"] {
        assert!(compose["volumes"].get(volume).is_some(), "volume {volume}");
    }

    let quiver = &services["quiver"];
    let config = host_path(quiver, &flag(quiver, "--config.file"));
    let out = run(Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["check", "config"])
        .arg(&config));
    assert!(out.contains("SUCCESS"), "{out}");

    let alertmanager = &services["alertmanager"];
    let am_config = host_path(alertmanager, &flag(alertmanager, "--config.file"));
    run(Command::new(peer_bin("amtool"))
        .args(["check-config"])
        .arg(&am_config));

    let grafana = &services["grafana"];
    let provisioning = host_path(grafana, "/etc/grafana/provisioning");
    assert!(provisioning.join("datasources/quiver.yml").exists());
    assert!(provisioning.join("dashboards/quiver.yml").exists());
}

#[test]
fn every_deployment_config_passes_quiver_check_config() {
    for config in [
        "deploy/prometheus.yml",
        "deploy/dev/quiver.yml",
        "deploy/prod/quiver.yml",
        "deploy/prod/query.yml",
    ] {
        let out = run(Command::new(env!("CARGO_BIN_EXE_quiver"))
            .args(["check", "config"])
            .arg(repo().join(config)));
        assert!(out.contains("SUCCESS"), "{config}: {out}");
    }
}

/// The ports the stack's images listen on by default.
const EXPORTER_PORTS: [(&str, u16); 5] = [
    ("node-exporter", 9100),
    ("mysqld-exporter", 9104),
    ("postgres-exporter", 9187),
    ("redis-exporter", 9121),
    ("alertmanager", 9093),
];

#[test]
fn service_names_and_ports_agree_with_the_configs() {
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    let ports: BTreeMap<&str, u16> = EXPORTER_PORTS.into_iter().collect();
    let check_target = |target: &str, whence: &str| {
        let (host, port) = target.rsplit_once(':').expect("host:port");
        if host == "localhost" {
            return;
        }
        assert!(services.contains_key(host), "{whence}: no service {host}");
        assert_eq!(
            ports.get(host),
            Some(&port.parse().unwrap()),
            "{whence}: {target}"
        );
    };

    let dev = repo().join("deploy/dev");
    let config = yaml(&dev.join("quiver.yml"));
    for am in config["alerting"]["alertmanagers"].as_array().unwrap() {
        for group in am["static_configs"].as_array().unwrap() {
            for target in group["targets"].as_array().unwrap() {
                check_target(target.as_str().unwrap(), "alerting");
            }
        }
    }
    let mut file_sd_targets = 0;
    for job in config["scrape_configs"].as_array().unwrap() {
        for group in job["static_configs"].as_array().into_iter().flatten() {
            for target in group["targets"].as_array().unwrap() {
                check_target(target.as_str().unwrap(), "static_configs");
            }
        }
        for sd in job["file_sd_configs"].as_array().into_iter().flatten() {
            for file in sd["files"].as_array().unwrap() {
                for group in yaml(&dev.join(file.as_str().unwrap())).as_array().unwrap() {
                    for target in group["targets"].as_array().unwrap() {
                        check_target(target.as_str().unwrap(), "file_sd");
                        file_sd_targets += 1;
                    }
                }
            }
        }
    }
    assert!(file_sd_targets >= 4, "{file_sd_targets}");

    // Grafana's datasources reach Quiver's HTTP and PostgreSQL ports, with the password
    // Quiver's config gives the user.
    let quiver = &services["quiver"];
    let http = port_of(&flag(quiver, "--web.listen-address"));
    let pg = port_of(&flag(quiver, "--postgres.listen-address"));
    assert!(
        quiver["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str() == Some(&format!("{http}:{http}")))
    );
    let datasources = yaml(&repo().join("provisioning/datasources/quiver.yml"));
    let by_uid = |uid: &str| {
        datasources["datasources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["uid"] == uid)
            .unwrap_or_else(|| panic!("datasource {uid}"))
            .clone()
    };
    assert_eq!(
        by_uid("quiver-prom")["url"],
        format!("http://quiver:{http}")
    );
    assert_eq!(by_uid("quiver-sql")["url"], format!("quiver:{pg}"));
    assert_eq!(by_uid("quiver-sql")["jsonData"]["database"], "quiver");
    let user = &config["postgres"]["users"][0];
    let password = std::fs::read_to_string(dev.join(user["password_file"].as_str().unwrap()))
        .unwrap()
        .trim()
        .to_string();
    let env = &services["grafana"]["environment"];
    assert_eq!(env["QUIVER_PG_USER"], user["name"]);
    assert_eq!(env["QUIVER_PG_PASSWORD"].as_str(), Some(password.as_str()));
}

/// Every document of a multi-document YAML file.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let out = run(Command::new(tool("kubernetes-validate"))
        .arg("--strict")
        .args(&files));
    assert!(!out.contains("ERROR"), "{out}");
}

#[test]
fn kubernetes_config_maps_hold_the_repository_files() {
    run(Command::new(tool("python"))
        .arg(repo().join("scripts/k8s-configmaps.py"))
        .arg("--check"));
    let dir = repo().join("deploy/kubernetes");
    let maps: BTreeMap<String, Value> = yaml_documents(&dir.join("configmaps.yaml"))
        .into_iter()
        .map(|m| (m["metadata"]["name"].as_str().unwrap().to_string(), m))
        .collect();
    let manifests = yaml_documents(&dir.join("quiver.yaml"));
    let statefulset = manifests
        .iter()
        .find(|m| m["kind"] == "StatefulSet")
        .expect("a StatefulSet");
    let pod = &statefulset["spec"]["template"]["spec"];
    // The projected rules volume places every rule file of the repository, by path.
    let rules_volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "rules")
        .expect("rules volume");
    let mut placed: Vec<(String, String)> = Vec::new();
    for source in rules_volume["projected"]["sources"].as_array().unwrap() {
        let map = &maps[source["configMap"]["name"].as_str().unwrap()];
        for item in source["configMap"]["items"].as_array().unwrap() {
            let key = item["key"].as_str().unwrap();
            let path = item["path"].as_str().unwrap().to_string();
            let data = map["data"][key]
                .as_str()
                .unwrap_or_else(|| panic!("no key {key}"));
            let file = std::fs::read_to_string(repo().join("rules").join(&path)).unwrap();
            assert_eq!(data.trim_end(), file.trim_end(), "{path}");
            placed.push((path, key.to_string()));
        }
    }
    let mut in_repo = Vec::new();
    let mut folders = vec![repo().join("rules")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(repo().join("rules"))
                .unwrap()
                .to_path_buf();
            if path.is_dir() && relative != Path::new("tests") {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "yml") {
                in_repo.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    in_repo.sort();
    let mut placed_paths: Vec<String> = placed.iter().map(|(p, _)| p.clone()).collect();
    placed_paths.sort();
    assert_eq!(
        placed_paths, in_repo,
        "rule files placed by the StatefulSet"
    );

    // The configuration the pod runs is the repository's deploy/prod/quiver.yml, and the
    // secrets it names are mounted where it looks for them.
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(args.contains(&"--config.file=/etc/quiver/deploy/prod/quiver.yml"));
    let prod = std::fs::read_to_string(repo().join("deploy/prod/quiver.yml")).unwrap();
    assert_eq!(
        maps["quiver-config-prod"]["data"]["quiver.yml"]
            .as_str()
            .unwrap()
            .trim_end(),
        prod.trim_end()
    );
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    let config = yaml(&repo().join("deploy/prod/quiver.yml"));
    for file in [
        config["postgres"]["users"][0]["password_file"]
            .as_str()
            .unwrap(),
        config["postgres"]["tls"]["cert_file"].as_str().unwrap(),
        config["postgres"]["tls"]["key_file"].as_str().unwrap(),
    ] {
        let folder = Path::new(file).parent().unwrap().to_str().unwrap();
        assert!(
            mounts.contains(&folder),
            "{file} is not under a mount: {mounts:?}"
        );
    }
}
