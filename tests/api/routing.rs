//! Routing over GraphQL: fair offers, auto assignment, breaks, lapse,
//! decline, transfer and admin assignment.

use serde_json::json;

use testkit::{
    graphql::code_of,
    server::{spawn, Options},
    tokens,
};

fn waiting() -> (String, Option<String>) {
    ("WAITING".to_owned(), None)
}

fn offered_to(agent: &str) -> (String, Option<String>) {
    ("OFFERED".to_owned(), Some(agent.to_owned()))
}

fn active_with(agent: &str) -> (String, Option<String>) {
    ("ACTIVE".to_owned(), Some(agent.to_owned()))
}

/// One agent of capacity 2, five customers: served strictly in arrival order.
#[tokio::test]
async fn fifo_with_one_agent_of_capacity_two_and_five_customers() {
    let app = spawn(&[("ROUTING_MODE", "fair")]).await;
    let ann = tokens::agent("ann");
    let customers: Vec<String> = (0..5).map(|i| tokens::customer(&format!("c{i}"))).collect();
    let mut sessions = Vec::new();
    for c in &customers {
        sessions.push(app.start_session(c).await);
    }
    // Nobody on shift: all wait, in order.
    let queue = app
        .ok(
            &ann,
            "{ queue { id queuePosition } queueStats { waiting availableAgents } }",
            json!({}),
        )
        .await;
    let order: Vec<&str> = queue["queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        sessions.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(queue["queue"][4]["queuePosition"], 5);

    let mut events = app.ws(Some(&ann)).await;
    events
        .subscribe("a", "subscription { agentEvents { __typename ... on SessionOffered { session { id status } expiresAt } } }", json!({}))
        .await;
    app.start_shift(&ann).await;
    // The first two are offered to her, with a deadline.
    for expected in &sessions[..2] {
        let offer = events.next_of("agentEvents", "SessionOffered").await;
        assert_eq!(offer["session"]["id"], expected.as_str());
        assert!(offer["expiresAt"].is_string());
    }
    assert_eq!(app.state(&sessions[2]).await, waiting());
    let stats = app
        .ok(
            &ann,
            "{ queueStats { waiting offered freeSlots availableAgents } }",
            json!({}),
        )
        .await;
    assert_eq!(
        stats["queueStats"],
        json!({"waiting": 3, "offered": 2, "freeSlots": 0, "availableAgents": 1})
    );

    let mut served = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        assert_eq!(
            app.state(s).await,
            offered_to("ann"),
            "session {i} should be offered now"
        );
        let acc = app.accept(&ann, s).await;
        assert_eq!(acc["data"]["acceptSession"]["status"], "ACTIVE", "{acc}");
        served.push(s.clone());
        // Finishing the older chat frees a slot for the next customer.
        if served.len() == 2 || i == sessions.len() - 1 {
            app.end(&ann, &served.remove(0)).await;
        }
    }
    let history = app.history(&sessions[4]).await;
    assert_eq!(history[1], ("OFFERED".into(), Some("ann".into())));
}

/// Among free agents, the one who finished first gets the next customer.
#[tokio::test]
async fn the_agent_who_finished_first_gets_the_next_customer() {
    let app = spawn(&[("ROUTING_MODE", "auto")]).await;
    let (a, b) = (tokens::agent("a"), tokens::agent("b"));
    app.start_shift(&a).await;
    app.start_shift(&b).await;
    app.set_capacity("a", 1).await;
    app.set_capacity("b", 1).await;
    let s1 = app.start_session(&tokens::customer("c1")).await;
    let s2 = app.start_session(&tokens::customer("c2")).await;
    assert_eq!(
        app.state(&s1).await,
        active_with("a"),
        "a started the shift first"
    );
    assert_eq!(app.state(&s2).await, active_with("b"));
    // b finishes first, then a.
    app.end(&b, &s2).await;
    app.end(&a, &s1).await;
    let s3 = app.start_session(&tokens::customer("c3")).await;
    let s4 = app.start_session(&tokens::customer("c4")).await;
    assert_eq!(app.state(&s3).await, active_with("b"));
    assert_eq!(app.state(&s4).await, active_with("a"));
}

/// No offers while BREAK_REQUESTED, ON_BREAK after the last session, offers
/// again after endBreak.
#[tokio::test]
async fn a_break_drains_then_offers_resume_after_it() {
    let app = spawn(&[("ROUTING_MODE", "fair")]).await;
    let ann = tokens::agent("ann");
    app.start_shift(&ann).await;
    let s1 = app.start_session(&tokens::customer("c1")).await;
    app.accept(&ann, &s1).await;
    let brk = app
        .ok(&ann, "mutation { requestBreak { status } }", json!({}))
        .await;
    assert_eq!(brk["requestBreak"]["status"], "BREAK_REQUESTED");

    let s2 = app.start_session(&tokens::customer("c2")).await;
    assert_eq!(
        app.state(&s2).await,
        waiting(),
        "nothing new while a break is requested"
    );
    app.end(&ann, &s1).await;
    assert_eq!(app.agent_status("ann").await, "ON_BREAK");
    assert_eq!(app.state(&s2).await, waiting(), "nothing new on break");

    let back = app
        .ok(&ann, "mutation { endBreak { status } }", json!({}))
        .await;
    assert_eq!(back["endBreak"]["status"], "AVAILABLE");
    assert_eq!(app.state(&s2).await, offered_to("ann"));

    // Asking for a break with an offer open withdraws it.
    app.ok(&ann, "mutation { requestBreak { status } }", json!({}))
        .await;
    assert_eq!(app.agent_status("ann").await, "ON_BREAK");
    assert_eq!(app.state(&s2).await, waiting());
    // Ending the shift while holding a chat drains to OFFLINE.
    app.ok(&ann, "mutation { endBreak { status } }", json!({}))
        .await;
    app.accept(&ann, &s2).await;
    let end = app
        .ok(&ann, "mutation { endShift { status } }", json!({}))
        .await;
    assert_eq!(end["endShift"]["status"], "SHIFT_ENDING");
    app.end(&ann, &s2).await;
    assert_eq!(app.agent_status("ann").await, "OFFLINE");
}

/// A declined offer goes to the next agent; the session keeps its place.
#[tokio::test]
async fn a_declined_offer_moves_on_and_keeps_its_queue_place() {
    let app = spawn(&[("ROUTING_MODE", "fair")]).await;
    let (a, b) = (tokens::agent("a"), tokens::agent("b"));
    app.start_shift(&a).await;
    app.set_capacity("a", 1).await;
    let s1 = app.start_session(&tokens::customer("c1")).await;
    let s2 = app.start_session(&tokens::customer("c2")).await;
    assert_eq!(app.state(&s1).await, offered_to("a"));

    let declined = app
        .ok(
            &a,
            "mutation($s: ID!) { declineSession(sessionId: $s) { id } }",
            json!({"s": s1}),
        )
        .await;
    assert_eq!(declined["declineSession"]["id"], s1.as_str());
    // a is not offered s1 again; the next customer goes to a instead.
    assert_eq!(app.state(&s1).await, waiting());
    assert_eq!(app.state(&s2).await, offered_to("a"));
    let s3 = app.start_session(&tokens::customer("c3")).await;
    let queue = app
        .ok(&a, "{ queue { id status queuePosition } }", json!({}))
        .await;
    assert_eq!(
        queue["queue"][0]["id"],
        s1.as_str(),
        "s1 kept its place at the head"
    );
    assert_eq!(queue["queue"][0]["queuePosition"], 1);
    // The next agent to come gets s1, not the later s3.
    app.ok(&b, "{ me { id } }", json!({})).await; // first sight creates the agent
    app.set_capacity("b", 1).await;
    app.start_shift(&b).await;
    assert_eq!(app.state(&s1).await, offered_to("b"));
    assert_eq!(app.state(&s3).await, waiting());
    // Declining someone else's offer is a conflict.
    assert_eq!(
        app.error_code(
            Some(&a),
            "mutation($s: ID!) { declineSession(sessionId: $s) { id } }",
            json!({"s": s1})
        )
        .await,
        "CONFLICT"
    );
    assert_eq!(
        app.history(&s1).await,
        vec![
            ("QUEUED".into(), None),
            ("OFFERED".into(), Some("a".into())),
            ("DECLINED".into(), Some("a".into())),
            ("OFFERED".into(), Some("b".into())),
        ]
    );
}

/// An unanswered offer lapses: the agent goes on break and the session is
/// offered to the next agent.
#[tokio::test]
async fn a_lapsed_offer_puts_the_agent_on_break_and_moves_on() {
    let app = spawn(&[("ROUTING_MODE", "fair"), ("OFFER_TIMEOUT_SECS", "1")]).await;
    let (a, b) = (tokens::agent("a"), tokens::agent("b"));
    app.start_shift(&a).await;
    let s1 = app.start_session(&tokens::customer("c1")).await;
    assert_eq!(app.state(&s1).await, offered_to("a"));
    let mut a_events = app.ws(Some(&a)).await;
    a_events
        .subscribe(
            "a",
            "subscription { agentEvents { __typename ... on AgentChanged { agent { status } } } }",
            json!({}),
        )
        .await;
    let mut b_events = app.ws(Some(&b)).await;
    b_events
        .subscribe(
            "b",
            "subscription { agentEvents { __typename ... on SessionOffered { session { id } } } }",
            json!({}),
        )
        .await;
    app.start_shift(&b).await;

    let offer = b_events.next_of("agentEvents", "SessionOffered").await;
    assert_eq!(offer["session"]["id"], s1.as_str());
    loop {
        let changed = a_events.next_of("agentEvents", "AgentChanged").await;
        if changed["agent"]["status"] == "ON_BREAK" {
            break;
        }
    }
    assert_eq!(app.agent_status("a").await, "ON_BREAK");
    let history = app.history(&s1).await;
    assert_eq!(
        history[1..3],
        [
            ("OFFERED".into(), Some("a".into())),
            ("LAPSED".into(), Some("a".into()))
        ]
    );
    // Accepting after the lapse is too late.
    assert_eq!(code_of(&app.accept(&a, &s1).await), "CONFLICT");
}

/// Offer deadlines are stored: a server that restarts lapses them on time.
#[tokio::test]
async fn offer_lapse_resumes_after_a_restart() {
    let mut first = spawn(&[("ROUTING_MODE", "fair"), ("OFFER_TIMEOUT_SECS", "2")]).await;
    let db = first.database_url.clone().unwrap();
    let a = tokens::agent("a");
    first.start_shift(&a).await;
    let s1 = first.start_session(&tokens::customer("c1")).await;
    assert_eq!(first.state(&s1).await, offered_to("a"));
    first.stop();

    let second = spawn(&[
        ("ROUTING_MODE", "fair"),
        ("OFFER_TIMEOUT_SECS", "2"),
        ("DATABASE_URL", db.as_str()),
    ])
    .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while second.agent_status("a").await != "ON_BREAK" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the offer never lapsed after the restart"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(second.state(&s1).await, waiting());
}

/// Transfer to a named agent keeps the session ACTIVE; back to the queue it
/// keeps its original place.
#[tokio::test]
async fn transfer_to_an_agent_and_back_to_the_queue() {
    let app = spawn(Options::default()).await; // manual routing: nothing moves by itself
    let (a, b, c) = (tokens::agent("a"), tokens::agent("b"), tokens::agent("c"));
    for t in [&a, &b, &c] {
        app.start_shift(t).await;
    }
    let alice = tokens::customer("alice");
    let s1 = app.start_session(&alice).await;
    let s2 = app.start_session(&tokens::customer("bob")).await;
    app.accept(&a, &s1).await;

    let mut b_events = app.ws(Some(&b)).await;
    b_events
        .subscribe(
            "b",
            "subscription { agentEvents { __typename ... on SessionAssigned { session { id } } } }",
            json!({}),
        )
        .await;
    let transfer = "mutation($s: ID!, $to: ID) { transferSession(sessionId: $s, toAgentId: $to) { status agent { id } } }";
    let moved = app.ok(&a, transfer, json!({"s": s1, "to": "b"})).await;
    assert_eq!(
        moved["transferSession"],
        json!({"status": "ACTIVE", "agent": {"id": "b"}})
    );
    assert_eq!(
        b_events.next_of("agentEvents", "SessionAssigned").await["session"]["id"],
        s1.as_str()
    );
    // The old agent can no longer write; the new one can.
    assert_eq!(
        code_of(&app.send(&a, &s1, "still mine?", "a1").await),
        "FORBIDDEN"
    );
    assert!(app
        .send(&b, &s1, "hello from b", "b1")
        .await
        .get("errors")
        .is_none());

    // Refusals: not the holder, a customer, a target at capacity or away.
    assert_eq!(
        app.error_code(Some(&a), transfer, json!({"s": s1, "to": "c"}))
            .await,
        "FORBIDDEN"
    );
    assert_eq!(
        app.error_code(Some(&alice), transfer, json!({"s": s1, "to": "c"}))
            .await,
        "FORBIDDEN"
    );
    app.set_capacity("c", 1).await;
    app.accept(&c, &s2).await;
    assert_eq!(
        app.error_code(Some(&b), transfer, json!({"s": s1, "to": "c"}))
            .await,
        "CONFLICT"
    );
    assert_eq!(
        app.error_code(Some(&b), transfer, json!({"s": s1, "to": "nobody"}))
            .await,
        "NOT_FOUND"
    );

    // Back to the queue: WAITING, and ahead of a later arrival.
    let s3 = app.start_session(&tokens::customer("carol")).await;
    let back = app.ok(&b, transfer, json!({"s": s1, "to": null})).await;
    assert_eq!(back["transferSession"]["status"], "WAITING");
    let queue = app
        .ok(&a, "{ queue { id queuePosition } }", json!({}))
        .await;
    assert_eq!(queue["queue"][0]["id"], s1.as_str());
    assert_eq!(queue["queue"][1]["id"], s3.as_str());
    // Each transfer left a SYSTEM line and a history entry.
    let lines = app
        .ok(
            &alice,
            "query($s: ID!) { session(id: $s) { messages { nodes { sender body } } } }",
            json!({"s": s1}),
        )
        .await;
    let system: Vec<&str> = lines["session"]["messages"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["sender"] == "SYSTEM")
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(system.len(), 3, "{system:?}");
    assert!(system[1].contains("transferred"));
    assert!(system[2].contains("returned the chat to the queue"));
    let kinds: Vec<String> = app.history(&s1).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["QUEUED", "ACCEPTED", "TRANSFERRED", "REQUEUED"]);
}

/// An admin gives a WAITING or OFFERED session to a named agent, in any mode.
#[tokio::test]
async fn admin_assignment() {
    let app = spawn(&[("ROUTING_MODE", "fair")]).await;
    let (a, b) = (tokens::agent("a"), tokens::agent("b"));
    app.start_shift(&a).await;
    app.start_shift(&b).await;
    let s1 = app.start_session(&tokens::customer("c1")).await;
    assert_eq!(app.state(&s1).await, offered_to("a"));
    let assign = "mutation($s: ID!, $a: ID!) { assignSession(sessionId: $s, agentId: $a) { status agent { id } } }";
    assert_eq!(
        app.error_code(Some(&a), assign, json!({"s": s1, "a": "a"}))
            .await,
        "FORBIDDEN"
    );
    let admin = tokens::admin();
    let given = app.ok(&admin, assign, json!({"s": s1, "a": "b"})).await;
    assert_eq!(
        given["assignSession"],
        json!({"status": "ACTIVE", "agent": {"id": "b"}})
    );
    // a's offer is gone, and assigning an ACTIVE session is a conflict.
    let me = app
        .ok(&a, "{ me { agent { activeSessionCount } } }", json!({}))
        .await;
    assert_eq!(me["me"]["agent"]["activeSessionCount"], 0);
    assert_eq!(
        app.error_code(Some(&admin), assign, json!({"s": s1, "a": "a"}))
            .await,
        "CONFLICT"
    );
    // A full agent cannot be given more.
    app.set_capacity("b", 1).await;
    app.ok(&a, "mutation { requestBreak { status } }", json!({}))
        .await;
    let s2 = app.start_session(&tokens::customer("c2")).await;
    assert_eq!(app.state(&s2).await, waiting());
    assert_eq!(
        app.error_code(Some(&admin), assign, json!({"s": s2, "a": "b"}))
            .await,
        "CONFLICT"
    );
    assert_eq!(
        app.error_code(
            Some(&admin),
            "mutation { setAgentCapacity(agentId: \"b\", capacity: 0) { id } }",
            json!({})
        )
        .await,
        "BAD_USER_INPUT"
    );
    // Raising capacity lets the matcher offer the waiting session at once.
    app.set_capacity("b", 2).await;
    assert_eq!(app.state(&s2).await, offered_to("b"));
}

/// Arrivals that trigger matching while a pass runs share the next pass,
/// and each startSession still answers only after a pass that saw its
/// session: with room for all, every answer is already ACTIVE.
#[tokio::test]
async fn a_burst_of_arrivals_is_matched_before_each_answer() {
    let app = spawn(&[("ROUTING_MODE", "auto"), ("AGENT_CAPACITY", "40")]).await;
    let ann = tokens::agent("ann");
    app.start_shift(&ann).await;
    let starts = (0..30).map(|i| {
        let app = &app;
        async move {
            app.ok(
                &tokens::customer(&format!("burst-{i}")),
                "mutation { startSession(input: {}) { status agent { id } } }",
                json!({}),
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(starts).await;
    for answer in &answers {
        assert_eq!(answer["startSession"]["status"], "ACTIVE", "{answer}");
        assert_eq!(answer["startSession"]["agent"]["id"], "ann");
    }
}
