//! Priorities, skills and the record of routing decisions, over GraphQL.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use switchboard::clock::Clock;

use testkit::{
    graphql::code_of,
    server::{spawn, Options},
    tokens,
};

const QUEUE: &str = "{ queue { id priority queuedAt queuePosition requiredSkills } }";

fn ids(queue: &Value) -> Vec<String> {
    queue["queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_signed_priority_claim_goes_first_and_customers_cannot_raise_their_own() {
    let app = spawn(Options::default()).await;
    let admin = tokens::admin();
    let first = app.start_session(&tokens::customer("early")).await;
    let second = app.start_session(&tokens::customer("later")).await;
    let vip = tokens::customer_with_priority("vip", "HIGH");
    let urgent = app.start_session(&vip).await;

    let queue = app.ok(&admin, QUEUE, json!({})).await;
    assert_eq!(ids(&queue), vec![urgent.clone(), first.clone(), second]);
    let rows = queue["queue"].as_array().unwrap();
    assert_eq!(rows[0]["priority"], "HIGH");
    assert_eq!(rows[0]["queuePosition"], 1);
    assert_eq!(rows[1]["priority"], "NORMAL");
    // Served first, it still entered the queue last.
    assert!(rows[0]["queuedAt"].as_str() > rows[2]["queuedAt"].as_str());

    // The customer's own token cannot move them up…
    let raise = "mutation($s: ID!) { setSessionPriority(sessionId: $s, priority: URGENT) { id } }";
    let body = app
        .gql(Some(&tokens::customer("early")), raise, json!({"s": first}))
        .await;
    assert_eq!(code_of(&body), "FORBIDDEN");
    // …nor can they ask for it when they start: there is no such field.
    let body = app
        .gql(
            Some(&tokens::customer("sneaky")),
            "mutation { startSession(input: {priority: URGENT}) { id } }",
            json!({}),
        )
        .await;
    assert!(
        body["errors"].is_array() && body["data"].is_null(),
        "{body}"
    );
    // A claim outside the enum is a bad token, not a silent NORMAL.
    let forged = tokens::customer_with_priority("odd", "SUPER");
    let body = app
        .gql(
            Some(&forged),
            "mutation { startSession(input: {}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code_of(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn an_admin_or_the_offered_agent_moves_a_queued_session_and_it_keeps_its_queued_at() {
    let app = spawn(&[("ROUTING_MODE", "fair")]).await;
    let admin = tokens::admin();
    let a = app.start_session(&tokens::customer("a")).await;
    let b = app.start_session(&tokens::customer("b")).await;
    let before = app.ok(&admin, QUEUE, json!({})).await;
    let b_queued = before["queue"][1]["queuedAt"].clone();

    let set = "mutation($s: ID!, $p: Priority!) { setSessionPriority(sessionId: $s, priority: $p) { id priority queuedAt } }";
    let moved = app.ok(&admin, set, json!({"s": b, "p": "URGENT"})).await;
    assert_eq!(moved["setSessionPriority"]["priority"], "URGENT");
    assert_eq!(moved["setSessionPriority"]["queuedAt"], b_queued);
    assert_eq!(
        ids(&app.ok(&admin, QUEUE, json!({})).await),
        vec![b.clone(), a.clone()]
    );

    // An agent who does not hold it may not; the one it is offered to may.
    let ann = tokens::agent("ann");
    let body = app.gql(Some(&ann), set, json!({"s": a, "p": "HIGH"})).await;
    assert_eq!(code_of(&body), "FORBIDDEN");
    app.start_shift(&ann).await;
    let offered = app.state(&b).await;
    assert_eq!(offered, ("OFFERED".to_owned(), Some("ann".to_owned())));
    let lowered = app.ok(&ann, set, json!({"s": b, "p": "LOW"})).await;
    assert_eq!(lowered["setSessionPriority"]["priority"], "LOW");

    // Once taken, it is out of the queue: nothing to reorder.
    app.accept(&ann, &b).await;
    let body = app
        .gql(Some(&admin), set, json!({"s": b, "p": "HIGH"}))
        .await;
    assert_eq!(code_of(&body), "CONFLICT");
}

#[tokio::test]
async fn skills_wait_for_an_agent_who_has_them_until_the_skill_wait_relaxes_them() {
    let clock = Clock::manual(Utc::now());
    let app = spawn(
        Options::from(&[("ROUTING_MODE", "auto"), ("SKILL_WAIT_SECS", "60")]).clock(clock.clock()),
    )
    .await;
    let issue = tokens::issued_by(&clock.clock());
    let admin = issue.admin();
    let ann = issue.agent("ann");
    // Connected all along: an agent with no live connection goes AWAY.
    let _ann_online = app.ws(Some(&ann)).await;
    app.start_shift(&ann).await;
    // Ann speaks no French; Bea (off shift) does.
    let skills = "mutation($a: ID!, $s: [String!]!) { setAgentSkills(agentId: $a, skills: $s) { id skills } }";
    app.start_shift(&issue.agent("bea")).await;
    app.ok(
        &issue.agent("bea"),
        "mutation { endShift { status } }",
        json!({}),
    )
    .await;
    let set = app
        .ok(&admin, skills, json!({"a": "bea", "s": ["FR", "fr"]}))
        .await;
    assert_eq!(set["setAgentSkills"]["skills"], json!(["fr"]));
    let body = app
        .gql(
            Some(&admin),
            skills,
            json!({"a": "bea", "s": ["no spaces"]}),
        )
        .await;
    assert_eq!(code_of(&body), "BAD_USER_INPUT");

    let start = "mutation($s: [String!]) { startSession(input: {skills: $s}) { id status requiredSkills } }";
    let french = app
        .ok(&issue.customer("fr"), start, json!({"s": ["fr"]}))
        .await;
    let french = french["startSession"]["id"].as_str().unwrap().to_owned();
    // Behind it, a session anyone can take is not held up by it.
    let plain = app.start_session(&issue.customer("plain")).await;
    assert_eq!(app.state(&plain).await.0, "ACTIVE");
    assert_eq!(app.state(&french).await.0, "WAITING");

    // A minute on, the requirement is relaxed and Ann takes it.
    clock.advance(Duration::from_secs(61)).await;
    let mut waited = 0;
    while app.state(&french).await.0 != "ACTIVE" {
        waited += 1;
        assert!(waited < 5, "the matcher never relaxed the skill");
        clock.advance(Duration::from_secs(5)).await;
    }
    assert_eq!(app.state(&french).await.1.as_deref(), Some("ann"));
    let decisions = app
        .ok(
            &admin,
            "query($s: ID!) { session(id: $s) { routingDecisions { kind agentId requiredSkills skillsRelaxed candidates } } }",
            json!({"s": french}),
        )
        .await;
    assert_eq!(
        decisions["session"]["routingDecisions"],
        json!([{"kind": "ASSIGNED", "agentId": "ann", "requiredSkills": ["fr"], "skillsRelaxed": true, "candidates": ["ann"]}])
    );
}

#[tokio::test]
async fn every_routing_decision_is_recorded_and_admins_page_through_a_period() {
    let app = spawn(&[("ROUTING_MODE", "fair")]).await;
    let admin = tokens::admin();
    let (ann, bob) = (tokens::agent("ann"), tokens::agent("bob"));
    let from = Utc::now() - chrono::Duration::seconds(5);
    let one = app.start_session(&tokens::customer("one")).await;
    app.start_shift(&ann).await;
    app.accept(&ann, &one).await;
    app.start_shift(&bob).await;
    let transfer =
        "mutation($s: ID!, $to: ID) { transferSession(sessionId: $s, toAgentId: $to) { id } }";
    app.ok(&ann, transfer, json!({"s": one, "to": "bob"})).await;
    // Nobody takes the next one but the admin's choice.
    for agent in [&ann, &bob] {
        app.ok(agent, "mutation { requestBreak { status } }", json!({}))
            .await;
    }
    let two = app.start_session(&tokens::customer("two")).await;
    app.ok(
        &admin,
        "mutation($s: ID!, $a: ID!) { assignSession(sessionId: $s, agentId: $a) { id } }",
        json!({"s": two, "a": "bob"}),
    )
    .await;
    let to = Utc::now() + chrono::Duration::seconds(5);

    let list = "query($f: DateTime!, $t: DateTime!, $n: Int, $after: String) { routingDecisions(from: $f, to: $t, first: $n, after: $after) { sessionId agentId kind priority queuedAt agentIdleSince candidates at cursor agentHeld agentCapacity } }";
    let vars = |n: Option<i64>, after: Option<&str>| json!({"f": from.to_rfc3339(), "t": to.to_rfc3339(), "n": n, "after": after});
    let all = app.ok(&admin, list, vars(None, None)).await;
    let all = all["routingDecisions"].as_array().unwrap().clone();
    let kinds: Vec<(&str, &str, &str)> = all
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap(),
                d["sessionId"].as_str().unwrap(),
                d["agentId"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("OFFERED", one.as_str(), "ann"),
            ("TRANSFERRED", one.as_str(), "bob"),
            ("ADMIN_ASSIGNED", two.as_str(), "bob"),
        ]
    );
    assert_eq!(all[0]["candidates"], json!(["ann"]));
    assert_eq!(all[0]["priority"], "NORMAL");
    assert_eq!(
        (all[0]["agentHeld"].clone(), all[0]["agentCapacity"].clone()),
        (json!(0), json!(2))
    );
    assert_eq!(all[2]["agentHeld"], 1, "bob held the transferred chat");
    let ats: Vec<&str> = all.iter().map(|d| d["at"].as_str().unwrap()).collect();
    let mut sorted = ats.clone();
    sorted.sort();
    assert_eq!(ats, sorted, "decisions come in the order they took effect");

    // Paged one at a time, the same list.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app.ok(&admin, list, vars(Some(1), after.as_deref())).await;
        let page = page["routingDecisions"].as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        after = Some(last["cursor"].as_str().unwrap().to_owned());
        paged.extend(page);
    }
    assert_eq!(paged, all);

    // Admins only; and a period must run forwards.
    let body = app.gql(Some(&ann), list, vars(None, None)).await;
    assert_eq!(code_of(&body), "FORBIDDEN");
    let backwards = json!({"f": to.to_rfc3339(), "t": from.to_rfc3339()});
    let body = app.gql(Some(&admin), list, backwards).await;
    assert_eq!(code_of(&body), "BAD_USER_INPUT");
    let body = app
        .gql(
            Some(&admin),
            list,
            json!({"f": from.to_rfc3339(), "t": to.to_rfc3339(), "after": "nope"}),
        )
        .await;
    assert_eq!(code_of(&body), "BAD_USER_INPUT");
}

#[tokio::test]
async fn a_waiting_customer_is_told_their_place_and_wait_as_the_queue_moves() {
    let app = spawn(&[("ROUTING_MODE", "auto")]).await;
    let ann = tokens::agent("ann");
    app.start_shift(&ann).await;
    app.set_capacity("ann", 1).await;
    let first_customer = tokens::customer("first");
    let first = app.start_session(&first_customer).await;
    assert_eq!(app.state(&first).await.0, "ACTIVE");
    let second = app.start_session(&tokens::customer("second")).await;
    let third_customer = tokens::customer("third");
    let third = app.start_session(&third_customer).await;

    let place = "query($s: ID!) { session(id: $s) { queuePosition estimatedWaitSeconds } }";
    let now = app.ok(&third_customer, place, json!({"s": third})).await;
    assert_eq!(now["session"]["queuePosition"], 2);
    // One session was served in the last ten minutes: a guess is possible.
    assert!(now["session"]["estimatedWaitSeconds"].as_i64().unwrap() > 0);

    let mut feed = app.ws(Some(&third_customer)).await;
    feed.subscribe(
        "s",
        "subscription($s: ID!) { sessionEvents(sessionId: $s) { __typename ... on SessionChanged { session { id status queuePosition estimatedWaitSeconds } } } }",
        json!({"s": third}),
    )
    .await;
    app.end(&first_customer, &first).await;
    assert_eq!(app.state(&second).await.0, "ACTIVE");
    let moved = loop {
        let ev = feed.next_of("sessionEvents", "SessionChanged").await;
        if ev["session"]["id"] == third.as_str() && ev["session"]["queuePosition"] == 1 {
            break ev;
        }
    };
    assert_eq!(moved["session"]["status"], "WAITING");
    assert!(moved["session"]["estimatedWaitSeconds"].as_i64().unwrap() > 0);
    // Not for staff, who read the queue instead: null once it is no longer waiting.
    let active = app.ok(&tokens::admin(), place, json!({"s": second})).await;
    assert_eq!(active["session"]["estimatedWaitSeconds"], Value::Null);
}
