//! What the web configuration asks of every request before it reaches a route: the response
//! headers, the rate limit and HTTP basic authentication against bcrypt hashes, as
//! exporter-toolkit's handler does. Verdicts are cached by a SHA-256 of user, hash and
//! password, so a dashboard's many requests pay bcrypt once; an unknown user is checked
//! against a decoy hash, so the answer takes as long as for a known one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::WebConfigFile;
use super::config::RateLimit;

/// A bcrypt hash (cost 10) of a password nobody has: unknown users are checked against it.
const DECOY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Whether `hash` is a bcrypt hash Go's `bcrypt.Cost` accepts.
pub fn is_bcrypt_hash(hash: &str) -> bool {
    hash.parse::<bcrypt::HashParts>()
        .is_ok_and(|parts| (4..=31).contains(&parts.get_cost()))
}

/// The bcrypt verdicts already reached, and a bound on how many run at once.
pub struct Verdicts {
    cache: moka::future::Cache<[u8; 32], bool>,
    running: Arc<Semaphore>,
}

impl Verdicts {
    pub fn new() -> Verdicts {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Verdicts {
            cache: moka::future::Cache::builder()
                .max_capacity(4096)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            running: Arc::new(Semaphore::new(cores)),
        }
    }

    /// Whether `password` matches `hash`; bcrypt runs on a blocking thread, once for
    /// concurrent requests with the same credentials.
    async fn verify(&self, user: &str, hash: &str, password: &[u8]) -> bool {
        let mut digest = Sha256::new();
        for part in [user.as_bytes(), hash.as_bytes(), password] {
            digest.update((part.len() as u64).to_le_bytes());
            digest.update(part);
        }
        let key: [u8; 32] = digest.finalize().into();
        // The common case, a dashboard's next request: no copies, no bcrypt.
        if let Some(verdict) = self.cache.get(&key).await {
            return verdict;
        }
        let (hash, password, running) = (hash.to_owned(), password.to_vec(), self.running.clone());
        self.cache
            .get_with(key, async move {
                let Ok(_slot) = running.acquire_owned().await else {
                    return false;
                };
                tokio::task::spawn_blocking(move || {
                    bcrypt::verify(password, &hash).unwrap_or(false)
                })
                .await
                .unwrap_or(false)
            })
            .await
    }
}

impl Default for Verdicts {
    fn default() -> Self {
        Verdicts::new()
    }
}

/// `rate_limit`: a token bucket refilled with one request per interval, up to `burst`.
pub struct Limiter {
    every: Duration,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Limiter {
    pub fn new(limit: &RateLimit) -> Option<Limiter> {
        (limit.interval > Duration::ZERO).then(|| Limiter {
            every: limit.interval,
            burst: f64::from(limit.burst),
            state: Mutex::new((f64::from(limit.burst), Instant::now())),
        })
    }

    fn allow(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(state.1).as_secs_f64() / self.every.as_secs_f64();
        state.0 = (state.0 + refill).min(self.burst);
        state.1 = now;
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The middleware: headers on every answer, then the rate limit, then basic authentication
/// unless the path is excluded or no users are configured.
pub async fn guard(
    State(web): State<Arc<WebConfigFile>>,
    request: Request,
    next: Next,
) -> Response {
    let active = web.current();
    let mut response = if active.limiter.as_ref().is_some_and(|l| !l.allow()) {
        (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response()
    } else if active.config.basic_auth_users.is_empty()
        || active
            .config
            .auth_excluded_paths
            .iter()
            .any(|p| p == request.uri().path())
        || authenticated(&web, &active.config.basic_auth_users, request.headers()).await
    {
        next.run(request).await
    } else {
        let mut response = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        response
    };
    for (name, value) in &active.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

async fn authenticated(
    web: &WebConfigFile,
    users: &std::collections::BTreeMap<String, String>,
    headers: &HeaderMap,
) -> bool {
    let Some((user, password)) = basic_credentials(headers) else {
        return false;
    };
    let known = users.get(&user);
    let hash = known.map_or(DECOY_HASH, String::as_str);
    let matches = web.verdicts.verify(&user, hash, &password).await;
    known.is_some() && matches
}

/// The user and password of an `Authorization: Basic` header (Go's `ParseBasicAuth`).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_hashes_are_recognised() {
        assert!(is_bcrypt_hash(DECOY_HASH));
        assert!(!is_bcrypt_hash("secret"));
        assert!(!is_bcrypt_hash(&DECOY_HASH.replace("$10$", "$99$")));
    }

    #[test]
    fn basic_credentials_as_go_parses_them() {
        let mut headers = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode("alice:pa:ss");
        headers.insert(
            header::AUTHORIZATION,
            format!("bAsIc {token}").parse().unwrap(),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("alice".to_owned(), b"pa:ss".to_vec()))
        );
        let token = base64::engine::general_purpose::STANDARD.encode("alice");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {token}").parse().unwrap(),
        );
        assert_eq!(basic_credentials(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert_eq!(basic_credentials(&headers), None);
    }

    #[tokio::test]
    async fn verdicts_are_bcrypt_and_cached() {
        let hash = bcrypt::hash("right", 4).unwrap();
        let verdicts = Verdicts::new();
        assert!(verdicts.verify("alice", &hash, b"right").await);
        assert!(!verdicts.verify("alice", &hash, b"wrong").await);
        assert!(verdicts.verify("alice", &hash, b"right").await);
        verdicts.cache.run_pending_tasks().await;
        assert_eq!(verdicts.cache.entry_count(), 2);
    }

    #[test]
    fn the_limiter_allows_a_burst_then_one_per_interval() {
        let limit = RateLimit {
            burst: 2,
            interval: Duration::from_secs(3600),
        };
        let limiter = Limiter::new(&limit).unwrap();
        assert!(limiter.allow() && limiter.allow());
        assert!(!limiter.allow());
        assert!(Limiter::new(&RateLimit::default()).is_none());
    }
}
