//! Replays what Grafana's Prometheus datasource sends (`../shared/grafana-requests.json`)
//! against Quiver holding data at the contract's timestamps, and checks each answer.

use serde_json::{Value, json};

use crate::common::*;

/// 2024-06-01T00:00:00Z, the contract's time range start.
const T0: i64 = 1_717_200_000_000;

async fn seed(q: &Quiver) {
    let mut batch = Vec::new();
    for step in 0..=244 {
        let t = T0 - 60_000 + step * 15_000;
        for (job, instance) in [("api", "a:1"), ("api", "b:1"), ("node", "n:9100")] {
            batch.push(series(
                &[("__name__", "up"), ("job", job), ("instance", instance)],
                &[(t, 1.0)],
            ));
        }
        for code in ["200", "500"] {
            let v = (step * if code == "200" { 10 } else { 1 }) as f64;
            batch.push(series(
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", "a:1"),
                    ("code", code),
                ],
                &[(t, v)],
            ));
        }
        batch.push(series(
            &[
                ("__name__", "node_load1"),
                ("job", "node"),
                ("instance", "n:9100"),
            ],
            &[(t, 0.5 + (step % 7) as f64 / 10.0)],
        ));
        for (i, le) in ["0.1", "0.5", "+Inf"].iter().enumerate() {
            batch.push(series(
                &[
                    ("__name__", "http_request_duration_seconds_bucket"),
                    ("job", "api"),
                    ("le", le),
                ],
                &[(t, (step * (i as i64 + 1)) as f64)],
            ));
        }
        if batch.len() > 2000 {
            assert_eq!(
                q.remote_write(&write_request(std::mem::take(&mut batch)))
                    .await
                    .0,
                204
            );
        }
    }
    assert_eq!(q.remote_write(&write_request(batch)).await.0, 204);
}

async fn replay(q: &Quiver, request: &Value) -> (u16, Value) {
    let method = request["method"].as_str().unwrap();
    let mut url = q.url(request["path"].as_str().unwrap());
    if let Some(query) = request["encoded_query"].as_str() {
        url = format!("{url}?{query}");
    } else if let Some(query) = request["query"].as_object() {
        let encoded: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                query
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))),
            )
            .finish();
        url = format!("{url}?{encoded}");
    }
    let mut builder = if method == "POST" {
        q.client.post(&url)
    } else {
        q.client.get(&url)
    };
    if let Some(body) = request["encoded_body"].as_str() {
        builder = builder
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_string());
    }
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "{}",
        request["name"]
    );
    (status, body)
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_prometheus_datasource_requests() {
    let q = Quiver::start(&config_without_scrapes("  out_of_order_time_window: 1h")).await;
    seed(&q).await;
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/grafana-requests.json");
    let requests: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = 0;
    for request in &requests {
        let name = request["name"].as_str().unwrap();
        let (status, body) = replay(&q, request).await;
        let data = &body["data"];
        if name == "query_error_bad_data" {
            assert_eq!(status, 400, "{name}: {body}");
            assert_eq!(body["errorType"], "bad_data", "{name}");
            checked += 1;
            continue;
        }
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["status"], "success", "{name}: {body}");
        match name {
            "health_check_instant_query" => assert_eq!(
                body,
                json!({"status":"success","data":{"resultType":"scalar","result":[4,"2"]}})
            ),
            "health_check_buildinfo" => {
                assert!(data["version"].is_string());
                assert!(
                    data.get("features").is_none(),
                    "a features map would make Grafana assume Mimir"
                );
            }
            "init_recording_rules" | "alerting_rule_list" => {
                assert!(data["groups"].is_array(), "{name}")
            }
            "alerting_alerts" => assert!(data["alerts"].is_array()),
            "init_exemplar_probe" | "panel_exemplars" => assert_eq!(*data, json!([]), "{name}"),
            "editor_metric_names" => {
                let names = strings(data);
                for m in ["http_requests_total", "node_load1", "up"] {
                    assert!(names.contains(&m), "{name}: {names:?}");
                }
                assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted");
            }
            "metrics_modal_search" => assert_eq!(
                strings(data),
                vec![
                    "http_request_duration_seconds_bucket",
                    "http_requests_total"
                ]
            ),
            "editor_label_names" => {
                let names = strings(data);
                for l in ["__name__", "instance", "job", "code", "le"] {
                    assert!(names.contains(&l), "{name}: {names:?}");
                }
            }
            "autocomplete_label_names" => {
                assert_eq!(strings(data), vec!["__name__", "code", "instance", "job"])
            }
            "editor_metadata" => assert!(data.is_object(), "{name}"),
            "builder_label_values_with_match" => assert_eq!(strings(data), vec!["a:1"]),
            "variable_label_values" => assert_eq!(strings(data), vec!["api", "node"]),
            "variable_series" => {
                let series = data.as_array().unwrap();
                assert_eq!(series.len(), 2, "{name}: {data}");
                assert!(
                    series
                        .iter()
                        .all(|s| s["__name__"] == "up" && s["job"] == "api")
                );
            }
            "variable_query_result" => {
                assert_eq!(data["resultType"], "vector");
                assert_eq!(data["result"].as_array().unwrap().len(), 3);
            }
            "explore_instant_query" => {
                assert_eq!(data["resultType"], "vector");
                let value = &data["result"][0]["value"];
                assert_eq!(value[0], json!(1717203600.123));
                let v: f64 = value[1].as_str().unwrap().parse().unwrap();
                assert!((v - 11.0 / 15.0).abs() < 1e-9, "{v}");
            }
            _ => {
                // Range queries: a matrix whose points sit on the step grid.
                assert_eq!(data["resultType"], "matrix", "{name}: {body}");
                let step: f64 = request["form"]["step"]
                    .as_str()
                    .or(request["query"]["step"].as_str())
                    .unwrap()
                    .parse()
                    .unwrap();
                let start: f64 = request["form"]["start"]
                    .as_str()
                    .or(request["query"]["start"].as_str())
                    .unwrap()
                    .parse()
                    .unwrap();
                for series in data["result"].as_array().unwrap() {
                    for point in series["values"].as_array().unwrap() {
                        let t = point[0].as_f64().unwrap();
                        assert_eq!(
                            ((t - start) / step).fract(),
                            0.0,
                            "{name}: point off the step grid"
                        );
                    }
                }
            }
        }
        checked += 1;
    }
    assert_eq!(checked, requests.len());
    // Methods Grafana does not use are refused with 405, so its GET fallback works.
    let r = q
        .client
        .delete(q.url("/api/v1/query"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
}
