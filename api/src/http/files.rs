//! Files over HTTP: GraphQL multipart requests (the
//! graphql-multipart-request-spec that Apollo Upload, urql and
//! `curl -F operations=… -F map=… -F 0=@file` speak) on POST /graphql, and
//! the signed download links of `Attachment.url` on GET /files/….
//!
//! A multipart request is bounded by MAX_UPLOAD_BYTES (the file) plus
//! MAX_BODY_BYTES (its operations and map) while it streams; its file part
//! is spooled to an anonymous temporary file, never held in memory. A
//! request that announces more in its Content-Length is answered before
//! any of the body is read, so a client that waits for `100 Continue`
//! sends none of it. Otherwise the server reads and discards the body, up
//! to twice the bound in all, before it answers: a server that closes
//! with unread data makes the kernel reset the connection, and the client
//! would see the reset instead of the answer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_graphql::http::MultipartOptions;
use async_graphql::ParseRequestError;
use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{Extension, FromRequest, Path, Query, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONNECTION, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, EXPECT,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use tokio_util::compat::TokioAsyncReadCompatExt;
use tokio_util::io::StreamReader;

use super::client_ip::ClientIp;
use super::{graphql_http, refuse, AppState};
use crate::error::ErrorCode;
use crate::service::{DownloadFailure, DownloadRefusal};

/// Longest the server keeps reading an over-limit body it will discard.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// POST /graphql: multipart requests here, every other one to the JSON
/// transport (which keeps MAX_BODY_BYTES).
pub(super) async fn post(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<ClientIp>,
    request: Request,
) -> Response {
    // Taken, not cloned (as axum's HeaderMap extractor would): the JSON
    // path costs what it did before uploads.
    let (mut parts, body) = request.into_parts();
    let headers = std::mem::take(&mut parts.headers);
    let Some(content_type) = multipart_type(&headers) else {
        let body = Bytes::from_request(Request::from_parts(parts, body), &state).await;
        return graphql_http::post(State(state), Extension(client), headers, body).await;
    };
    let max_upload = state.limits.max_upload_bytes as u64;
    let limit = max_upload + state.limits.max_body_bytes as u64;
    let body = body.into_data_stream();
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(announced) = announced.filter(|n| *n > limit) {
        let waits_for_continue = headers
            .get(EXPECT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        // A client already sending gets its body read, up to twice the
        // bound; one announcing more would be reset whatever is read.
        if !waits_for_continue && announced <= 2 * limit {
            drain(body, announced).await;
        }
        return too_large(max_upload);
    }
    let limited = Limited {
        inner: body,
        seen: 0,
        limit,
        over: false,
    };
    let mut reader = StreamReader::new(limited).compat();
    let options = MultipartOptions::default().max_file_size(state.limits.max_upload_bytes);
    let parsed =
        async_graphql::http::receive_body(Some(content_type.as_str()), &mut reader, options).await;
    let request = match parsed {
        Ok(request) => request,
        Err(e) => {
            let limited = reader.into_inner().into_inner();
            if limited.over || matches!(e, ParseRequestError::PayloadTooLarge) {
                drain(limited.inner, limit).await;
                return too_large(max_upload);
            }
            // Also what a client that hung up mid-body gets (if anyone
            // reads it): nothing ran, nothing was stored.
            return refuse(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                format!("not a GraphQL multipart request: {e}"),
            );
        }
    };
    graphql_http::execute(&state, client, &headers, request).await
}

/// The Content-Type of a multipart request, if this is one.
fn multipart_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    value
        .trim_start()
        .get(..19)
        .is_some_and(|t| t.eq_ignore_ascii_case("multipart/form-data"))
        .then(|| value.to_owned())
}

fn too_large(max_upload: u64) -> Response {
    let mut response = refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BadUserInput,
        format!("the upload is too large: a file may have at most {max_upload} bytes (MAX_UPLOAD_BYTES)"),
    );
    // What is left of the body is not read: the connection cannot be reused.
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Reads and discards up to `budget` more bytes of the body (or until it
/// ends, or DRAIN_TIMEOUT), so that a client still sending gets to read the
/// answer.
async fn drain(mut body: BodyDataStream, budget: u64) {
    let discard = async {
        let mut read = 0u64;
        while let Some(Ok(chunk)) = body.next().await {
            read += chunk.len() as u64;
            if read >= budget {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard).await;
}

/// The body as it streams in, failing once more than `limit` bytes came.
struct Limited {
    inner: BodyDataStream,
    seen: u64,
    limit: u64,
    /// Set when the limit was passed.
    over: bool,
}

impl Stream for Limited {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.over {
            return Poll::Ready(Some(Err(io::Error::other("request too large"))));
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.seen += chunk.len() as u64;
                if self.seen > self.limit {
                    self.over = true;
                    return Poll::Ready(Some(Err(io::Error::other("request too large"))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(io::Error::other(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct LinkParams {
    expires: Option<i64>,
    sig: Option<String>,
}

/// GET /files/{message}/{attachment}?expires=…&sig=…: the file, if the
/// link's signature holds and it has not expired. Served as a download
/// (`Content-Disposition: attachment`) with the sniffed type and
/// `nosniff`, so an uploaded page or image can never run in this origin.
pub(super) async fn download(
    State(state): State<Arc<AppState>>,
    Path((message, attachment)): Path<(String, String)>,
    Query(params): Query<LinkParams>,
) -> Response {
    let not_found = || {
        refuse(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such file".into(),
        )
    };
    let (Ok(message), Ok(attachment), Some(expires), Some(sig)) = (
        uuid::Uuid::parse_str(&message),
        uuid::Uuid::parse_str(&attachment),
        params.expires,
        params.sig,
    ) else {
        return not_found();
    };
    let found = state
        .service
        .files()
        .download(message, attachment, expires, &sig)
        .await;
    let download = match found {
        Ok(d) => d,
        Err(DownloadFailure::Refused(DownloadRefusal::Tampered)) => {
            return refuse(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "this download link is not valid".into(),
            )
        }
        Err(DownloadFailure::Refused(DownloadRefusal::Expired)) => {
            return refuse(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "this download link has expired; read the message again for a new one".into(),
            )
        }
        Err(DownloadFailure::Refused(DownloadRefusal::Gone)) => return not_found(),
        Err(DownloadFailure::Failed(e)) => {
            tracing::error!(error = %e, "download failed");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error".into(),
            );
        }
    };
    let file = &download.attachment;
    let content_type = if file.content_type.starts_with("text/") {
        format!("{}; charset=utf-8", file.content_type)
    } else {
        file.content_type.clone()
    };
    let mut response = Body::from_stream(download.bytes).into_response();
    let headers = response.headers_mut();
    let mut set = |name, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(CONTENT_TYPE, content_type);
    set(CONTENT_LENGTH, file.size.to_string());
    set(CONTENT_DISPOSITION, content_disposition(&file.filename));
    set(X_CONTENT_TYPE_OPTIONS, "nosniff".into());
    set(CACHE_CONTROL, "private, no-store".into());
    // The link carries its signature: do not pass it on.
    set(REFERRER_POLICY, "no-referrer".into());
    set(
        axum::http::header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; sandbox".into(),
    );
    response
}

/// `attachment` with the name twice: plain ASCII for old clients, and
/// UTF-8 percent-encoded (RFC 6266, RFC 8187) for the rest.
fn content_disposition(filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_and_encoded() {
        assert_eq!(
            content_disposition("report 1.pdf"),
            "attachment; filename=\"report 1.pdf\"; filename*=UTF-8''report%201.pdf"
        );
        assert_eq!(
            content_disposition("naïve \"x\".txt"),
            "attachment; filename=\"na_ve _x_.txt\"; filename*=UTF-8''na%C3%AFve%20%22x%22.txt"
        );
    }

    #[test]
    fn multipart_is_told_by_its_content_type() {
        let mut headers = HeaderMap::new();
        assert_eq!(multipart_type(&headers), None);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert_eq!(multipart_type(&headers), None);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("Multipart/Form-Data; boundary=x"),
        );
        assert!(multipart_type(&headers).is_some());
    }
}
