//! `GET|POST /api/v1/query_exemplars`: the exemplars of the series a PromQL query selects,
//! in Prometheus's shape (Grafana links a panel's points to traces with it).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use promql_parser::parser::{Expr as PromExpr, VectorSelector};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::{Value, json};

use crate::model::Selector;
use crate::query::promql::aggregates::PromFloat;
use crate::query::promql::planner::to_selector;

use super::AppState;
use super::error::ApiError;
use super::meta::respond;
use super::params::Params;

pub async fn query_exemplars(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let params = Params::read(query, &headers, body).await?;
        let text = params.require("query")?;
        let start = params.time_ms("start", i64::MIN)?;
        let end = params.time_ms("end", i64::MAX)?;
        if end < start {
            return Err(ApiError::bad_data(
                "invalid parameter \"end\": end timestamp must not be before start timestamp",
            ));
        }
        let expr = promql_parser::parser::parse(text)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"query\": {e}")))?;
        let selectors = selectors_of(&expr);
        let found = state.storage.exemplars().select(&selectors, start, end);
        let data: Vec<Value> = found
            .into_iter()
            .map(|(series, exemplars)| {
                let exemplars: Vec<Value> = exemplars
                    .iter()
                    .map(|e| {
                        json!({
                            "labels": e.labels,
                            "value": PromFloat(e.value).to_string(),
                            "timestamp": e.timestamp_ms as f64 / 1000.0,
                        })
                    })
                    .collect();
                json!({ "seriesLabels": series.as_ref(), "exemplars": exemplars })
            })
            .collect();
        Ok(Value::Array(data))
    }
    .await;
    respond(result)
}

/// Every vector selector of the query (those inside range selectors and subqueries too),
/// as storage's selectors.
fn selectors_of(expr: &PromExpr) -> Vec<Selector> {
    struct Collect(Vec<Selector>);
    impl ExprVisitor for Collect {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, expr: &PromExpr) -> Result<bool, Self::Error> {
            let vs: Option<&VectorSelector> = match expr {
                PromExpr::VectorSelector(vs) => Some(vs),
                PromExpr::MatrixSelector(ms) => Some(&ms.vs),
                _ => None,
            };
            if let Some(vs) = vs {
                self.0.push(to_selector(vs));
            }
            Ok(true)
        }
    }
    let mut collect = Collect(Vec::new());
    let _ = walk_expr(&mut collect, expr);
    collect.0
}
