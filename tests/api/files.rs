//! Files and articles: uploads per the GraphQL multipart request spec (with
//! reqwest, raw sockets and the real curl), their limits, the sniffed
//! allowlist, signed download links by role, retention, both storage
//! backends against real stores, and article links.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use switchboard::clock::Clock;
use testkit::files::{multipart_body, send_file_operations, S3Server, MESSAGE_FIELDS, PNG};
use testkit::graphql::code_of;
use testkit::server::{spawn, Options, Server};
use testkit::tokens;

const HTML_PAGE: &[u8] =
    b"<!DOCTYPE html>\n<html><body><script>alert(document.cookie)</script></body></html>\n";

/// The messages of a session as (seq, kind), read by `token`.
async fn kinds(app: &Server, token: &str, session: &str) -> Vec<(i64, String)> {
    let data = app
        .ok(
            token,
            "query($s: ID!) { session(id: $s) { messages(first: 500) { nodes { seq kind } } } }",
            json!({ "s": session }),
        )
        .await;
    data["session"]["messages"]["nodes"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["seq"].as_i64().unwrap(),
                m["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// What the store holds.
async fn stored(app: &Server) -> Vec<String> {
    app.service
        .files()
        .stored_keys()
        .await
        .expect("store listed")
}

/// `token`'s live feed of the session after its join line, caught up.
async fn follow(app: &Server, token: &str, session: &str) -> testkit::ws::Client {
    let mut ws = app.ws(Some(token)).await;
    ws.subscribe(
        "1",
        &format!(
            "subscription($s: ID!) {{ sessionEvents(sessionId: $s, afterSeq: 1) {{ __typename
               ... on MessagePosted {{ message {{ {MESSAGE_FIELDS} }} }} }} }}"
        ),
        json!({ "s": session }),
    )
    .await;
    ws.next_of("sessionEvents", "CaughtUp").await;
    ws
}

fn sent(body: &Value) -> &Value {
    assert!(body.get("errors").is_none(), "upload refused: {body}");
    &body["data"]["sendFile"]
}

#[tokio::test]
async fn a_file_reaches_the_other_side_with_its_sniffed_type_and_a_working_link() {
    let app = spawn(Options::default()).await;
    let (cust, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&cust, &ann).await;
    let mut agent_ws = follow(&app, &ann, &sid).await;

    // Claimed a JPEG by its name and part header; the bytes say PNG.
    let body = app
        .send_file_with(&cust, &sid, "../../holiday.jpg", PNG, Some(" look "), "f1")
        .await;
    let message = sent(&body);
    assert_eq!(message["kind"], "FILE");
    assert_eq!(message["seq"], 2, "the next seq after the join line");
    assert_eq!(message["body"], "look");
    let file = &message["attachment"];
    assert_eq!(file["filename"], "holiday.jpg", "no folders");
    assert_eq!(file["contentType"], "image/png");
    assert_eq!(file["size"], PNG.len());
    assert!(message["article"].is_null());

    // Live to the agent, with a link of their own.
    let event = agent_ws.next_of("sessionEvents", "MessagePosted").await;
    let live = &event["message"];
    assert_eq!(live["id"], message["id"]);
    assert_eq!(live["kind"], "FILE");
    let url = live["attachment"]["url"]
        .as_str()
        .expect("the agent gets a link");
    assert!(
        url.starts_with(&format!("/files/{}/", message["id"].as_str().unwrap())),
        "{url}"
    );

    let (status, headers, bytes) = app.download(url).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, PNG);
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(disposition.contains("holiday.jpg"), "{disposition}");

    // The same clientMessageId again: the first message, one stored file.
    let again = app
        .send_file_with(&cust, &sid, "holiday.jpg", PNG, Some("look"), "f1")
        .await;
    assert_eq!(sent(&again)["id"], message["id"]);
    assert_eq!(stored(&app).await.len(), 1);
    assert_eq!(
        kinds(&app, &cust, &sid).await,
        vec![(1, "SYSTEM".into()), (2, "FILE".into())]
    );
    // Text stays text.
    let text = app.send(&cust, &sid, "thanks", "t1").await;
    assert_eq!(text["data"]["sendMessage"]["seq"], 3);
    assert_eq!(kinds(&app, &cust, &sid).await[2], (3, "TEXT".into()));
}

#[tokio::test]
async fn links_go_to_the_customer_its_agent_and_admins_only() {
    let app = spawn(Options::default().set("PUBLIC_URL", "https://chat.example.com")).await;
    let (cust, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    app.start_shift(&ann).await;
    // Sent while still queued: every agent may look at a queued chat (to
    // pick it), but only its parties get its files.
    let sid = app.start_session(&cust).await;
    let id = sent(
        &app.send_file(&cust, &sid, "a.pdf", b"%PDF-1.7\n%%EOF\n", "f1")
            .await,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = |token: String| {
        let app = &app;
        let sid = sid.clone();
        async move {
            let body = app
                .gql(
                    Some(&token),
                    "query($s: ID!) { session(id: $s) { messages { nodes { kind attachment { url urlExpiresAt } } } } }",
                    json!({ "s": sid }),
                )
                .await;
            assert!(body.get("errors").is_none(), "{body}");
            body["data"]["session"]["messages"]["nodes"][0].clone()
        }
    };
    let bob = tokens::agent("bob");
    app.start_shift(&bob).await;
    let seen_by_bob = link(bob.clone()).await;
    assert_eq!(seen_by_bob["kind"], "FILE", "bob sees the queued message");
    assert!(
        seen_by_bob["attachment"].is_null(),
        "but gets no link: {seen_by_bob}"
    );
    assert!(
        link(tokens::customer("mallory")).await.is_null(),
        "not her session"
    );

    app.accept(&ann, &sid).await;
    for (who, token) in [
        ("customer", cust.clone()),
        ("agent", ann.clone()),
        ("admin", tokens::admin()),
    ] {
        let message = link(token).await;
        let url = message["attachment"]["url"]
            .as_str()
            .unwrap_or_else(|| panic!("{who}: {message}"));
        let path = url
            .strip_prefix("https://chat.example.com")
            .unwrap_or_else(|| panic!("{who}: absolute from PUBLIC_URL: {url}"));
        assert!(path.starts_with(&format!("/files/{id}/")), "{path}");
        let expires: chrono::DateTime<Utc> = message["attachment"]["urlExpiresAt"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let ttl = expires - Utc::now();
        assert!(
            ttl > chrono::Duration::seconds(250) && ttl <= chrono::Duration::seconds(301),
            "{ttl}"
        );
        let (status, headers, bytes) = app.download(path).await;
        assert_eq!(status, 200, "{who}");
        assert_eq!(bytes, b"%PDF-1.7\n%%EOF\n");
        assert_eq!(headers["content-type"], "application/pdf");
    }
    // After a transfer, the agent it went to gets links, the first does not.
    app.ok(
        &ann,
        "mutation($s: ID!, $to: ID) { transferSession(sessionId: $s, toAgentId: $to) { id } }",
        json!({ "s": sid, "to": "bob" }),
    )
    .await;
    let after = app
        .gql(
            Some(&ann),
            "query($s: ID!) { session(id: $s) { id } }",
            json!({ "s": sid }),
        )
        .await;
    assert!(
        after["data"]["session"].is_null(),
        "ann no longer sees it: {after}"
    );
    assert!(link(bob).await["attachment"]["url"].is_string());
}

#[tokio::test]
async fn expired_and_tampered_links_are_refused() {
    let clock = Clock::manual(Utc::now());
    let app = spawn(Options::default().clock(clock.clock())).await;
    let issuer = tokens::issued_by(&clock.clock());
    let (cust, ann) = (issuer.customer("rita"), issuer.agent("ann"));
    let sid = app.active_session(&cust, &ann).await;
    let message = sent(
        &app.send_file(&cust, &sid, "notes.txt", b"plain notes\n", "f1")
            .await,
    )
    .clone();
    let url = message["attachment"]["url"].as_str().unwrap().to_owned();
    assert_eq!(message["attachment"]["contentType"], "text/plain");

    let refused = |status: u16, body: &[u8], code: &str| {
        let body: Value = serde_json::from_slice(body).expect("a JSON refusal");
        assert_eq!(code_of(&body), code, "{body}");
        status
    };
    let (base, query) = url.split_once('?').unwrap();
    let sig = query.split("sig=").nth(1).unwrap();
    let expires: i64 = query
        .split('&')
        .find_map(|p| p.strip_prefix("expires="))
        .unwrap()
        .parse()
        .unwrap();
    let mut flipped = sig.to_owned();
    let last = if flipped.ends_with('A') { 'B' } else { 'A' };
    flipped.pop();
    flipped.push(last);
    let other_file = format!(
        "{}/{}",
        base.rsplit_once('/').unwrap().0,
        uuid::Uuid::new_v4()
    );
    for (what, tampered) in [
        (
            "signature",
            format!("{base}?expires={expires}&sig={flipped}"),
        ),
        (
            "expiry",
            format!("{base}?expires={}&sig={sig}", expires + 3600),
        ),
        ("file", format!("{other_file}?expires={expires}&sig={sig}")),
        ("no signature", format!("{base}?expires={expires}")),
    ] {
        let (status, _, body) = app.download(&tampered).await;
        if what == "no signature" {
            assert_eq!(refused(status, &body, "NOT_FOUND"), 404, "{what}");
        } else {
            assert_eq!(refused(status, &body, "FORBIDDEN"), 403, "{what}");
        }
    }
    let (status, _, body) = app.download(&url).await;
    assert_eq!((status, body.as_slice()), (200, &b"plain notes\n"[..]));

    // Past DOWNLOAD_LINK_TTL_SECS (300) the same link is refused; reading
    // the message again gives a fresh one.
    clock.step_wall(chrono::Duration::seconds(301));
    let (status, _, body) = app.download(&url).await;
    assert_eq!(refused(status, &body, "FORBIDDEN"), 403);
    assert!(String::from_utf8_lossy(&body).contains("expired"));
    let cust = tokens::issued_by(&clock.clock()).customer("rita");
    let fresh = app
        .ok(
            &cust,
            "query($s: ID!) { session(id: $s) { messages { nodes { attachment { url } } } } }",
            json!({ "s": sid }),
        )
        .await;
    let nodes = fresh["session"]["messages"]["nodes"].as_array().unwrap();
    let fresh_url = nodes
        .iter()
        .find_map(|n| n["attachment"]["url"].as_str())
        .unwrap();
    assert_ne!(fresh_url, url);
    assert_eq!(app.download(fresh_url).await.0, 200);
}

#[tokio::test]
async fn content_decides_the_type_and_disguised_pages_are_refused() {
    let app = spawn(Options::default()).await;
    let (cust, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&cust, &ann).await;
    for (name, bytes, why) in [
        ("photo.png", HTML_PAGE, "text/html"),
        (
            "logo.png",
            &b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>x</script></svg>"[..],
            "image/svg+xml",
        ),
        (
            "tool.pdf",
            &b"\x7fELF\x02\x01\x01\0\0\0"[..],
            "application/octet-stream",
        ),
        ("empty.txt", &b""[..], "empty"),
    ] {
        let body = app.send_file(&cust, &sid, name, bytes, name).await;
        assert_eq!(code_of(&body), "BAD_USER_INPUT", "{name}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(why), "{name}: {message}");
    }
    // Nothing stored, no seq taken.
    assert!(stored(&app).await.is_empty());
    assert_eq!(kinds(&app, &cust, &sid).await, vec![(1, "SYSTEM".into())]);
    // A PDF named .txt is a PDF.
    let pdf = app
        .send_file(&ann, &sid, "readme.txt", b"%PDF-1.4\n", "p1")
        .await;
    assert_eq!(sent(&pdf)["attachment"]["contentType"], "application/pdf");
    assert_eq!(sent(&pdf)["seq"], 2);

    // Refusals of the session's rules store nothing either.
    let mallory = tokens::customer("mallory");
    let body = app.send_file(&mallory, &sid, "a.png", PNG, "m1").await;
    assert_eq!(code_of(&body), "NOT_FOUND", "{body}");
    app.end(&cust, &sid).await;
    let body = app.send_file(&cust, &sid, "a.png", PNG, "late").await;
    assert_eq!(code_of(&body), "CONFLICT", "{body}");
    assert_eq!(stored(&app).await.len(), 1, "only the PDF");

    // An operator may allow other types.
    let app = spawn(Options::default().set("UPLOAD_CONTENT_TYPES", "image/*")).await;
    let sid = app.active_session(&cust, &ann).await;
    let body = app
        .send_file(&cust, &sid, "gif.gif", b"GIF89a\x01\0\x01\0", "g")
        .await;
    assert_eq!(sent(&body)["attachment"]["contentType"], "image/gif");
    let body = app.send_file(&cust, &sid, "a.txt", b"text", "t").await;
    assert_eq!(code_of(&body), "BAD_USER_INPUT");
}

fn head(app: &Server, token: &str, content_type: &str, extra: &str) -> String {
    format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: {content_type}\r\n{extra}\r\n",
        app.addr
    )
}

/// A request written to a socket of its own (`head`, then `body`, which
/// the server may stop reading), and the answer as far as it comes.
async fn raw_post(app: &Server, head: String, body: Vec<u8>) -> String {
    let addr = app.addr;
    tokio::task::spawn_blocking(move || {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        socket.write_all(head.as_bytes()).unwrap();
        let _ = socket.write_all(&body);
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .unwrap()
}

fn json_of(answer: &str) -> Value {
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("no JSON answer ({e}): {answer}"))
}

#[tokio::test]
async fn oversized_uploads_get_a_readable_answer_with_or_without_a_length() {
    // 64 KiB files; a request may be that plus 64 KiB (MAX_BODY_BYTES).
    let app = spawn(Options::default().set("MAX_UPLOAD_BYTES", "65536")).await;
    let (cust, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&cust, &ann).await;
    let big = "x".repeat(100 * 1024);

    // With a Content-Length under the request bound: the file part's
    // limit trips while it streams.
    let body = app
        .send_file(&cust, &sid, "big.txt", big.as_bytes(), "b1")
        .await;
    assert_eq!(code_of(&body), "BAD_USER_INPUT", "{body}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("65536"));

    // Without a Content-Length (chunked): refused once the bound has
    // streamed in, answered after the rest was read.
    let operations = send_file_operations(&sid, None, "b2");
    let (content_type, whole) =
        multipart_body(&operations, "big.txt", "y".repeat(200 * 1024).as_bytes());
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        whole.chunks(8 * 1024).map(|c| Ok(c.to_vec())).collect();
    let response = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&cust)
        .header("content-type", &content_type)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("an answer, not a reset");
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code_of(&body), "BAD_USER_INPUT", "{body}");

    // A Content-Length over the bound, from a client that waits for
    // `100 Continue`: answered at once, without it; no body is sent.
    let answer = raw_post(
        &app,
        head(
            &app,
            &cust,
            &content_type,
            "Content-Length: 1073741824\r\nExpect: 100-continue\r\n",
        ),
        Vec::new(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert_eq!(code_of(&json_of(&answer)), "BAD_USER_INPUT");

    // A Content-Length over the bound from a client that sends at once:
    // read and discarded up to the bound, then answered.
    let (content_type, whole) =
        multipart_body(&operations, "big.txt", "z".repeat(150 * 1024).as_bytes());
    let answer = raw_post(
        &app,
        head(
            &app,
            &cust,
            &content_type,
            &format!("Content-Length: {}\r\n", whole.len()),
        ),
        whole,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(code_of(&json_of(&answer)), "BAD_USER_INPUT");

    // Parts each under the file limit but more than the request's bound
    // together, without a length: the bound trips while they stream.
    let boundary = "xyzzy";
    let mut parts = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{operations}\r\n"
    )
    .into_bytes();
    for n in 0..3 {
        parts.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{n}\"; \
                 filename=\"{n}.txt\"\r\n\r\n{}\r\n",
                "p".repeat(60 * 1024)
            )
            .as_bytes(),
        );
    }
    let response = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&cust)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            parts
                .chunks(8 * 1024)
                .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                .collect::<Vec<_>>(),
        )))
        .send()
        .await
        .expect("an answer, not a reset");
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(code_of(&response.json().await.unwrap()), "BAD_USER_INPUT");

    // JSON requests keep MAX_BODY_BYTES.
    let status = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&cust)
        .json(&json!({ "query": format!("{{ me {{ id }} }} #{}", "x".repeat(100 * 1024)) }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 413);

    assert!(stored(&app).await.is_empty());
    assert_eq!(kinds(&app, &cust, &sid).await, vec![(1, "SYSTEM".into())]);
    // A file at the limit goes through.
    let body = app
        .send_file(&cust, &sid, "max.txt", "m".repeat(65536).as_bytes(), "ok")
        .await;
    assert_eq!(sent(&body)["attachment"]["size"], 65536);
}

#[tokio::test]
async fn a_dropped_upload_leaves_nothing_on_disk_or_in_the_database() {
    let app = spawn(Options::default()).await;
    let (cust, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&cust, &ann).await;
    let operations = send_file_operations(&sid, None, "d1");
    let (content_type, whole) = multipart_body(&operations, "photo.png", &PNG.repeat(2000));
    let head = head(
        &app,
        &cust,
        &content_type,
        &format!("Content-Length: {}\r\n", whole.len()),
    );
    let addr = app.addr;
    tokio::task::spawn_blocking(move || {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket.write_all(head.as_bytes()).unwrap();
        // Half the file, then the client goes away.
        socket.write_all(&whole[..whole.len() / 2]).unwrap();
        socket.shutdown(std::net::Shutdown::Both).unwrap();
    })
    .await
    .unwrap();
    // The same send, whole, from a client that stays: it is the first.
    let body = app.send_file(&cust, &sid, "photo.png", PNG, "d1").await;
    assert_eq!(sent(&body)["seq"], 2, "the dropped one took no seq");
    // The store lists partial files too: there are none.
    assert_eq!(stored(&app).await.len(), 1);
    assert_eq!(kinds(&app, &cust, &sid).await.len(), 2);
}

#[tokio::test]
async fn curl_speaks_the_multipart_spec() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("curl is not installed; the reqwest tests cover the same requests");
        return;
    }
    let app = spawn(Options::default()).await;
    let (cust, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&cust, &ann).await;
    let dir = std::env::temp_dir().join(format!("sb-curl-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pixel.png");
    std::fs::write(&path, PNG).unwrap();
    let operations = send_file_operations(&sid, Some("from curl"), "c1").to_string();
    let url = app.url("/graphql");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "--fail-with-body", &url, "-H"])
            .arg(format!("Authorization: Bearer {cust}"))
            .arg("-F")
            .arg(format!("operations={operations}"))
            .args(["-F", r#"map={"0":["variables.input.file"]}"#, "-F"])
            .arg(format!("0=@{}", path.display()))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let body: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    let message = sent(&body);
    assert_eq!(message["kind"], "FILE");
    assert_eq!(message["body"], "from curl");
    assert_eq!(message["attachment"]["filename"], "pixel.png");
    assert_eq!(message["attachment"]["contentType"], "image/png");
}

#[tokio::test]
async fn files_are_purged_with_their_sessions() {
    let clock = Clock::manual(Utc::now());
    let app = spawn(Options::default().clock(clock.clock())).await;
    let issuer = tokens::issued_by(&clock.clock());
    let (cust, ann) = (issuer.customer("rita"), issuer.agent("ann"));
    let old = app.active_session(&cust, &ann).await;
    sent(&app.send_file(&cust, &old, "a.png", PNG, "f1").await);
    sent(&app.send_file(&ann, &old, "b.txt", b"b", "f2").await);
    app.end(&cust, &old).await;
    clock.step_wall(chrono::Duration::days(80));
    let issuer = tokens::issued_by(&clock.clock());
    let (cust, ann) = (issuer.customer("rita"), issuer.agent("ann"));
    let recent = app.active_session(&cust, &ann).await;
    sent(&app.send_file(&cust, &recent, "c.png", PNG, "f3").await);
    assert_eq!(stored(&app).await.len(), 3);

    clock.step_wall(chrono::Duration::days(11));
    assert_eq!(app.service.retention().purge_expired().await.unwrap(), 1);
    let left = stored(&app).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with(&recent), "{left:?}");
}

#[tokio::test]
async fn the_s3_backend_stores_serves_refuses_and_purges_on_a_real_server() {
    let s3 = S3Server::start().await;
    s3.create_bucket("switchboard-files").await;
    let clock = Clock::manual(Utc::now());
    let options = s3
        .settings("switchboard-files", "chats/eu")
        .iter()
        .fold(Options::default().clock(clock.clock()), |o, (k, v)| {
            o.set(k, v)
        });
    let app = spawn(options).await;
    let issuer = tokens::issued_by(&clock.clock());
    let (cust, ann) = (issuer.customer("rita"), issuer.agent("ann"));
    let sid = app.active_session(&cust, &ann).await;

    let message = sent(&app.send_file(&cust, &sid, "pixel.png", PNG, "s1").await).clone();
    let again = app.send_file(&cust, &sid, "pixel.png", PNG, "s1").await;
    assert_eq!(sent(&again)["id"], message["id"]);
    let refused = app
        .send_file(&cust, &sid, "page.png", HTML_PAGE, "s2")
        .await;
    assert_eq!(code_of(&refused), "BAD_USER_INPUT");
    let keys = stored(&app).await;
    let file_id = message["attachment"]["id"].as_str().unwrap();
    assert_eq!(keys, vec![format!("{sid}/{file_id}")]);

    // Under the prefix, in the bucket, as S3 clients see it.
    let listing = reqwest::get(format!("{}/switchboard-files?list-type=2", s3.endpoint))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listing.contains(&format!("<Key>chats/eu/{sid}/{file_id}</Key>")),
        "{listing}"
    );

    let (status, headers, bytes) = app
        .download(message["attachment"]["url"].as_str().unwrap())
        .await;
    assert_eq!((status, bytes.as_slice()), (200, PNG));
    assert_eq!(headers["content-type"], "image/png");

    app.end(&cust, &sid).await;
    clock.step_wall(chrono::Duration::days(91));
    assert_eq!(app.service.retention().purge_expired().await.unwrap(), 1);
    assert!(stored(&app).await.is_empty());
}

#[tokio::test]
async fn agents_share_articles_from_the_configured_origins() {
    let app = spawn(Options::default().set(
        "ARTICLE_ORIGINS",
        "https://help.example.com, https://kb.example.org",
    ))
    .await;
    let (cust, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&cust, &ann).await;
    let mut customer_ws = follow(&app, &cust, &sid).await;
    let share = |token: &str, url: &str, key: &str| {
        let (app, token, url, key, sid) = (
            &app,
            token.to_owned(),
            url.to_owned(),
            key.to_owned(),
            sid.clone(),
        );
        async move {
            app.gql(
                Some(&token),
                &format!(
                    "mutation($i: ShareArticleInput!) {{ shareArticle(input: $i) {{ {MESSAGE_FIELDS} }} }}"
                ),
                json!({ "i": { "sessionId": sid, "url": url, "title": "Refunds in 3 steps", "clientMessageId": key } }),
            )
            .await
        }
    };
    let body = share(&ann, "https://help.example.com/articles/refunds", "a1").await;
    assert!(body.get("errors").is_none(), "{body}");
    let message = &body["data"]["shareArticle"];
    assert_eq!(message["kind"], "ARTICLE");
    assert_eq!(message["seq"], 2);
    assert_eq!(
        message["article"],
        json!({ "url": "https://help.example.com/articles/refunds", "title": "Refunds in 3 steps" })
    );
    assert!(message["attachment"].is_null());
    let live = customer_ws.next_of("sessionEvents", "MessagePosted").await;
    assert_eq!(live["message"]["article"], message["article"]);
    // Idempotent like any send.
    let again = share(&ann, "https://help.example.com/articles/refunds", "a1").await;
    assert_eq!(again["data"]["shareArticle"]["id"], message["id"]);

    for (url, why) in [
        ("http://help.example.com/articles/refunds", "https"),
        ("https://evil.example.com/phish", "not an article origin"),
        (
            "https://help.example.com.evil.net/x",
            "not an article origin",
        ),
    ] {
        let body = share(&ann, url, "bad").await;
        assert_eq!(code_of(&body), "BAD_USER_INPUT", "{url}: {body}");
        assert!(
            body["errors"][0]["message"].as_str().unwrap().contains(why),
            "{body}"
        );
    }
    let body = share(&cust, "https://kb.example.org/a", "c1").await;
    assert_eq!(code_of(&body), "FORBIDDEN", "{body}");
    let body = share(&tokens::agent("bob"), "https://kb.example.org/a", "b1").await;
    assert_eq!(code_of(&body), "NOT_FOUND", "{body}");
    app.end(&cust, &sid).await;
    let body = share(&ann, "https://kb.example.org/a", "late").await;
    assert_eq!(code_of(&body), "CONFLICT", "{body}");

    // Without ARTICLE_ORIGINS the feature is off, and says so.
    let off = spawn(Options::default()).await;
    let sid = off.active_session(&cust, &ann).await;
    let body = off
        .gql(
            Some(&ann),
            "mutation($s: ID!) { shareArticle(input: {sessionId: $s, url: \"https://help.example.com/a\", title: \"t\", clientMessageId: \"k\"}) { id } }",
            json!({ "s": sid }),
        )
        .await;
    assert_eq!(code_of(&body), "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("ARTICLE_ORIGINS"),
        "{body}"
    );
}

#[tokio::test]
async fn files_and_articles_work_on_the_embedded_sqlite() {
    let app = spawn(
        Options::default()
            .database("")
            .set("ARTICLE_ORIGINS", "https://help.example.com"),
    )
    .await;
    let (cust, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&cust, &ann).await;
    let message = sent(&app.send_file(&cust, &sid, "a.png", PNG, "f1").await).clone();
    let again = app.send_file(&cust, &sid, "a.png", PNG, "f1").await;
    assert_eq!(sent(&again)["id"], message["id"]);
    let (status, _, bytes) = app
        .download(message["attachment"]["url"].as_str().unwrap())
        .await;
    assert_eq!((status, bytes.as_slice()), (200, PNG));
    let shared = app
        .ok(
            &ann,
            "mutation($s: ID!) { shareArticle(input: {sessionId: $s, url: \"https://help.example.com/a\", title: \"A\", clientMessageId: \"a1\"}) { seq kind } }",
            json!({ "s": sid }),
        )
        .await;
    assert_eq!(
        shared["shareArticle"],
        json!({ "seq": 3, "kind": "ARTICLE" })
    );
    assert_eq!(
        kinds(&app, &ann, &sid).await,
        vec![
            (1, "SYSTEM".into()),
            (2, "FILE".into()),
            (3, "ARTICLE".into())
        ]
    );
}
