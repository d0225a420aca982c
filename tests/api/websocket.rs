//! The WebSocket transport: graphql-transport-ws close codes, token expiry,
//! server pings, slow readers, shutdown, and per-address limits.

use std::time::Duration;

use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use switchboard::auth::Role;
use switchboard::clock::Clock;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::MaybeTlsStream;

use testkit::{
    graphql::code_of,
    server::{spawn, Options},
    tokens, ws, EVENT_TIMEOUT,
};

/// The next frame from the server, or a failure after [`EVENT_TIMEOUT`].
async fn next_frame(ws: &mut ws::Client) -> Option<Result<WsMessage, impl std::fmt::Debug>> {
    tokio::time::timeout(EVENT_TIMEOUT, ws.socket().next())
        .await
        .expect("timed out waiting for the server")
}

/// A WebSocket ping answered: the server's driver for this socket runs, so
/// its timers are set, and it has read everything sent before.
async fn round_trip(ws: &mut ws::Client) {
    ws.socket()
        .send(WsMessage::Ping(b"rt".to_vec().into()))
        .await
        .unwrap();
    loop {
        match next_frame(ws).await {
            Some(Ok(WsMessage::Pong(p))) if &p[..] == b"rt" => return,
            Some(Ok(WsMessage::Close(c))) => panic!("closed before the pong: {c:?}"),
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}"),
        }
    }
}

const SUBSCRIBE: &str = r#"{"type":"subscribe","id":"1","payload":{"query":"subscription { queueEvents { stats { waiting } } }"}}"#;

#[tokio::test]
async fn protocol_violations_close_with_the_graphql_transport_ws_codes() {
    let app = spawn(Options::default()).await;
    let admin = tokens::admin();

    // 4400: not a protocol message.
    let mut ws = ws::Client::connect(app.addr, Some(&admin)).await;
    ws.send_text("{ not json").await;
    assert_eq!(ws.closed().await.0, 4400);
    let mut ws = ws::Client::connect(app.addr, Some(&admin)).await;
    ws.send(json!({ "type": "shout" })).await;
    assert_eq!(ws.closed().await.0, 4400);

    // 4401: subscribe before connection_init was acknowledged.
    let mut ws = ws::Client::open(app.addr).await;
    ws.send_text(SUBSCRIBE).await;
    assert_eq!(ws.closed().await.0, 4401);

    // 4409: a second subscribe with an id that is running.
    let mut ws = ws::Client::connect(app.addr, Some(&admin)).await;
    ws.send_text(SUBSCRIBE).await;
    ws.send_text(SUBSCRIBE).await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 4409, "{reason}");

    // 4429: a second connection_init.
    let mut ws = ws::Client::connect(app.addr, Some(&admin)).await;
    ws.send(json!({ "type": "connection_init", "payload": {} }))
        .await;
    assert_eq!(ws.closed().await.0, 4429);
}

#[tokio::test]
async fn an_id_is_free_again_once_its_operation_completed() {
    let app = spawn(Options::default()).await;
    let admin = tokens::admin();
    let sid = app.start_session(&tokens::customer("reuse")).await;
    let mut ws = ws::Client::connect(app.addr, Some(&admin)).await;
    ws.session_events("1", &sid, 0).await;
    ws.next_of("sessionEvents", "CaughtUp").await;
    ws.complete("1").await;
    // Still open and serving under the reused id.
    ws.session_events("1", &sid, 0).await;
    ws.next_of("sessionEvents", "CaughtUp").await;
}

#[tokio::test]
async fn a_socket_without_connection_init_is_closed_with_4408() {
    let clock = Clock::manual(Utc::now());
    let app = spawn(Options::from(&[("WS_INIT_TIMEOUT_SECS", "1")]).clock(clock.clock())).await;
    let mut ws = ws::Client::open(app.addr).await;
    round_trip(&mut ws).await;
    clock.advance(Duration::from_secs(1)).await;
    assert_eq!(ws.closed().await.0, 4408);
}

/// A socket outliving its token is closed with 4403, so the client
/// reconnects with a fresh one instead of failing every operation.
#[tokio::test]
async fn a_socket_whose_token_expires_is_closed_with_4403() {
    let clock = Clock::manual(Utc::now());
    let app = spawn(Options::default().clock(clock.clock())).await;
    let tokens = tokens::issued_by(&clock.clock());
    let sid = app.start_session(&tokens.customer("brief")).await;
    let short = tokens.with_ttl(Role::Customer, "brief", 4);
    let mut ws = ws::Client::connect(app.addr, Some(&short)).await;
    ws.session_events("s", &sid, 0).await;
    ws.next_of("sessionEvents", "CaughtUp").await;
    clock.advance(Duration::from_secs(5)).await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 4403, "{reason}");
}

/// The server pings; a client that answers stays connected however long it
/// stays quiet, and one that does not is closed.
#[tokio::test]
async fn the_server_pings_and_keeps_quiet_clients_that_answer() {
    // A peer silent for more than two periods (4 s) is closed.
    const KEEPALIVE: Duration = Duration::from_secs(2);
    let clock = Clock::manual(Utc::now());
    let app = spawn(Options::from(&[("WS_KEEPALIVE_SECS", "2")]).clock(clock.clock())).await;
    let tokens = tokens::issued_by(&clock.clock());
    let (cust, agent) = (tokens.customer("quiet"), tokens.agent("ann"));
    let sid = app.active_session(&cust, &agent).await;
    let mut ws = ws::Client::connect(app.addr, Some(&cust)).await;
    ws.session_events("s", &sid, 0).await;
    ws.next_of("sessionEvents", "CaughtUp").await;

    // Three keepalive periods pass; the client reads each period's ping
    // (which answers it) and sends nothing.
    let mut pings = 0;
    for _ in 0..3 {
        clock.advance(KEEPALIVE).await;
        loop {
            match next_frame(&mut ws).await {
                Some(Ok(WsMessage::Ping(_))) => {
                    pings += 1;
                    break;
                }
                Some(Ok(WsMessage::Close(c))) => panic!("a quiet client was closed: {c:?}"),
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
        // The answer leaves with the next read or flush.
        ws.socket().flush().await.unwrap();
    }
    assert!(pings >= 2, "expected server pings, got {pings}");
    app.send(&agent, &sid, "still there?", "k1").await;
    let m = ws.next_of("sessionEvents", "MessagePosted").await;
    assert_eq!(m["message"]["body"], "still there?");

    // A client that stops answering (reads nothing) is closed.
    // Time passes off the period's grid, as real ticks come a little late:
    // the server pings once, unanswered, and closes at the next tick.
    let mut silent = ws::Client::connect(app.addr, Some(&cust)).await;
    for _ in 0..5 {
        clock.advance(Duration::from_millis(1500)).await;
    }
    assert_eq!(silent.closed().await.0, 1001);
}

/// A subscriber that does not read what it is sent is disconnected rather
/// than buffered for; it resumes by seq when it comes back.
#[tokio::test]
async fn a_subscriber_that_stops_reading_is_disconnected() {
    let clock = Clock::manual(Utc::now());
    let app = spawn(Options::from(&[("WS_SEND_TIMEOUT_SECS", "1")]).clock(clock.clock())).await;
    let tokens = tokens::issued_by(&clock.clock());
    let (cust, agent) = (tokens.customer("slow"), tokens.agent("ann"));
    let sid = app.active_session(&cust, &agent).await;

    // A client with a small receive window, so the server's writes block soon.
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(app.addr).await.unwrap();
    let (socket, _) =
        tokio_tungstenite::client_async(ws::request(app.addr), MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    let mut ws = ws::Client::from_socket(socket);
    ws.init(Some(&cust)).await;
    // Every message goes out once per subscription: fifty of them.
    for i in 0..50 {
        ws.session_events(&format!("s{i}"), &sid, 0).await;
    }
    // Stop reading; the agent writes about 20 MB of pushes for this socket.
    let body = "x".repeat(4000);
    for i in 0..100 {
        let sent = app.send(&agent, &sid, &body, &format!("k{i}")).await;
        assert!(sent.get("errors").is_none(), "{sent}");
    }
    // The server's writes to it stall; time passes until they time out
    // (one period is enough once they have stalled).
    for _ in 0..20 {
        if app
            .counter("switchboard_slow_consumer_disconnects_total")
            .await
            > 0
        {
            break;
        }
        clock.advance(Duration::from_secs(1)).await;
    }

    // Now read: what was buffered arrives, then the connection ends.
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match ws.socket().next().await {
                None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "a subscriber that stopped reading stayed connected"
    );
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("switchboard_slow_consumer_disconnects_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn stopping_the_server_closes_sockets_with_1012() {
    let mut app = spawn(Options::default()).await;
    let admin = tokens::admin();
    let mut ws = ws::Client::connect(app.addr, Some(&admin)).await;
    ws.send_text(SUBSCRIBE).await;
    app.stop();
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1012, "{reason}");
}

#[tokio::test]
async fn websocket_connections_per_address_are_capped() {
    let app = spawn(&[("IP_MAX_CONNECTIONS", "2")]).await;
    let admin = tokens::admin();
    let first = ws::Client::connect(app.addr, Some(&admin)).await;
    let _second = ws::Client::connect(app.addr, Some(&admin)).await;
    let request = ws::request(app.addr);
    match tokio_tungstenite::connect_async(request.clone()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(code_of(&body), "RATE_LIMITED");
        }
        other => panic!(
            "a third connection was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    // Closing one frees its place.
    drop(first);
    let mut reopened = false;
    for _ in 0..50 {
        if tokio_tungstenite::connect_async(request.clone())
            .await
            .is_ok()
        {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened, "a closed connection's place was not freed");
}

/// One address may start only so many chats a minute, whatever customer
/// ids it uses; coming back to an open chat is not a new one.
#[tokio::test]
async fn new_sessions_per_address_are_rate_limited() {
    let app = spawn(&[("IP_SESSION_RATE_PER_MIN", "1"), ("IP_SESSION_BURST", "2")]).await;
    let start = "mutation { startSession(input: {}) { id } }";
    let (a, b, c) = (
        tokens::customer("a"),
        tokens::customer("b"),
        tokens::customer("c"),
    );
    app.ok(&a, start, json!({})).await;
    app.ok(&b, start, json!({})).await;
    assert_eq!(
        app.error_code(Some(&c), start, json!({})).await,
        "RATE_LIMITED"
    );
    app.ok(&a, start, json!({})).await;
}

/// Behind a trusted proxy the address it records counts, and what the
/// client wrote itself into X-Forwarded-For does not.
#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_limited() {
    let app = spawn(&[
        ("IP_SESSION_RATE_PER_MIN", "1"),
        ("IP_SESSION_BURST", "1"),
        ("TRUSTED_PROXY_HOPS", "1"),
    ])
    .await;
    let start = |customer: &str, forwarded: &str| {
        app.http
            .post(app.url("/graphql"))
            .bearer_auth(tokens::customer(customer))
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "query": "mutation { startSession(input: {}) { id } }" }))
            .send()
    };
    let body = |r: reqwest::Response| async move { r.json::<serde_json::Value>().await.unwrap() };
    let first = body(start("p1", "203.0.113.1").await.unwrap()).await;
    assert!(first.get("errors").is_none(), "{first}");
    let other_address = body(start("p2", "203.0.113.2").await.unwrap()).await;
    assert!(other_address.get("errors").is_none(), "{other_address}");
    let forged = body(start("p3", "198.51.100.9, 203.0.113.1").await.unwrap()).await;
    assert_eq!(code_of(&forged), "RATE_LIMITED");
}

/// Older clients (subscriptions-transport-ws, subprotocol "graphql-ws")
/// are still served.
#[tokio::test]
async fn the_legacy_protocol_still_works() {
    let app = spawn(Options::default()).await;
    let mut request = ws::request(app.addr);
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-ws".parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut ws = ws::Client::from_socket(socket);
    let token = tokens::admin();
    ws.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }))
        .await;
    assert_eq!(ws.next().await["type"], "connection_ack");
    ws.send(json!({ "type": "start", "id": "1", "payload": { "query": "subscription { queueEvents { stats { waiting } } }" } }))
        .await;
    app.start_session(&tokens::customer("old")).await;
    let data = ws.next().await;
    assert_eq!(data["type"], "data", "{data}");
    assert_eq!(
        data["payload"]["data"]["queueEvents"]["stats"]["waiting"],
        1
    );
}

/// The read buffer is small for idle connections' sake; a client message
/// many times its size still arrives whole.
#[tokio::test]
async fn messages_larger_than_the_read_buffer_arrive_whole() {
    let app = spawn(&[("WS_READ_BUFFER_BYTES", "256")]).await;
    let cust = tokens::customer("long");
    let sid = app.start_session(&cust).await;
    let mut ws = ws::Client::connect(app.addr, Some(&cust)).await;
    let padding = " ".repeat(20_000);
    ws.subscribe(
        "s",
        &format!(
            "subscription($s: ID!) {{ {padding} sessionEvents(sessionId: $s) {{ __typename }} }}"
        ),
        json!({ "s": sid }),
    )
    .await;
    ws.next_of("sessionEvents", "CaughtUp").await;
}

/// Results far larger than the socket's buffers (a long transcript fetched
/// over the WebSocket, as Apollo clients do with every operation) arrive.
#[tokio::test]
async fn large_results_reach_websocket_clients() {
    let app = spawn(Options::default()).await;
    let (cust, agent) = (tokens::customer("wordy"), tokens::agent("ann"));
    let sid = app.active_session(&cust, &agent).await;
    let body = "y".repeat(4000);
    for i in 0..60 {
        app.send(&cust, &sid, &body, &format!("w{i}")).await;
    }
    let mut ws = ws::Client::connect(app.addr, Some(&cust)).await;
    ws.subscribe(
        "q",
        "query($s: ID!) { session(id: $s) { messages(first: 100) { nodes { seq body } } } }",
        json!({ "s": sid }),
    )
    .await;
    let result = ws.next().await;
    let nodes = result["data"]["session"]["messages"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no transcript: {result}"));
    assert_eq!(nodes.len(), 61, "the join line and 60 messages");
}

/// A replay has all its frames ready at once: they go out together, fewer
/// writes than frames, complete and in order.
#[tokio::test]
async fn frames_ready_together_share_writes() {
    let app = spawn(Options::default()).await;
    let cust = tokens::customer("batch");
    let sid = app.start_session(&cust).await;
    const SENT: i64 = 40;
    for i in 1..=SENT {
        let r = app
            .send(&cust, &sid, &format!("m{i}"), &format!("k{i}"))
            .await;
        assert!(r.get("errors").is_none(), "{r}");
    }
    let mut ws = app.ws(Some(&cust)).await;
    let frames_before = app.counter("switchboard_websocket_frames_total").await;
    let writes_before = app.counter("switchboard_websocket_writes_total").await;
    ws.session_events("s", &sid, 0).await;
    for seq in 1..=SENT {
        let event = ws.next_of("sessionEvents", "MessagePosted").await;
        assert_eq!(event["message"]["seq"], seq, "{event}");
    }
    ws.next_of("sessionEvents", "CaughtUp").await;
    let frames = app.counter("switchboard_websocket_frames_total").await - frames_before;
    let writes = app.counter("switchboard_websocket_writes_total").await - writes_before;
    assert!(frames > SENT as u64, "{frames} frames");
    assert!(writes < frames / 2, "{frames} frames in {writes} writes");
}
