use std::collections::{HashMap, HashSet};

use futures_util::future::join_all;
use serde_json::json;

use testkit::{
    graphql::code_of,
    server::{spawn, Options},
    tokens,
};

/// Messages posted by several senders while a subscriber replays arrive
/// exactly once each, in seq order, with one CaughtUp between replay and live.
#[tokio::test]
async fn replay_is_gapless_under_concurrent_sends() {
    let app = spawn(Options::default()).await;
    let cust = tokens::customer("dana");
    let agent = tokens::agent("ann");
    let sid = app.start_session(&cust).await;
    app.start_shift(&agent).await;
    app.accept(&agent, &sid).await;

    const PER_WRITER: usize = 40;
    // Four concurrent writers: the customer and the agent, twice each.
    let writers = [(&cust, "c"), (&agent, "a"), (&cust, "c2"), (&agent, "a2")];
    let app_ref = &app;
    let sid_ref = &sid;
    let send_all = join_all(writers.iter().map(|(token, tag)| async move {
        for i in 0..PER_WRITER {
            let r = app_ref
                .send(token, sid_ref, &format!("{tag} {i}"), &format!("{tag}-{i}"))
                .await;
            assert!(r.get("errors").is_none(), "{r}");
        }
    }));

    // Subscribers join while the writers are busy, from different points.
    let subscribe = async {
        let mut results = Vec::new();
        for after in [0i64, 5, 30] {
            tokio::time::sleep(std::time::Duration::from_millis(40)).await;
            // A client resumes from a seq it has seen, so one that exists.
            loop {
                let s = app_ref
                    .ok(
                        &cust,
                        "query($s: ID!) { session(id: $s) { lastSeq } }",
                        json!({"s": sid_ref}),
                    )
                    .await;
                if s["session"]["lastSeq"].as_i64().unwrap() >= after {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let mut ws = app_ref.ws(Some(&cust)).await;
            ws.session_events("s", sid_ref, after).await;
            results.push((after, ws));
        }
        results
    };
    let (_, subscribers) = tokio::join!(send_all, subscribe);

    let total = 1 + writers.len() * PER_WRITER; // the agent's SYSTEM join line too
    for (after, mut ws) in subscribers {
        let mut seqs = Vec::new();
        let mut caught_up = 0;
        while seqs.last().copied().unwrap_or(after) < total as i64 {
            let ev = ws.next().await;
            let ev = &ev["data"]["sessionEvents"];
            match ev["__typename"].as_str() {
                Some("MessagePosted") => seqs.push(ev["message"]["seq"].as_i64().unwrap()),
                Some("CaughtUp") => {
                    caught_up += 1;
                    assert_eq!(
                        ev["seq"].as_i64(),
                        Some(seqs.last().copied().unwrap_or(after))
                    );
                }
                _ => {}
            }
        }
        let expected: Vec<i64> = ((after + 1)..=total as i64).collect();
        assert_eq!(
            seqs, expected,
            "subscriber from {after} saw a gap, duplicate or reorder"
        );
        assert_eq!(caught_up, 1);
    }
    assert_eq!(
        app.all_seqs(&cust, &sid).await,
        (1..=total as i64).collect::<Vec<_>>()
    );
}

/// 50 customers write into their own sessions at once; every session's seqs
/// are exactly 1..=N.
#[tokio::test]
async fn fifty_customers_sending_concurrently_get_complete_seq_sequences() {
    let app = spawn(Options::default()).await;
    const CUSTOMERS: usize = 50;
    const MESSAGES: usize = 10;
    let app_ref = &app;
    let sessions = join_all((0..CUSTOMERS).map(|i| async move {
        let token = tokens::customer(&format!("cust-{i}"));
        let sid = app_ref.start_session(&token).await;
        // Each customer fires all its messages at once, too.
        let results = join_all((0..MESSAGES).map(|m| {
            let (token, sid) = (token.clone(), sid.clone());
            async move {
                app_ref
                    .send(&token, &sid, &format!("message {m}"), &format!("k{m}"))
                    .await
            }
        }))
        .await;
        for r in &results {
            assert!(r.get("errors").is_none(), "{r}");
        }
        (token, sid)
    }))
    .await;
    for (token, sid) in sessions {
        assert_eq!(
            app.all_seqs(&token, &sid).await,
            (1..=MESSAGES as i64).collect::<Vec<_>>()
        );
    }
}

/// A retried send returns the first message, even when the retries race.
#[tokio::test]
async fn retries_with_the_same_client_message_id_store_one_message() {
    let app = spawn(Options::default()).await;
    let cust = tokens::customer("erin");
    let sid = app.start_session(&cust).await;
    let first = app.send(&cust, &sid, "only once", "same-key").await;
    let again = app
        .send(&cust, &sid, "only once (edited retry)", "same-key")
        .await;
    assert_eq!(again["data"]["sendMessage"], first["data"]["sendMessage"]);

    let app_ref = &app;
    let (cust_ref, sid_ref) = (&cust, &sid);
    let racing = join_all(
        (0..10).map(|_| async move { app_ref.send(cust_ref, sid_ref, "racing", "race-key").await }),
    )
    .await;
    let ids: HashSet<String> = racing
        .iter()
        .map(|r| {
            r["data"]["sendMessage"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "racing retries stored more than one message");
    assert_eq!(app.all_seqs(&cust, &sid).await, vec![1, 2]);

    // The key is per sender: the agent may use the same one.
    let agent = tokens::agent("ann");
    app.start_shift(&agent).await;
    app.accept(&agent, &sid).await;
    let agents = app.send(&agent, &sid, "hello", "same-key").await;
    assert_eq!(agents["data"]["sendMessage"]["seq"], 4, "{agents}");
}

/// Manual routing: twenty agents grab one session at once; one wins.
#[tokio::test]
async fn twenty_agents_racing_for_one_session_exactly_one_wins() {
    let app = spawn(Options::default()).await;
    let cust = tokens::customer("fay");
    let sid = app.start_session(&cust).await;
    let agents: Vec<String> = (0..20)
        .map(|i| tokens::agent(&format!("agent-{i}")))
        .collect();
    for a in &agents {
        app.start_shift(a).await;
    }
    let app_ref = &app;
    let sid_ref = &sid;
    let results = join_all(
        agents
            .iter()
            .map(|a| async move { app_ref.accept(a, sid_ref).await }),
    )
    .await;
    let winners: Vec<_> = results
        .iter()
        .filter(|r| r.get("errors").is_none())
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in results.iter().filter(|r| r.get("errors").is_some()) {
        assert_eq!(code_of(r), "CONFLICT");
    }
    let winner = winners[0]["data"]["acceptSession"]["agent"]["id"].clone();
    let admin = tokens::admin();
    let s = app
        .ok(
            &admin,
            "query($s: ID!) { session(id: $s) { agent { id } history { kind agentId } } }",
            json!({"s": sid}),
        )
        .await;
    assert_eq!(s["session"]["agent"]["id"], winner);
    let accepted: Vec<_> = s["session"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == "ACCEPTED")
        .collect();
    assert_eq!(accepted.len(), 1);
}

/// Capacity holds when one agent grabs more sessions at once than allowed.
#[tokio::test]
async fn an_agent_never_exceeds_capacity_even_when_accepting_in_parallel() {
    let app = spawn(Options::default()).await;
    let agent = tokens::agent("gus");
    app.start_shift(&agent).await;
    let app_ref = &app;
    let sessions = join_all((0..6).map(|i| async move {
        app_ref
            .start_session(&tokens::customer(&format!("c{i}")))
            .await
    }))
    .await;
    let agent_ref = &agent;
    let results = join_all(
        sessions
            .iter()
            .map(|s| async move { app_ref.accept(agent_ref, s).await }),
    )
    .await;
    let won = results.iter().filter(|r| r.get("errors").is_none()).count();
    assert_eq!(won, 2, "default capacity is 2: {results:?}");
    for r in results.iter().filter(|r| r.get("errors").is_some()) {
        assert_eq!(code_of(r), "CONFLICT");
    }
    let me = app
        .ok(
            &agent,
            "{ me { agent { activeSessionCount capacity } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me["me"]["agent"],
        json!({"activeSessionCount": 2, "capacity": 2})
    );
}

/// Two racing startSession calls of one customer yield one session.
#[tokio::test]
async fn racing_starts_of_one_customer_yield_one_open_session() {
    let app = spawn(Options::default()).await;
    let cust = tokens::customer("hal");
    let app_ref = &app;
    let cust_ref = &cust;
    let ids: HashSet<String> =
        join_all((0..10).map(|_| async move { app_ref.start_session(cust_ref).await }))
            .await
            .into_iter()
            .collect();
    assert_eq!(ids.len(), 1);
}

/// Sends that arrive together share transactions (group commit), and each
/// still gets its own answer: stored, the first message again for a
/// retried key, or its own refusal. Refused sends spend no seq.
#[tokio::test]
async fn sends_sharing_a_transaction_each_get_their_own_answer() {
    let app = spawn(Options::default()).await;
    let writer = tokens::customer("gus");
    let open = app.start_session(&writer).await;
    let done = tokens::customer("hal");
    let ended = app.start_session(&done).await;
    app.end(&done, &ended).await;
    let stranger = tokens::customer("ivy");
    let nowhere = uuid::Uuid::new_v4().to_string();

    const KEYS: usize = 100;
    let app_ref = &app;
    let (writer_ref, open_ref) = (&writer, &open);
    let stored = (0..KEYS).map(|k| async move {
        (
            format!("k{k}"),
            app_ref
                .send(writer_ref, open_ref, &format!("m{k}"), &format!("k{k}"))
                .await,
        )
    });
    // A retry of every fifth key, racing its first send.
    let retried = (0..KEYS).step_by(5).map(|k| async move {
        (
            format!("k{k}"),
            app_ref
                .send(writer_ref, open_ref, "retry", &format!("k{k}"))
                .await,
        )
    });
    let refused = (0..10).flat_map(|n| {
        let key = format!("r{n}");
        [
            ("CONFLICT", done.clone(), ended.clone(), key.clone()),
            ("FORBIDDEN", stranger.clone(), open.clone(), key.clone()),
            ("NOT_FOUND", writer.clone(), nowhere.clone(), key),
        ]
        .map(|(code, token, session, key)| async move {
            let answer = app_ref.send(&token, &session, "no", &key).await;
            (code, answer)
        })
    });
    let (stored, retried, refused) =
        tokio::join!(join_all(stored), join_all(retried), join_all(refused));

    let mut ids = std::collections::HashMap::new();
    for (key, answer) in &stored {
        let id = answer["data"]["sendMessage"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {answer}"));
        ids.insert(key.clone(), id.to_owned());
    }
    assert_eq!(ids.len(), KEYS);
    for (key, answer) in &retried {
        assert_eq!(
            answer["data"]["sendMessage"]["id"].as_str(),
            Some(ids[key].as_str()),
            "a retry of {key} must be answered with the first message: {answer}"
        );
    }
    for (code, answer) in &refused {
        assert_eq!(code_of(answer), *code, "{answer}");
    }
    assert_eq!(
        app.all_seqs(&writer, &open).await,
        (1..=KEYS as i64).collect::<Vec<_>>()
    );

    let messages = app.counter("switchboard_messages_total").await;
    let transactions = app.counter("switchboard_send_transactions_total").await;
    assert_eq!(messages, KEYS as u64);
    assert!(
        transactions < messages,
        "{messages} concurrent sends took {transactions} transactions: none shared one"
    );
}

/// A burst of arrivals enters the queue in shared transactions (group
/// commit), and auto routing then fills every free slot in one go: each
/// customer gets one session however often they ask, the queue keeps one
/// place per waiting session, and every assigned chat opens with its join
/// line.
#[tokio::test]
async fn a_burst_of_arrivals_shares_queue_entries_and_is_assigned_whole() {
    let app = spawn(&[("ROUTING_MODE", "auto")]).await;
    for agent in ["ann", "bob"] {
        app.start_shift(&tokens::agent(agent)).await;
    }
    const CUSTOMERS: usize = 40;
    let app_ref = &app;
    // Every customer asks twice at once.
    let answers = join_all((0..CUSTOMERS * 2).map(|n| async move {
        let token = tokens::customer(&format!("burst-{}", n % CUSTOMERS));
        (n % CUSTOMERS, app_ref.start_session(&token).await)
    }))
    .await;
    let mut by_customer: HashMap<usize, HashSet<String>> = HashMap::new();
    for (customer, session) in answers {
        by_customer.entry(customer).or_default().insert(session);
    }
    assert_eq!(by_customer.len(), CUSTOMERS);
    assert!(
        by_customer.values().all(|ids| ids.len() == 1),
        "a customer got two sessions: {by_customer:?}"
    );

    let mut active = Vec::new();
    let mut positions = Vec::new();
    for (customer, ids) in &by_customer {
        let sid = ids.iter().next().expect("one id");
        let token = tokens::customer(&format!("burst-{customer}"));
        let s = app
            .ok(
                &token,
                "query($id: ID!) { session(id: $id) { status queuePosition agent { id } } }",
                json!({ "id": sid }),
            )
            .await;
        match s["session"]["status"].as_str() {
            Some("ACTIVE") => {
                active.push(s["session"]["agent"]["id"].as_str().map(str::to_owned));
                assert_eq!(app.all_seqs(&token, sid).await, vec![1], "the join line");
            }
            Some("WAITING") => positions.push(s["session"]["queuePosition"].as_i64()),
            other => panic!("unexpected status {other:?}: {s}"),
        }
    }
    // Two agents of capacity 2.
    assert_eq!(active.len(), 4, "{active:?}");
    for agent in ["ann", "bob"] {
        assert_eq!(
            active
                .iter()
                .filter(|a| a.as_deref() == Some(agent))
                .count(),
            2
        );
    }
    positions.sort();
    assert_eq!(
        positions,
        (1..=(CUSTOMERS as i64 - 4)).map(Some).collect::<Vec<_>>()
    );

    let entries = app.counter("switchboard_queue_entries_total").await;
    let transactions = app
        .counter("switchboard_queue_entry_transactions_total")
        .await;
    assert_eq!(entries, CUSTOMERS as u64);
    assert!(
        transactions < entries,
        "{entries} concurrent arrivals took {transactions} transactions: none shared one"
    );
}

/// Many live chats at once: the delivery marks of all of them share
/// writes, no send fails (a batch of sends and a batch of marks lock
/// session rows in the same order, so they cannot deadlock), and every
/// customer hears that everything the agent sent was delivered.
#[tokio::test]
async fn delivery_marks_of_many_live_chats_share_writes() {
    let app = spawn(Options::default()).await;
    const CHATS: usize = 30;
    const MESSAGES: usize = 5;
    let ann = tokens::agent("ann");
    app.start_shift(&ann).await;
    app.set_capacity("ann", CHATS as i64).await;
    let mut chats = Vec::new();
    for n in 0..CHATS {
        let customer = tokens::customer(&format!("live-{n}"));
        let sid = app.start_session(&customer).await;
        app.accept(&ann, &sid).await;
        let mut feed = app.ws(Some(&customer)).await;
        // After the join line (seq 1).
        feed.session_events("s", &sid, 1).await;
        feed.next_of("sessionEvents", "CaughtUp").await;
        chats.push((sid, feed));
    }

    let app_ref = &app;
    let ann_ref = &ann;
    let sends = join_all(chats.iter().flat_map(|(sid, _)| {
        (0..MESSAGES).map(move |m| async move {
            app_ref
                .send(ann_ref, sid, &format!("m{m}"), &format!("{sid}-{m}"))
                .await
        })
    }))
    .await;
    for answer in &sends {
        assert!(answer.get("errors").is_none(), "{answer}");
    }
    let last = 1 + MESSAGES as i64;
    for (_, feed) in &mut chats {
        loop {
            let r = feed.next_of("sessionEvents", "ReceiptUpdated").await;
            if r["reader"] == "CUSTOMER" && r["deliveredSeq"] == last {
                break;
            }
        }
    }

    let marks = app.counter("switchboard_delivery_marks_total").await;
    let writes = app.counter("switchboard_delivery_writes_total").await;
    assert!(marks >= CHATS as u64, "{marks} marks");
    assert!(
        writes < marks,
        "{marks} delivery marks took {writes} writes: none shared one"
    );
}
