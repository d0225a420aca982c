//! Uploads as clients send them (GraphQL multipart requests), and a real
//! S3-compatible server for the storage tests (moto's, installed by
//! `tests/s3/setup` into the project's own folder).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::graphql::Client;

/// Every field of a FILE or ARTICLE message, for queries and events.
pub const MESSAGE_FIELDS: &str = "id seq sender body clientMessageId kind \
    attachment { id filename contentType size url urlExpiresAt } article { url title }";

/// The `operations` of a sendFile with `file` left null, as the spec wants.
pub fn send_file_operations(session: &str, caption: Option<&str>, client_id: &str) -> Value {
    json!({
        "query": format!(
            "mutation($input: SendFileInput!) {{ sendFile(input: $input) {{ {MESSAGE_FIELDS} }} }}"
        ),
        "variables": { "input": {
            "sessionId": session, "file": null, "caption": caption, "clientMessageId": client_id
        } }
    })
}

/// A whole multipart request body (operations, map, one file) and its
/// Content-Type, for tests that write it to a socket themselves.
pub fn multipart_body(operations: &Value, filename: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "------------------------switchboardtest7d1f";
    let mut body = Vec::new();
    let mut part = |headers: &str, content: &[u8]| {
        body.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    };
    part(
        "Content-Disposition: form-data; name=\"operations\"",
        operations.to_string().as_bytes(),
    );
    part(
        "Content-Disposition: form-data; name=\"map\"",
        br#"{"0":["variables.input.file"]}"#,
    );
    part(
        &format!(
            "Content-Disposition: form-data; name=\"0\"; filename=\"{filename}\"\r\n\
             Content-Type: application/octet-stream"
        ),
        bytes,
    );
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl Client {
    /// sendFile as Apollo Upload or urql would send it; the whole response.
    pub async fn send_file(
        &self,
        token: &str,
        session: &str,
        filename: &str,
        bytes: &[u8],
        client_id: &str,
    ) -> Value {
        self.send_file_with(token, session, filename, bytes, None, client_id)
            .await
    }

    /// [`Self::send_file`] with a caption.
    pub async fn send_file_with(
        &self,
        token: &str,
        session: &str,
        filename: &str,
        bytes: &[u8],
        caption: Option<&str>,
        client_id: &str,
    ) -> Value {
        let operations = send_file_operations(session, caption, client_id);
        let file = reqwest::multipart::Part::bytes(bytes.to_vec())
            .file_name(filename.to_owned())
            // What a browser claims from the name; the server sniffs.
            .mime_str(guess_from_name(filename))
            .expect("content type");
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", r#"{"0":["variables.input.file"]}"#)
            .part("0", file);
        self.http
            .post(self.url("/graphql"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload sent")
            .json()
            .await
            .expect("JSON response")
    }

    /// GET of a download link as `Attachment.url` gives it (relative to
    /// the server): status, headers, body.
    pub async fn download(&self, url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let url = if url.starts_with('/') {
            self.url(url)
        } else {
            url.to_owned()
        };
        let response = self.http.get(url).send().await.expect("download sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("download body").to_vec();
        (status, headers, body)
    }
}

fn guess_from_name(filename: &str) -> &'static str {
    match filename.rsplit('.').next().unwrap_or_default() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        _ => "application/octet-stream",
    }
}

/// A small but real PNG (1×1 pixel).
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xff\xff?\0\x05\xfe\x02\xfe\xa7\x35\x81\x84\0\0\0\0IEND\xaeB`\x82";

/// An S3-compatible server (moto) on a free port, stopped when dropped.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

impl S3Server {
    /// Starts one, installing it first if needed (`tests/s3/setup`, or the
    /// `moto_server` named by MOTO_SERVER). Fails the test loudly when it
    /// cannot: the S3 backend is tested against a real server or not at all.
    pub async fn start() -> S3Server {
        let binary = moto_binary();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        // Wait until it answers (it takes a second or two to import).
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if http.get(&server.endpoint).send().await.is_ok() {
                return server;
            }
            assert!(Instant::now() < deadline, "the S3 server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates a bucket (moto takes unsigned requests).
    pub async fn create_bucket(&self, name: &str) {
        let status = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .expect("create bucket")
            .status();
        assert!(status.is_success(), "creating bucket {name}: {status}");
    }

    /// The settings a server needs to keep its files in `bucket/prefix` here.
    pub fn settings(&self, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        vec![
            ("STORAGE_URL".into(), format!("s3://{bucket}/{prefix}")),
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// MOTO_SERVER, or what `tests/s3/setup` installs (once per test binary).
fn moto_binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Ok(path) = std::env::var("MOTO_SERVER") {
                return PathBuf::from(path);
            }
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("workspace root")
                .to_owned();
            let output = Command::new(root.join("tests/s3/setup"))
                .stderr(Stdio::inherit())
                .output()
                .expect("running tests/s3/setup");
            assert!(
                output.status.success(),
                "tests/s3/setup could not install the S3 test server (moto from PyPI)"
            );
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        })
        .clone()
}
