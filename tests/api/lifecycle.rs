use serde_json::json;

use testkit::{
    graphql::code_of,
    server::{spawn, Options},
    tokens,
};

/// A customer and an agent, as two clients, through a whole chat.
#[tokio::test]
async fn whole_lifecycle_over_http_and_websocket() {
    let app = spawn(Options::default()).await;
    let alice = tokens::customer("alice");
    let ann = tokens::agent("ann");

    // The customer starts a chat and is first in the queue.
    let data = app
        .ok(&alice, "mutation { startSession(input: {subject: \" Refund \"}) { id status subject queuePosition lastSeq customer { id } } }", json!({}))
        .await;
    let s = &data["startSession"];
    assert_eq!(s["status"], "WAITING");
    assert_eq!(s["subject"], "Refund");
    assert_eq!(s["queuePosition"], 1);
    assert_eq!(s["customer"]["id"], "alice");
    let sid = s["id"].as_str().unwrap().to_owned();

    // Starting again returns the open session.
    let again = app.start_session(&alice).await;
    assert_eq!(again, sid);

    // The customer subscribes and is caught up at once.
    let mut cust = app.ws(Some(&alice)).await;
    cust.session_events("c1", &sid, 0).await;
    let caught = cust.next_of("sessionEvents", "CaughtUp").await;
    assert_eq!(caught["seq"], 0);

    // The customer may write while waiting.
    let m1 = app.send(&alice, &sid, "  hello, anyone?  ", "c-1").await;
    assert_eq!(m1["data"]["sendMessage"]["seq"], 1);
    assert_eq!(m1["data"]["sendMessage"]["body"], "hello, anyone?");
    assert_eq!(m1["data"]["sendMessage"]["sender"], "CUSTOMER");
    let live = cust.next_of("sessionEvents", "MessagePosted").await;
    assert_eq!(live["message"]["seq"], 1);

    // The agent sees the queue, starts a shift, and takes the session.
    let mut agent_ws = app.ws(Some(&ann)).await;
    agent_ws
        .subscribe("a1", "subscription { agentEvents { __typename ... on SessionAssigned { session { id status } } ... on AgentChanged { agent { status activeSessionCount } } } }", json!({}))
        .await;
    let queue = app
        .ok(
            &ann,
            "{ queue { id queuePosition } queueStats { waiting active } }",
            json!({}),
        )
        .await;
    assert_eq!(queue["queue"][0]["id"], sid);
    assert_eq!(queue["queueStats"]["waiting"], 1);
    // Off shift, the agent cannot take it.
    assert_eq!(code_of(&app.accept(&ann, &sid).await), "CONFLICT");
    app.start_shift(&ann).await;
    let accepted = app.accept(&ann, &sid).await;
    assert_eq!(
        accepted["data"]["acceptSession"]["status"], "ACTIVE",
        "{accepted}"
    );
    assert_eq!(accepted["data"]["acceptSession"]["agent"]["id"], "ann");
    let assigned = agent_ws.next_of("agentEvents", "SessionAssigned").await;
    assert_eq!(assigned["session"]["id"], sid);

    // The customer sees the change and the agent's greeting line.
    let changed = cust.next_of("sessionEvents", "SessionChanged").await;
    assert_eq!(changed["session"]["status"], "ACTIVE");

    // The agent subscribes from the start and gets the transcript replayed.
    let mut agent_session = app.ws(Some(&ann)).await;
    agent_session.session_events("s1", &sid, 0).await;
    let first = agent_session
        .next_of("sessionEvents", "MessagePosted")
        .await;
    assert_eq!(first["message"]["body"], "hello, anyone?");
    assert_eq!(
        first["message"]["status"], "DELIVERED",
        "pushed to the recipient: delivered"
    );
    let second = agent_session
        .next_of("sessionEvents", "MessagePosted")
        .await;
    assert_eq!(second["message"]["sender"], "SYSTEM");
    let caught = agent_session.next_of("sessionEvents", "CaughtUp").await;
    assert_eq!(caught["seq"], 2);

    // Typing and a reply reach the customer.
    app.ok(
        &ann,
        "mutation($s: ID!) { setTyping(sessionId: $s, typing: true) }",
        json!({"s": sid}),
    )
    .await;
    let typing = cust.next_of("sessionEvents", "TypingChanged").await;
    assert_eq!(
        typing,
        json!({"__typename": "TypingChanged", "sender": "AGENT", "typing": true})
    );
    let reply = app
        .send(&ann, &sid, "Hi Alice, how can I help?", "a-1")
        .await;
    assert_eq!(reply["data"]["sendMessage"]["seq"], 3, "{reply}");
    let got = cust.next_of("sessionEvents", "MessagePosted").await;
    assert_eq!(got["message"]["body"], "Hi Alice, how can I help?");
    assert_eq!(got["message"]["senderId"], "ann");

    // The customer reads up to the reply; the agent's feed shows the receipt.
    let read = app
        .ok(&alice, "mutation($s: ID!) { markRead(sessionId: $s, seq: 3) { id messages(first: 10) { nodes { seq status } } } }", json!({"s": sid}))
        .await;
    let statuses: Vec<_> = read["markRead"]["messages"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["seq"].as_i64().unwrap(),
                n["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Messages to the customer (2: SYSTEM, 3: agent) are READ; the
    // customer's own message 1 was delivered to the agent's live feed.
    assert_eq!(
        statuses,
        vec![
            (1, "DELIVERED".into()),
            (2, "READ".into()),
            (3, "READ".into())
        ]
    );
    loop {
        let r = agent_session
            .next_of("sessionEvents", "ReceiptUpdated")
            .await;
        if r["reader"] == "CUSTOMER" && r["readSeq"] == 3 {
            break;
        }
    }
    // The read cursor never moves backwards.
    let back = app.ok(&alice, "mutation($s: ID!) { markRead(sessionId: $s, seq: 1) { messages(last: 1) { nodes { status } } } }", json!({"s": sid})).await;
    assert_eq!(back["markRead"]["messages"]["nodes"][0]["status"], "READ");

    // The customer ends it.
    let ended = app
        .ok(&alice, "mutation($s: ID!) { endSession(sessionId: $s) { status endedBy endReason endedAt lastSeq } }", json!({"s": sid}))
        .await;
    assert_eq!(ended["endSession"]["status"], "ENDED");
    assert_eq!(ended["endSession"]["endedBy"], "CUSTOMER");
    assert_eq!(ended["endSession"]["endReason"], "RESOLVED");
    assert_eq!(ended["endSession"]["lastSeq"], 4);
    let over = agent_session
        .next_of("sessionEvents", "SessionChanged")
        .await;
    assert_eq!(over["session"]["status"], "ENDED");

    // The transcript ends with a SYSTEM line; nobody can write any more.
    let transcript = app
        .ok(&ann, "query($s: ID!) { session(id: $s) { messages(last: 1) { nodes { seq sender body } } } }", json!({"s": sid}))
        .await;
    assert_eq!(
        transcript["session"]["messages"]["nodes"][0]["sender"],
        "SYSTEM"
    );
    assert_eq!(
        code_of(&app.send(&alice, &sid, "still there?", "c-2").await),
        "CONFLICT"
    );
    assert_eq!(
        code_of(&app.send(&ann, &sid, "bye", "a-2").await),
        "CONFLICT"
    );

    // The agent's slot is free again.
    let me = app
        .ok(
            &ann,
            "{ me { id role agent { status activeSessionCount idleSince } } }",
            json!({}),
        )
        .await;
    assert_eq!(me["me"]["agent"]["activeSessionCount"], 0);
    assert_eq!(me["me"]["agent"]["status"], "AVAILABLE");

    // The customer lists the chat and starts a new one.
    let mine = app
        .ok(&alice, "{ mySessions { nodes { id status } } }", json!({}))
        .await;
    assert_eq!(mine["mySessions"]["nodes"][0]["id"], sid);
    let next = app.start_session(&alice).await;
    assert_ne!(next, sid);
    let mine = app
        .ok(
            &alice,
            "{ mySessions(first: 1) { nodes { id } pageInfo { hasNextPage endCursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(mine["mySessions"]["nodes"][0]["id"], next, "newest first");
    assert_eq!(mine["mySessions"]["pageInfo"]["hasNextPage"], true);
    let cursor = mine["mySessions"]["pageInfo"]["endCursor"].clone();
    let older = app.ok(&alice, "query($c: String) { mySessions(first: 5, after: $c) { nodes { id } pageInfo { hasNextPage } } }", json!({"c": cursor})).await;
    assert_eq!(older["mySessions"]["nodes"][0]["id"], sid);
    assert_eq!(older["mySessions"]["pageInfo"]["hasNextPage"], false);
}

#[tokio::test]
async fn customer_leaving_the_queue_cancels_and_an_agent_ending_resolves() {
    let app = spawn(Options::default()).await;
    let bob = tokens::customer("bob");
    let sid = app.start_session(&bob).await;
    let ended = app
        .ok(
            &bob,
            "mutation($s: ID!) { endSession(sessionId: $s) { status endReason endedBy } }",
            json!({"s": sid}),
        )
        .await;
    assert_eq!(ended["endSession"]["endReason"], "CANCELLED");
    // Ending again is harmless and changes nothing.
    let again = app
        .ok(
            &bob,
            "mutation($s: ID!) { endSession(sessionId: $s) { status endReason } }",
            json!({"s": sid}),
        )
        .await;
    assert_eq!(again["endSession"]["endReason"], "CANCELLED");

    let sid = app.start_session(&bob).await;
    let ann = tokens::agent("ann");
    app.start_shift(&ann).await;
    app.accept(&ann, &sid).await;
    let ended = app
        .ok(
            &ann,
            "mutation($s: ID!) { endSession(sessionId: $s) { endReason endedBy } }",
            json!({"s": sid}),
        )
        .await;
    assert_eq!(
        ended["endSession"],
        json!({"endReason": "RESOLVED", "endedBy": "AGENT"})
    );

    // An agent who asked for a break goes on break when the last chat ends.
    let sid = app.start_session(&bob).await;
    app.accept(&ann, &sid).await;
    let brk = app
        .ok(&ann, "mutation { requestBreak { status } }", json!({}))
        .await;
    assert_eq!(brk["requestBreak"]["status"], "BREAK_REQUESTED");
    let admin = tokens::admin();
    let ended = app
        .ok(
            &admin,
            "mutation($s: ID!) { endSession(sessionId: $s) { endedBy } }",
            json!({"s": sid}),
        )
        .await;
    assert_eq!(ended["endSession"]["endedBy"], "ADMIN");
    let agents = app
        .ok(
            &admin,
            "{ agents { id status activeSessionCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        agents["agents"][0],
        json!({"id": "ann", "status": "ON_BREAK", "activeSessionCount": 0})
    );
}

/// With no DATABASE_URL the server runs on an SQLite file: the embedded default.
#[tokio::test]
async fn embedded_sqlite_default_serves_a_chat() {
    let app = spawn(&[("DATABASE_URL", "")]).await;
    let carol = tokens::customer("carol");
    let sid = app.start_session(&carol).await;
    let m = app.send(&carol, &sid, "hello from sqlite", "k1").await;
    assert_eq!(m["data"]["sendMessage"]["seq"], 1, "{m}");
    let again = app.send(&carol, &sid, "hello from sqlite", "k1").await;
    assert_eq!(
        again["data"]["sendMessage"]["id"],
        m["data"]["sendMessage"]["id"]
    );
    let ann = tokens::agent("ann");
    app.start_shift(&ann).await;
    let acc = app.accept(&ann, &sid).await;
    assert_eq!(acc["data"]["acceptSession"]["status"], "ACTIVE", "{acc}");
    assert_eq!(app.all_seqs(&carol, &sid).await, vec![1, 2]);
}

/// Agents watching the queue see sessions enter and leave it, with stats.
#[tokio::test]
async fn queue_watchers_see_sessions_enter_and_leave() {
    let app = spawn(Options::default()).await;
    let ann = tokens::agent("ann");
    let mut watch = app.ws(Some(&ann)).await;
    watch
        .subscribe("q", "subscription { queueEvents { session { id status queuePosition } stats { waiting active longestWaitSeconds } } }", json!({}))
        .await;
    let sid = app.start_session(&tokens::customer("quinn")).await;
    let entered = watch.next().await;
    let entered = &entered["data"]["queueEvents"];
    assert_eq!(entered["session"]["id"], sid.as_str(), "{entered}");
    assert_eq!(entered["session"]["queuePosition"], 1);
    assert_eq!(entered["stats"]["waiting"], 1);
    app.start_shift(&ann).await;
    app.accept(&ann, &sid).await;
    let left = watch.next().await;
    let left = &left["data"]["queueEvents"];
    assert_eq!(left["session"]["status"], "ACTIVE");
    assert_eq!(left["stats"]["waiting"], 0);
    assert_eq!(left["stats"]["active"], 1);
}

/// A message pushed into the recipient's live feed is DELIVERED even when
/// the recipient leaves at once, before the delivered mark's write window
/// closes.
#[tokio::test]
async fn a_live_push_counts_as_delivered_even_if_the_recipient_leaves_at_once() {
    let app = spawn(Options::default()).await;
    let (cust, ann) = (tokens::customer("quick"), tokens::agent("ann"));
    let sid = app.active_session(&cust, &ann).await;
    let mut feed = app.ws(Some(&ann)).await;
    feed.session_events("s", &sid, 0).await;
    feed.next_of("sessionEvents", "CaughtUp").await;
    app.send(&cust, &sid, "are you there?", "q1").await;
    let pushed = feed.next_of("sessionEvents", "MessagePosted").await;
    assert_eq!(pushed["message"]["body"], "are you there?");
    drop(feed);

    let mut status = String::new();
    for _ in 0..40 {
        let data = app
            .ok(
                &cust,
                "query($s: ID!) { session(id: $s) { messages(last: 1) { nodes { body status } } } }",
                json!({ "s": sid }),
            )
            .await;
        status = data["session"]["messages"]["nodes"][0]["status"]
            .as_str()
            .unwrap()
            .to_owned();
        if status == "DELIVERED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, "DELIVERED");
}

/// The embedded default under concurrent load: arrivals, sends (batched)
/// and an agent's accepts racing on one SQLite file all succeed, with
/// complete seqs.
#[tokio::test]
async fn embedded_sqlite_default_takes_concurrent_writers() {
    let app = spawn(&[("DATABASE_URL", "")]).await;
    const CUSTOMERS: usize = 12;
    const MESSAGES: usize = 8;
    let ann = tokens::agent("ann");
    app.start_shift(&ann).await;
    app.set_capacity("ann", CUSTOMERS as i64).await;
    let app_ref = &app;
    let ann_ref = &ann;
    let results = futures_util::future::join_all((0..CUSTOMERS).map(|c| async move {
        let token = tokens::customer(&format!("sq-{c}"));
        let sid = app_ref.start_session(&token).await;
        let accepting = async { app_ref.accept(ann_ref, &sid).await };
        let sending = futures_util::future::join_all((0..MESSAGES).map(|m| {
            let (token, sid) = (token.clone(), sid.clone());
            async move { app_ref.send(&token, &sid, "hi", &format!("k{m}")).await }
        }));
        let (accepted, sent) = tokio::join!(accepting, sending);
        (token, sid, accepted, sent)
    }))
    .await;
    for (token, sid, accepted, sent) in results {
        assert!(accepted.get("errors").is_none(), "{accepted}");
        for s in &sent {
            assert!(s.get("errors").is_none(), "{s}");
        }
        // The customer's messages and the agent's join line.
        assert_eq!(
            app.all_seqs(&token, &sid).await,
            (1..=MESSAGES as i64 + 1).collect::<Vec<_>>()
        );
    }
}

/// A message reads the same wherever it is read: the answer to the send,
/// the live event and the stored transcript give the same time, to the
/// microsecond the database keeps.
#[tokio::test]
async fn a_message_has_one_creation_time_everywhere() {
    let app = spawn(Options::default()).await;
    let cust = tokens::customer("clock");
    let sid = app.start_session(&cust).await;
    let mut ws = app.ws(Some(&cust)).await;
    ws.subscribe(
        "s",
        "subscription($s: ID!) { sessionEvents(sessionId: $s) {
           __typename ... on MessagePosted { message { seq createdAt } } } }",
        json!({ "s": sid }),
    )
    .await;
    ws.next_of("sessionEvents", "CaughtUp").await;
    let sent = app
        .ok(
            &cust,
            "mutation($s: ID!) { sendMessage(input: {sessionId: $s, body: \"hi\", clientMessageId: \"t1\"}) { createdAt } }",
            json!({ "s": sid }),
        )
        .await;
    let answered = sent["sendMessage"]["createdAt"]
        .as_str()
        .unwrap()
        .to_owned();
    let live = ws.next_of("sessionEvents", "MessagePosted").await;
    let stored = app
        .ok(
            &cust,
            "query($s: ID!) { session(id: $s) { messages(first: 1) { nodes { createdAt } } } }",
            json!({ "s": sid }),
        )
        .await;
    assert_eq!(live["message"]["createdAt"], answered.as_str());
    assert_eq!(
        stored["session"]["messages"]["nodes"][0]["createdAt"],
        answered.as_str()
    );
}
