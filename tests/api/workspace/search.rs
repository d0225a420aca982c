use serde_json::{json, Value};
use switchboard::clock::Clock;
use testkit::{
    db,
    graphql::{code_of, Client},
    pgcount::StatementCounter,
    server::{spawn, Options},
    tokens,
};

const SEARCH: &str = "query($f: SessionFilter!, $n: Int, $a: String) {
    searchSessions(filter: $f, first: $n, after: $a) {
        edges { cursor node { id createdAt } }
        pageInfo { hasNextPage hasPreviousPage endCursor }
    } }";

/// The ids of the sessions `who` finds with `filter`, newest first.
pub(crate) async fn search(app: &Client, who: &str, filter: Value) -> Vec<String> {
    let data = app.ok(who, SEARCH, json!({ "f": filter, "n": 100 })).await;
    data["searchSessions"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn start(app: &Client, customer: &str, subject: Option<&str>) -> (String, String) {
    let data = app
        .ok(
            customer,
            "mutation($s: String) { startSession(input: {subject: $s}) { id createdAt } }",
            json!({ "s": subject }),
        )
        .await;
    let s = &data["startSession"];
    (
        s["id"].as_str().unwrap().to_owned(),
        s["createdAt"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn filters_words_pages_and_who_sees_what() {
    let app = spawn(Options::default()).await;
    let (ann, bob, admin) = (tokens::agent("ann"), tokens::agent("bob"), tokens::admin());
    let (alice, bert, carl, dora) = (
        tokens::customer("alice"),
        tokens::customer("bert"),
        tokens::customer("carl"),
        tokens::customer("dora"),
    );
    app.start_shift(&ann).await;
    app.start_shift(&bob).await;

    // s1: ann's, ended; the words are split between subject and a message.
    let (s1, _) = start(&app, &alice, Some("Refund for order")).await;
    app.send(&alice, &s1, "my Kettle is broken", "m1").await;
    app.accept(&ann, &s1).await;
    app.end(&ann, &s1).await;
    // s2: bob's.
    let (s2, s2_at) = start(&app, &bert, Some("Login issue")).await;
    app.send(&bert, &s2, "cannot log in; refund?", "m1").await;
    app.accept(&bob, &s2).await;
    // s3: waiting.
    let (s3, s3_at) = start(&app, &carl, None).await;
    app.send(&carl, &s3, "Kettle REFUND please", "m1").await;
    // s4: ann's, handed on to bob.
    let (s4, _) = start(&app, &dora, Some("kettle")).await;
    app.accept(&ann, &s4).await;
    app.ok(
        &ann,
        "mutation($s: ID!) { transferSession(sessionId: $s, toAgentId: \"bob\") { id } }",
        json!({ "s": s4 }),
    )
    .await;

    // Words: all of them, anywhere, any case; newest first.
    assert_eq!(
        search(&app, &admin, json!({ "text": "refund" })).await,
        [s3.as_str(), s2.as_str(), s1.as_str()]
    );
    assert_eq!(
        search(&app, &admin, json!({ "text": "kettle  Refund" })).await,
        [s3.as_str(), s1.as_str()]
    );
    assert_eq!(
        search(&app, &admin, json!({ "text": "KETTLE" })).await,
        [s4.as_str(), s3.as_str(), s1.as_str()]
    );
    assert!(search(&app, &admin, json!({ "text": "kettle login" }))
        .await
        .is_empty());
    // LIKE's wildcards are only characters.
    assert!(search(&app, &admin, json!({ "text": "%" }))
        .await
        .is_empty());
    assert!(search(&app, &admin, json!({ "text": "_" }))
        .await
        .is_empty());
    // The other filters.
    assert_eq!(
        search(&app, &admin, json!({ "status": ["ENDED"] })).await,
        [s1.as_str()]
    );
    assert_eq!(
        search(&app, &admin, json!({ "status": ["WAITING", "ENDED"] })).await,
        [s3.as_str(), s1.as_str()]
    );
    assert_eq!(
        search(&app, &admin, json!({ "agentId": "bob" })).await,
        [s4.as_str(), s2.as_str()]
    );
    assert_eq!(
        search(&app, &admin, json!({ "customerId": "carl" })).await,
        [s3.as_str()]
    );
    assert_eq!(
        search(&app, &admin, json!({ "from": s2_at })).await,
        [s4.as_str(), s3.as_str(), s2.as_str()]
    );
    assert_eq!(
        search(&app, &admin, json!({ "from": s2_at, "to": s3_at })).await,
        [s2.as_str()]
    );
    assert_eq!(
        search(&app, &admin, json!({ "agentId": "bob", "text": "refund" })).await,
        [s2.as_str()]
    );

    // Pages of two, following the cursors.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let data = app
            .ok(&admin, SEARCH, json!({ "f": {}, "n": 2, "a": after }))
            .await;
        let page = &data["searchSessions"];
        pages += 1;
        assert_eq!(page["pageInfo"]["hasPreviousPage"], pages > 1);
        for e in page["edges"].as_array().unwrap() {
            seen.push(e["node"]["id"].as_str().unwrap().to_owned());
        }
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, [s4.as_str(), s3.as_str(), s2.as_str(), s1.as_str()]);
    assert_eq!(pages, 2);

    // Agents: what is or was theirs; never a waiting one or a colleague's.
    assert_eq!(
        search(&app, &ann, json!({})).await,
        [s4.as_str(), s1.as_str()]
    );
    assert_eq!(
        search(&app, &bob, json!({})).await,
        [s4.as_str(), s2.as_str()]
    );
    assert_eq!(
        search(&app, &ann, json!({ "customerId": "bert" })).await,
        Vec::<&str>::new()
    );

    // Refusals.
    let refused = |who: &str, vars: Value| {
        let who = who.to_owned();
        let app = &app;
        async move { code_of(&app.gql(Some(&who), SEARCH, vars).await) }
    };
    assert_eq!(refused(&alice, json!({ "f": {} })).await, "FORBIDDEN");
    assert_eq!(
        refused(&admin, json!({ "f": {}, "n": 101 })).await,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        refused(&admin, json!({ "f": {}, "a": "bogus" })).await,
        "BAD_USER_INPUT"
    );
    let many: String = (0..11).map(|i| format!("w{i} ")).collect();
    assert_eq!(
        refused(&admin, json!({ "f": { "text": many } })).await,
        "BAD_USER_INPUT"
    );
}

const WORKLOAD: &str = "{ workload { agent { id status } held capacity freeSlots acceptedToday sessions { id status } } queueStats { freeSlots waiting } }";

fn row<'a>(data: &'a Value, agent: &str) -> &'a Value {
    data["workload"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["agent"]["id"] == agent)
        .unwrap_or_else(|| panic!("no {agent} in {data}"))
}

/// With auto routing, workload's figures are what routing acts on: an
/// agent with a free slot is given the next session; one with none, or
/// not AVAILABLE, is not.
#[tokio::test]
async fn workload_agrees_with_routing() {
    let app = spawn(&[("ROUTING_MODE", "auto")]).await;
    let (ann, bob, admin) = (tokens::agent("ann"), tokens::agent("bob"), tokens::admin());
    app.start_shift(&ann).await;
    app.set_capacity("ann", 3).await;
    app.start_shift(&bob).await;
    app.ok(&bob, "mutation { requestBreak { status } }", json!({}))
        .await;

    let before = app.ok(&admin, WORKLOAD, json!({})).await;
    assert_eq!(row(&before, "ann")["freeSlots"], 3);
    assert_eq!(row(&before, "bob")["freeSlots"], 0, "on a break");
    assert_eq!(before["queueStats"]["freeSlots"], 3);

    let mut sessions = Vec::new();
    for c in ["c1", "c2", "c3", "c4"] {
        sessions.push(app.start_session(&tokens::customer(c)).await);
    }
    let after = app.ok(&admin, WORKLOAD, json!({})).await;
    let a = row(&after, "ann");
    assert_eq!(
        (
            a["held"].as_i64(),
            a["capacity"].as_i64(),
            a["freeSlots"].as_i64()
        ),
        (Some(3), Some(3), Some(0))
    );
    assert_eq!(a["acceptedToday"], 3);
    let held: Vec<&str> = a["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        held,
        sessions[..3].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(row(&after, "bob")["held"], 0);
    assert_eq!(after["queueStats"]["waiting"], 1, "no free slot anywhere");
    assert_eq!(after["queueStats"]["freeSlots"], 0);

    // A slot frees: routing gives it the waiting one, and workload says so.
    app.end(&ann, &sessions[0]).await;
    let mut now = app.ok(&admin, WORKLOAD, json!({})).await;
    for _ in 0..100 {
        if now["queueStats"]["waiting"] == 0 {
            break;
        }
        tokio::task::yield_now().await;
        now = app.ok(&admin, WORKLOAD, json!({})).await;
    }
    let a = row(&now, "ann");
    assert_eq!(
        (
            a["held"].as_i64(),
            a["freeSlots"].as_i64(),
            a["acceptedToday"].as_i64()
        ),
        (Some(3), Some(0), Some(4))
    );
    assert!(a["sessions"].to_string().contains(&sessions[3]));

    // Agents see themselves only; customers nothing.
    let own = app.ok(&bob, WORKLOAD, json!({})).await;
    assert_eq!(own["workload"].as_array().unwrap().len(), 1);
    assert_eq!(own["workload"][0]["agent"]["id"], "bob");
    assert_eq!(own["workload"][0]["agent"]["status"], "ON_BREAK");
    let refused = app
        .gql(
            Some(&tokens::customer("c1")),
            "{ workload { held } }",
            json!({}),
        )
        .await;
    assert_eq!(code_of(&refused), "FORBIDDEN");
}

/// A page of 100 sessions with their agents, customers and queue places
/// costs the same few statements as a page of one.
#[tokio::test]
async fn a_page_of_sessions_costs_a_fixed_number_of_statements() {
    let counter = StatementCounter::start(&db::fresh_database().await).await;
    // A still clock and no relay: nothing else talks to the database.
    let clock = Clock::manual(chrono::Utc::now());
    let app = spawn(
        Options::default()
            .database(counter.url())
            .set("EVENT_BUS", "in-process")
            .set("AGENT_CAPACITY", "10")
            .clock(clock.clock()),
    )
    .await;
    let issue = tokens::issued_by(&clock.clock());
    let admin = issue.admin();
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(app.start_session(&issue.customer(&format!("c{i}"))).await);
    }
    for (i, sid) in ids.iter().take(30).enumerate() {
        let agent = issue.agent(&format!("agent{}", i % 5));
        app.start_shift(&agent).await;
        assert!(app.accept(&agent, sid).await.get("errors").is_none());
    }
    let query = |field: &str| {
        format!(
            "query($n: Int) {{ {field}(first: $n) {{ edges {{ node {{ id agent {{ id name }} customer {{ id }} queuePosition }} }} }} }}"
        )
    };
    let search = "query($n: Int) { searchSessions(filter: {}, first: $n) { nodes { id agent { id name status } customer { id } queuePosition } } }";
    for q in [query("mySessions"), search.to_owned()] {
        let cost = |n: i64| {
            let q = q.clone();
            let (app, counter, admin) = (&app, &counter, &admin);
            async move {
                let before = counter.count();
                let body = app.ok(admin, &q, json!({ "n": n })).await;
                let rows = body.to_string().matches("queuePosition").count();
                (counter.count() - before, rows)
            }
        };
        let (one, rows_one) = cost(1).await;
        let (hundred, rows_hundred) = cost(100).await;
        assert_eq!((rows_one, rows_hundred), (1, 100));
        assert!(
            hundred <= 5 && hundred <= one + 3,
            "{q}: a page of 100 took {hundred} statements, a page of 1 took {one}"
        );
        println!("{q}: 1 row {one} statements, 100 rows {hundred}");
    }
}

/// The embedded SQLite default: words, scope, notes and canned responses
/// work there too (it scans instead of using trigram indexes).
#[tokio::test]
async fn the_workspace_on_sqlite() {
    let app = spawn(&[("DATABASE_URL", "")]).await;
    let (ann, admin, alice) = (
        tokens::agent("ann"),
        tokens::admin(),
        tokens::customer("alice"),
    );
    let sid = app.active_session(&alice, &ann).await;
    app.send(&alice, &sid, "The KETTLE is 50% off_line", "m1")
        .await;
    assert_eq!(
        search(&app, &admin, json!({ "text": "kettle 50%" })).await,
        [sid.as_str()]
    );
    assert_eq!(
        search(&app, &ann, json!({ "text": "off_line" })).await,
        [sid.as_str()]
    );
    assert!(search(&app, &admin, json!({ "text": "50_" }))
        .await
        .is_empty());
    assert!(search(&app, &admin, json!({ "text": "kettle toaster" }))
        .await
        .is_empty());
    app.ok(
        &ann,
        "mutation($s: ID!) { addNote(sessionId: $s, body: \"note\") { id } }",
        json!({ "s": sid }),
    )
    .await;
    let notes = app
        .ok(
            &ann,
            "query($s: ID!) { session(id: $s) { notes { body } } }",
            json!({ "s": sid }),
        )
        .await;
    assert_eq!(notes["session"]["notes"], json!([{ "body": "note" }]));
    let created = app
        .gql(
            Some(&ann),
            "mutation { createCannedResponse(input: {shortCode: \"hi\", title: \"Hi\", body: \"Hi {{customer.name}}\", scope: PERSONAL}) { id } }",
            json!({}),
        )
        .await;
    let again = app
        .gql(
            Some(&ann),
            "mutation { createCannedResponse(input: {shortCode: \"hi\", title: \"Hi\", body: \"Hi\", scope: PERSONAL}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code_of(&again), "CONFLICT");
    let rendered = app
        .ok(
            &ann,
            "query($id: ID!, $s: ID!) { renderCannedResponse(id: $id, sessionId: $s) { text } }",
            json!({ "id": created["data"]["createCannedResponse"]["id"], "s": sid }),
        )
        .await;
    assert_eq!(rendered["renderCannedResponse"]["text"], "Hi alice (name)");
}
