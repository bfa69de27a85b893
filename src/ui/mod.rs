//! The web UI: the query and SQL consoles, the status pages and the cardinality explorer,
//! built from `web/ui` (a Preact app bundled by esbuild; `scripts/build-ui.sh`) and embedded
//! in the binary, so the UI works without internet access or Node.js. The pages only call
//! the public HTTP API; this module serves the page for each of the UI's paths, the assets,
//! and Prometheus's redirects (`/` and `/graph` to `/query`).

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

#[derive(rust_embed::RustEmbed)]
#[folder = "web/ui/dist/"]
struct Assets;

/// The paths the UI answers with its page; the page picks what to show from the path.
pub const PAGES: &[&str] = &[
    "/query",
    "/sql",
    "/alerts",
    "/targets",
    "/service-discovery",
    "/rules",
    "/tsdb-status",
    "/cardinality",
    "/config",
    "/flags",
    "/status",
];

/// The UI's routes. `path_prefix` is the path of `--web.external-url` (empty or `/prefix`):
/// where the browser sees the server, which the page's links and API calls start with.
pub fn router(path_prefix: &str) -> Router {
    // Built once; each answer shares its bytes.
    let page = axum::body::Bytes::from(page(path_prefix));
    let home = format!("{path_prefix}/query");
    let mut router = Router::new()
        .route(
            "/",
            get({
                let home = home.clone();
                move || async move { Redirect::to(&home) }
            }),
        )
        .route(
            "/graph",
            get(move |RawQuery(query): RawQuery| async move {
                match query {
                    Some(q) => Redirect::to(&format!("{home}?{q}")),
                    None => Redirect::to(&home),
                }
            }),
        )
        .route("/assets/{*file}", get(asset))
        .route(
            "/favicon.svg",
            get(|headers: HeaderMap| async move { embedded("favicon.svg", &headers) }),
        );
    for path in PAGES {
        let page = page.clone();
        router = router.route(path, get(move || async move { page_response(&page) }));
    }
    router.layer(tower_http::compression::CompressionLayer::new().gzip(true))
}

/// `index.html` with the path prefix written in (HTML-escaped).
fn page(path_prefix: &str) -> String {
    let template = Assets::get("index.html")
        .map(|f| String::from_utf8_lossy(&f.data).into_owned())
        .unwrap_or_else(|| "<!doctype html><p>The web UI was not built into this binary: run scripts/build-ui.sh.</p>".to_owned());
    template.replace("__QUIVER_PATH_PREFIX__", &escape_html(path_prefix))
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn page_response(page: &axum::body::Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        page.clone(),
    )
        .into_response()
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    embedded(&format!("assets/{file}"), &headers)
}

/// An embedded file, revalidated by its hash (`ETag`) so a new binary's assets are fetched.
fn embedded(name: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(name) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut response = file.data.into_owned().into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    response
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("txt") => "text/plain; charset=utf-8",
        Some("map") | Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// The path of `--web.external-url` without its trailing slash: `""` or `/prefix`.
pub fn path_prefix(external_url: &str) -> String {
    url::Url::parse(external_url)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// `--web.route-prefix` normalized to `/` or `/prefix`; by default the external URL's path.
pub fn route_prefix(flag: Option<&str>, external_url: &str) -> anyhow::Result<String> {
    let prefix = match flag {
        Some(p) => p.trim_end_matches('/').to_owned(),
        None => path_prefix(external_url),
    };
    if prefix.contains(['{', '}', '*', '?', '#']) {
        anyhow::bail!("--web.route-prefix {prefix:?}: a path may not hold {{, }}, *, ? or #");
    }
    Ok(match prefix.as_str() {
        "" => "/".to_owned(),
        p if p.starts_with('/') => prefix,
        p => format!("/{p}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_the_escaped_prefix() {
        let html = page("/pro\"m");
        assert!(html.contains("content=\"/pro&quot;m\""), "{html}");
        assert!(html.contains("/pro&quot;m/assets/app.js"));
        assert!(!html.contains("__QUIVER_PATH_PREFIX__"));
    }

    #[test]
    fn external_url_paths() {
        assert_eq!(path_prefix("http://127.0.0.1:9090"), "");
        assert_eq!(path_prefix("http://h:9090/"), "");
        assert_eq!(path_prefix("https://h/prom/"), "/prom");
        assert_eq!(path_prefix("https://h/a/b"), "/a/b");
    }

    #[test]
    fn route_prefixes() {
        let prefix = |flag, url| route_prefix(flag, url).unwrap();
        assert_eq!(prefix(None, "http://h:9090"), "/");
        assert_eq!(prefix(None, "http://h/prom/"), "/prom");
        assert_eq!(prefix(Some("/"), "http://h/prom/"), "/");
        assert_eq!(prefix(Some("q/"), "http://h"), "/q");
        assert!(route_prefix(Some("/{x}"), "http://h").is_err());
    }

    #[test]
    fn every_page_and_asset_is_embedded() {
        for name in [
            "index.html",
            "favicon.svg",
            "assets/app.js",
            "assets/app.css",
        ] {
            assert!(Assets::get(name).is_some(), "{name} is not embedded");
        }
        assert_eq!(
            content_type("assets/app.js"),
            "text/javascript; charset=utf-8"
        );
    }
}
