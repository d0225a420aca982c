use serde_json::{json, Value};
use switchboard::auth::Role;
use testkit::{
    graphql::{code_of, Client},
    server::{spawn, Options},
    tokens,
};

const CREATE: &str = "mutation($i: CannedResponseInput!) { createCannedResponse(input: $i) { id shortCode title body scope ownerId updatedAt } }";
const UPDATE: &str = "mutation($id: ID!, $i: CannedResponseInput!) { updateCannedResponse(id: $id, input: $i) { id shortCode title body } }";
const DELETE: &str = "mutation($id: ID!) { deleteCannedResponse(id: $id) }";
const LIST: &str = "query($q: String) { cannedResponses(search: $q) { shortCode scope ownerId } }";
const RENDER: &str =
    "query($id: ID!, $s: ID!) { renderCannedResponse(id: $id, sessionId: $s) { text unresolved } }";

fn input(code: &str, title: &str, body: &str, scope: &str) -> Value {
    json!({ "shortCode": code, "title": title, "body": body, "scope": scope })
}

async fn create(app: &Client, who: &str, i: Value) -> Value {
    app.gql(Some(who), CREATE, json!({ "i": i })).await
}

async fn codes(app: &Client, who: &str, search: Option<&str>) -> Vec<String> {
    app.ok(who, LIST, json!({ "q": search })).await["cannedResponses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["scope"].as_str().unwrap(),
                r["shortCode"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn scopes_conflicts_and_rules() {
    let app = spawn(Options::default()).await;
    let (ann, bob, admin, alice) = (
        tokens::agent("ann"),
        tokens::agent("bob"),
        tokens::admin(),
        tokens::customer("alice"),
    );
    let mine = create(
        &app,
        &ann,
        input(
            "refund",
            "Refund policy",
            "We refund within 14 days.",
            "PERSONAL",
        ),
    )
    .await;
    let mine = &mine["data"]["createCannedResponse"];
    assert_eq!(mine["ownerId"], "ann");
    assert_eq!(mine["scope"], "PERSONAL");
    let ann_id = mine["id"].as_str().unwrap().to_owned();

    // Unique per owner within PERSONAL, and within TEAM.
    let again = create(&app, &ann, input("refund", "Other", "Other", "PERSONAL")).await;
    assert_eq!(code_of(&again), "CONFLICT");
    let bobs = create(
        &app,
        &bob,
        input("refund", "Bob's", "Bob's refund text", "PERSONAL"),
    )
    .await;
    assert!(bobs.get("errors").is_none(), "{bobs}");
    let bob_id = bobs["data"]["createCannedResponse"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let team = create(
        &app,
        &admin,
        input(
            "refund",
            "Refund thanks",
            "Thanks, {{customer.name}}!",
            "TEAM",
        ),
    )
    .await;
    assert!(team.get("errors").is_none(), "{team}");
    assert_eq!(team["data"]["createCannedResponse"]["ownerId"], Value::Null);
    let team_id = team["data"]["createCannedResponse"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        code_of(&create(&app, &admin, input("refund", "T", "B", "TEAM")).await),
        "CONFLICT"
    );
    create(&app, &admin, input("hello", "Greeting", "Hello!", "TEAM")).await;
    create(
        &app,
        &ann,
        input(
            "late-refund",
            "Late refund",
            "Sorry for the delay.",
            "PERSONAL",
        ),
    )
    .await;

    // Who keeps which scope.
    assert_eq!(
        code_of(&create(&app, &ann, input("x", "T", "B", "TEAM")).await),
        "FORBIDDEN"
    );
    assert_eq!(
        code_of(&create(&app, &admin, input("x", "T", "B", "PERSONAL")).await),
        "FORBIDDEN"
    );
    assert_eq!(
        code_of(&create(&app, &alice, input("x", "T", "B", "PERSONAL")).await),
        "FORBIDDEN"
    );
    assert_eq!(
        code_of(&app.gql(Some(&alice), LIST, json!({})).await),
        "FORBIDDEN"
    );

    // Malformed short codes, blank or oversized titles and bodies.
    for bad in [
        input("Refund", "T", "B", "PERSONAL"),
        input("", "T", "B", "PERSONAL"),
        input("re fund", "T", "B", "PERSONAL"),
        input(&"x".repeat(33), "T", "B", "PERSONAL"),
        input("ok", "  ", "B", "PERSONAL"),
        input("ok", &"t".repeat(121), "B", "PERSONAL"),
        input("ok", "T", "", "PERSONAL"),
        input("ok", "T", &"b".repeat(4001), "PERSONAL"),
    ] {
        assert_eq!(
            code_of(&create(&app, &ann, bad.clone()).await),
            "BAD_USER_INPUT",
            "{bad}"
        );
    }

    // Scope isolation: ann never sees bob's PERSONAL ones; admins see TEAM.
    assert_eq!(
        codes(&app, &ann, None).await,
        [
            "TEAM:hello",
            "PERSONAL:late-refund",
            "PERSONAL:refund",
            "TEAM:refund"
        ]
    );
    assert_eq!(
        codes(&app, &bob, None).await,
        ["TEAM:hello", "PERSONAL:refund", "TEAM:refund"]
    );
    assert_eq!(
        codes(&app, &admin, None).await,
        ["TEAM:hello", "TEAM:refund"]
    );
    // Short-code prefixes first, then title words.
    assert_eq!(
        codes(&app, &ann, Some("/ref")).await,
        ["PERSONAL:refund", "TEAM:refund", "PERSONAL:late-refund"]
    );
    assert_eq!(codes(&app, &ann, Some("greet")).await, ["TEAM:hello"]);

    // Changing: the owner, or admins for TEAM; others do not even see it.
    let upd = |id: &str, i: Value| json!({ "id": id, "i": i });
    assert_eq!(
        code_of(
            &app.gql(
                Some(&bob),
                UPDATE,
                upd(&ann_id, input("mine", "T", "B", "PERSONAL"))
            )
            .await
        ),
        "NOT_FOUND"
    );
    assert_eq!(
        code_of(
            &app.gql(
                Some(&ann),
                UPDATE,
                upd(&team_id, input("mine", "T", "B", "TEAM"))
            )
            .await
        ),
        "FORBIDDEN"
    );
    assert_eq!(
        code_of(
            &app.gql(
                Some(&ann),
                UPDATE,
                upd(&ann_id, input("late-refund", "T", "B", "PERSONAL"))
            )
            .await
        ),
        "CONFLICT"
    );
    assert_eq!(
        code_of(
            &app.gql(
                Some(&ann),
                UPDATE,
                upd(&ann_id, input("refund", "T", "B", "TEAM"))
            )
            .await
        ),
        "BAD_USER_INPUT"
    );
    let renamed = app
        .ok(
            &ann,
            UPDATE,
            upd(&ann_id, input("refunds", "Refunds", "New text", "PERSONAL")),
        )
        .await;
    assert_eq!(renamed["updateCannedResponse"]["shortCode"], "refunds");
    let team_upd = app
        .ok(
            &admin,
            UPDATE,
            upd(
                &team_id,
                input("refund", "Refund thanks", "Thanks!", "TEAM"),
            ),
        )
        .await;
    assert_eq!(team_upd["updateCannedResponse"]["body"], "Thanks!");
    assert_eq!(
        code_of(&app.gql(Some(&ann), DELETE, json!({ "id": bob_id })).await),
        "NOT_FOUND"
    );
    assert_eq!(
        code_of(&app.gql(Some(&ann), DELETE, json!({ "id": team_id })).await),
        "FORBIDDEN"
    );
    assert_eq!(
        code_of(&app.gql(Some(&ann), DELETE, json!({ "id": "nope" })).await),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        app.ok(&bob, DELETE, json!({ "id": bob_id })).await["deleteCannedResponse"],
        true
    );
    assert_eq!(codes(&app, &bob, None).await, ["TEAM:hello", "TEAM:refund"]);
}

#[tokio::test]
async fn rendering_fills_variables_once_and_only_for_the_sessions_agent() {
    let app = spawn(Options::default()).await;
    let (ann, bob, admin) = (tokens::agent("ann"), tokens::agent("bob"), tokens::admin());
    // A customer whose name is itself a variable: it must stay literal.
    let mallory = tokens::keys()
        .issue(Role::Customer, "mallory", Some("{{agent.name}}"), 3600)
        .unwrap();
    app.start_shift(&ann).await;
    let sid = app
        .ok(
            &mallory,
            "mutation { startSession(input: {subject: \"Broken kettle\"}) { id } }",
            json!({}),
        )
        .await["startSession"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(app.accept(&ann, &sid).await.get("errors").is_none());

    let body = "Hi {{customer.name}}, {{ agent.name }} here about {{session.subject}} \
        [{{session.id}}/{{customer.id}}] {{customer.tier}}{{nonsense.x}} {{ not a variable }}";
    let r = create(&app, &admin, input("hi", "Hi", body, "TEAM")).await;
    let rid = r["data"]["createCannedResponse"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rendered =
        app.ok(&ann, RENDER, json!({ "id": rid, "s": sid })).await["renderCannedResponse"].clone();
    assert_eq!(
        rendered["text"],
        format!("Hi {{{{agent.name}}}}, ann (name) here about Broken kettle [{sid}/mallory]  {{{{ not a variable }}}}")
    );
    // No provider configured: the context key has no value.
    assert_eq!(
        rendered["unresolved"],
        json!(["customer.tier", "nonsense.x"])
    );
    // Admins may render too.
    assert!(app
        .gql(Some(&admin), RENDER, json!({ "id": rid, "s": sid }))
        .await
        .get("errors")
        .is_none());

    // Not the agent holding it, not the customer.
    assert_eq!(
        code_of(
            &app.gql(Some(&bob), RENDER, json!({ "id": rid, "s": sid }))
                .await
        ),
        "NOT_FOUND"
    );
    assert_eq!(
        code_of(
            &app.gql(Some(&mallory), RENDER, json!({ "id": rid, "s": sid }))
                .await
        ),
        "FORBIDDEN"
    );
    // Another agent's PERSONAL response is not there for ann.
    let bobs = create(&app, &bob, input("mine", "Mine", "Bob's", "PERSONAL")).await;
    let bobs = bobs["data"]["createCannedResponse"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        code_of(
            &app.gql(Some(&ann), RENDER, json!({ "id": bobs, "s": sid }))
                .await
        ),
        "NOT_FOUND"
    );
    // Once ended, nobody holds it.
    app.end(&ann, &sid).await;
    assert_eq!(
        code_of(
            &app.gql(Some(&ann), RENDER, json!({ "id": rid, "s": sid }))
                .await
        ),
        "FORBIDDEN"
    );
}
