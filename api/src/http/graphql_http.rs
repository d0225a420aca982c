//! GraphQL over plain HTTP, per the GraphQL-over-HTTP specification:
//! POST for every operation, GET for queries, and answers in the media
//! type the client accepts.

use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use async_graphql::Executor;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, RawQuery, State};
use axum::http::header::{ACCEPT, ALLOW, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::client_ip::ClientIp;
use super::{refuse, AppState};
use crate::error::ErrorCode;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// POST /graphql. The body is read through axum's `Bytes` extractor, which
/// honours the body limit (async-graphql's own extractor would read any size),
/// and must be one JSON operation: batches are refused.
pub(super) async fn post(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<ClientIp>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::BadUserInput,
                format!(
                    "request body is larger than {} bytes",
                    state.limits.max_body_bytes
                ),
            )
        }
        Err(rejection) => {
            return refuse(
                rejection.status(),
                ErrorCode::BadUserInput,
                rejection.body_text(),
            )
        }
    };
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let message = if body.first() == Some(&b'[') {
                "batched requests are not accepted; send one operation per request".to_owned()
            } else {
                format!("request body is not a GraphQL request: {e}")
            };
            return refuse(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, message);
        }
    };
    execute(&state, client, &headers, request).await
}

/// GET /graphql?query=…&variables=…&operationName=… (not a WebSocket
/// upgrade): queries only. A GET must not change anything, so mutations
/// are refused with 405 and `Allow: POST`.
pub(super) async fn get(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<ClientIp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let raw = raw.unwrap_or_default();
    if raw.len() > state.limits.max_body_bytes {
        return refuse(
            StatusCode::URI_TOO_LONG,
            ErrorCode::BadUserInput,
            format!(
                "the query string is longer than {} bytes; POST the operation instead",
                state.limits.max_body_bytes
            ),
        );
    }
    let request = match request_from_query(&raw) {
        Ok(request) => request,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, message),
    };
    match state.gateway.operation_type(&request) {
        Some(OperationType::Mutation) => {
            let mut response = refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::BadUserInput,
                "mutations are not run over GET; POST them".into(),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        Some(OperationType::Subscription) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                "subscriptions run over a WebSocket (graphql-transport-ws) on this path".into(),
            )
        }
        // A document that does not parse or names no single operation is
        // reported by the executor, as over POST.
        Some(OperationType::Query) | None => {}
    }
    execute(&state, client, &headers, request).await
}

/// Any other method on /graphql.
pub(super) async fn other_method() -> Response {
    let mut response = refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::BadUserInput,
        "use POST for GraphQL operations, GET for queries, or a WebSocket for subscriptions".into(),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, POST"));
    response
}

fn request_from_query(raw: &str) -> Result<async_graphql::Request, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Params {
        query: Option<String>,
        operation_name: Option<String>,
        variables: Option<String>,
        extensions: Option<String>,
    }
    let params: Params = serde_urlencoded::from_str(raw)
        .map_err(|e| format!("the query string is malformed: {e}"))?;
    let Some(query) = params.query.filter(|q| !q.trim().is_empty()) else {
        return Err(
            "GET /graphql needs a `query` parameter (or a WebSocket upgrade, for subscriptions)"
                .into(),
        );
    };
    let mut request = async_graphql::Request::new(query);
    if let Some(name) = params.operation_name.filter(|n| !n.is_empty()) {
        request = request.operation_name(name);
    }
    if let Some(variables) = params.variables.filter(|v| !v.is_empty()) {
        let variables: serde_json::Value = serde_json::from_str(&variables)
            .map_err(|e| format!("`variables` is not JSON: {e}"))?;
        if !variables.is_object() && !variables.is_null() {
            return Err("`variables` must be a JSON object".into());
        }
        request = request.variables(async_graphql::Variables::from_json(variables));
    }
    if let Some(extensions) = params.extensions.filter(|e| !e.is_empty()) {
        // Apollo's persisted-query hash and the like: accepted, not used.
        serde_json::from_str::<serde_json::Value>(&extensions)
            .map_err(|e| format!("`extensions` is not JSON: {e}"))?;
    }
    Ok(request)
}

pub(super) async fn execute(
    state: &AppState,
    client: ClientIp,
    headers: &HeaderMap,
    request: async_graphql::Request,
) -> Response {
    if let Some(name) = &request.operation_name {
        tracing::Span::current().record("operation", name.as_str());
    }
    let caller = state.caller_of(headers).await;
    let response = state
        .gateway
        .execute(request.data(caller).data(client))
        .await;
    answer(response, headers)
}

/// The response in the media type the client prefers. With
/// `application/graphql-response+json` a request that never ran (it did
/// not parse, validate or pass the limits) is a 400; with
/// `application/json` (and for clients that say nothing) every answer is
/// a 200, as such clients expect.
fn answer(response: async_graphql::Response, headers: &HeaderMap) -> Response {
    let modern = prefers_graphql_response_json(headers);
    // Errors raised while running carry a path; errors about the request
    // itself, before anything ran, do not.
    let never_ran = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let status = if modern && never_ran {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = match serde_json::to_vec(&response) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "could not serialise a response");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error".into(),
            );
        }
    };
    let media = if modern { GRAPHQL_RESPONSE_JSON } else { JSON };
    let mut http = (status, body).into_response();
    http.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(media));
    http.headers_mut().extend(response.http_headers);
    http
}

/// Whether the Accept header asks for the GraphQL media type at least as
/// much as for plain JSON.
fn prefers_graphql_response_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(ACCEPT).and_then(|a| a.to_str().ok()) else {
        return false;
    };
    let quality = |wanted: &str| {
        accept
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.split(';').map(str::trim);
                let media = pieces.next()?;
                if !media.eq_ignore_ascii_case(wanted) {
                    return None;
                }
                let q = pieces
                    .find_map(|p| p.strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                Some(q)
            })
            .fold(None, |best: Option<f32>, q| {
                Some(best.map_or(q, |b| b.max(q)))
            })
    };
    match (quality(GRAPHQL_RESPONSE_JSON), quality(JSON)) {
        (Some(modern), Some(plain)) => modern > 0.0 && modern >= plain,
        (Some(modern), None) => modern > 0.0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_media_type_follows_the_accept_header() {
        assert!(!prefers_graphql_response_json(&HeaderMap::new()));
        assert!(!prefers_graphql_response_json(&accept("application/json")));
        assert!(!prefers_graphql_response_json(&accept("*/*")));
        assert!(prefers_graphql_response_json(&accept(
            "application/graphql-response+json, application/json;q=0.9"
        )));
        assert!(!prefers_graphql_response_json(&accept(
            "application/graphql-response+json;q=0.5, application/json"
        )));
        assert!(prefers_graphql_response_json(&accept(
            "application/graphql-response+json"
        )));
    }

    #[test]
    fn query_strings_become_requests() {
        let request = request_from_query(
            "query=query%20Q(%24n%3AInt)%7Bme%7Bid%7D%7D&operationName=Q&variables=%7B%22n%22%3A1%7D",
        )
        .unwrap();
        assert_eq!(request.query, "query Q($n:Int){me{id}}");
        assert_eq!(request.operation_name.as_deref(), Some("Q"));
        assert!(request_from_query("")
            .unwrap_err()
            .contains("needs a `query`"));
        assert!(request_from_query("query=%7Bme%7D&variables=nope")
            .unwrap_err()
            .contains("variables"));
        assert!(request_from_query("query=%7Bme%7D&variables=%5B1%5D")
            .unwrap_err()
            .contains("object"));
    }
}
