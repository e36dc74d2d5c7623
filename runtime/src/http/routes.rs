//! The endpoints: what each request gets, as a [`Response`] value, from
//! the runtime's shared state. No socket and no hyper type here beyond the
//! method and status codes, so every answer can be checked without a
//! server.

use hyper::{Method, StatusCode};
use serde_json::json;

use super::query::{self, QueryError};
use crate::runtime::RuntimeShared;
use crate::sync::{Arc, Weak};

/// The Prometheus text exposition format, version 0.0.4.
pub(super) const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
/// JSON.
pub(super) const JSON: &str = "application/json";
/// JSON lines: one JSON value a line.
pub(super) const JSON_LINES: &str = "application/x-ndjson";

/// The methods every endpoint allows.
pub(super) const ALLOWED: &str = "GET, HEAD";

/// An endpoint of the live export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Metrics,
    Snapshot,
    Journal,
    Health,
    Ready,
}

impl Endpoint {
    const ALL: [Endpoint; 5] =
        [Endpoint::Metrics, Endpoint::Snapshot, Endpoint::Journal, Endpoint::Health, Endpoint::Ready];

    fn path(self) -> &'static str {
        match self {
            Endpoint::Metrics => "/metrics",
            Endpoint::Snapshot => "/snapshot.json",
            Endpoint::Journal => "/journal",
            Endpoint::Health => "/healthz",
            Endpoint::Ready => "/readyz",
        }
    }

    fn at(path: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|endpoint| endpoint.path() == path)
    }
}

/// An answer, before it becomes an HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Response {
    pub(super) status: StatusCode,
    pub(super) content_type: &'static str,
    pub(super) body: Vec<u8>,
}

impl Response {
    fn new(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Self {
        Response { status, content_type, body }
    }

    fn json(status: StatusCode, value: &serde_json::Value) -> Self {
        let mut body = value.to_string().into_bytes();
        body.push(b'\n');
        Response::new(status, JSON, body)
    }

    /// `{"error": "<text>"}` with `status`.
    fn error(status: StatusCode, text: impl std::fmt::Display) -> Self {
        Response::json(status, &json!({ "error": text.to_string() }))
    }
}

impl From<QueryError> for Response {
    fn from(err: QueryError) -> Self {
        Response::error(StatusCode::BAD_REQUEST, err)
    }
}

/// The answer to `method path?query`.
pub(super) fn respond(
    runtime: &Weak<RuntimeShared>,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Response {
    let Some(endpoint) = Endpoint::at(path) else {
        let endpoints: Vec<&str> = Endpoint::ALL.iter().map(|e| e.path()).collect();
        return Response::error(
            StatusCode::NOT_FOUND,
            format_args!("no endpoint at {path}; the endpoints are {}", endpoints.join(", ")),
        );
    };
    if method != Method::GET && method != Method::HEAD {
        return Response::error(
            StatusCode::METHOD_NOT_ALLOWED,
            format_args!("method {method} is not allowed on {path}: use GET or HEAD"),
        );
    }
    let Some(runtime) = runtime.upgrade() else {
        return Response::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "stopped", "reason": "the runtime has stopped" }),
        );
    };
    answer(&runtime, endpoint, query).unwrap_or_else(Response::from)
}

/// What `endpoint` answers, or why its query string was refused.
fn answer(
    runtime: &Arc<RuntimeShared>,
    endpoint: Endpoint,
    query: Option<&str>,
) -> Result<Response, QueryError> {
    if endpoint != Endpoint::Journal {
        query::none(endpoint.path(), query)?;
    }
    Ok(match endpoint {
        Endpoint::Metrics => {
            Response::new(StatusCode::OK, PROMETHEUS, runtime.snapshot().prometheus().into_bytes())
        }
        Endpoint::Snapshot => match serde_json::to_vec(&runtime.snapshot()) {
            Ok(body) => Response::new(StatusCode::OK, JSON, body),
            Err(err) => unserializable("snapshot", &err),
        },
        Endpoint::Journal => {
            let params = query::journal(query)?;
            let mut body = Vec::new();
            for signal in runtime.observer().journal().after(params.since, params.limit) {
                if let Err(err) = serde_json::to_writer(&mut body, &signal) {
                    return Ok(unserializable("journal entry", &err));
                }
                body.push(b'\n');
            }
            Response::new(StatusCode::OK, JSON_LINES, body)
        }
        Endpoint::Health => Response::json(StatusCode::OK, &json!({ "status": "alive" })),
        Endpoint::Ready => match not_ready(runtime) {
            None => Response::json(StatusCode::OK, &json!({ "status": "ready" })),
            Some(reason) => Response::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "status": "not ready", "reason": reason }),
            ),
        },
    })
}

/// Why the runtime is not ready for traffic, if it is not: shutting down,
/// or a supervisor gave up and its escalation reached the runtime root
/// (its subtree stopped and top-level cells are not restarted).
fn not_ready(runtime: &RuntimeShared) -> Option<String> {
    if runtime.is_shutting_down() {
        return Some("the runtime is shutting down".to_owned());
    }
    let escalations = runtime.escalations();
    let last = escalations.last()?;
    Some(format!(
        "{} escalation{} reached the runtime root; the latest: supervisor {} gave up when {} exited past {} restarts in {:?}",
        escalations.len(),
        if escalations.len() == 1 { "" } else { "s" },
        last.supervisor,
        last.child,
        last.max_restarts,
        last.period,
    ))
}

/// A 500 for a value serde_json refused (a map with keys that are not
/// strings would be one): logged, and said.
fn unserializable(what: &str, err: &serde_json::Error) -> Response {
    tracing::error!(%err, "the live export could not serialize a {what}");
    Response::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        format_args!("the {what} could not be serialized: {err}"),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Runtime;

    fn get(runtime: &Runtime, path: &str, query: Option<&str>) -> Response {
        respond(&Arc::downgrade(runtime.shared()), &Method::GET, path, query)
    }

    fn json_of(response: &Response) -> serde_json::Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    #[test]
    fn unknown_paths_get_404_naming_the_endpoints() {
        let runtime = Runtime::builder().worker_threads(1).build().unwrap();
        let response = get(&runtime, "/metric", None);
        assert_eq!((response.status, response.content_type), (StatusCode::NOT_FOUND, JSON));
        assert_eq!(
            json_of(&response)["error"],
            "no endpoint at /metric; the endpoints are /metrics, /snapshot.json, /journal, /healthz, /readyz"
        );
        runtime.shutdown(Duration::from_secs(1));
    }

    #[test]
    fn methods_other_than_get_and_head_get_405() {
        let runtime = Runtime::builder().worker_threads(1).build().unwrap();
        let response = respond(&Arc::downgrade(runtime.shared()), &Method::POST, "/healthz", None);
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(json_of(&response)["error"], "method POST is not allowed on /healthz: use GET or HEAD");
        let head = respond(&Arc::downgrade(runtime.shared()), &Method::HEAD, "/healthz", None);
        assert_eq!(head.status, StatusCode::OK);
        runtime.shutdown(Duration::from_secs(1));
    }

    #[test]
    fn a_query_on_an_endpoint_without_parameters_gets_400() {
        let runtime = Runtime::builder().worker_threads(1).build().unwrap();
        let response = get(&runtime, "/snapshot.json", Some("pretty=1"));
        assert_eq!((response.status, response.content_type), (StatusCode::BAD_REQUEST, JSON));
        assert_eq!(
            json_of(&response)["error"],
            "unknown query parameter \"pretty\": /snapshot.json takes no parameters"
        );
        runtime.shutdown(Duration::from_secs(1));
    }

    #[test]
    fn a_gone_runtime_gets_503_on_every_endpoint() {
        let runtime = Runtime::builder().worker_threads(1).build().unwrap();
        let weak = Arc::downgrade(runtime.shared());
        runtime.shutdown(Duration::from_secs(1));
        for path in ["/metrics", "/snapshot.json", "/journal", "/healthz", "/readyz"] {
            let response = respond(&weak, &Method::GET, path, None);
            assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert_eq!(
                json_of(&response),
                json!({ "status": "stopped", "reason": "the runtime has stopped" })
            );
        }
    }
}
