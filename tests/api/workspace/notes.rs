use serde_json::json;
use testkit::{
    graphql::code_of,
    server::{spawn, Options},
    tokens,
};

use super::{events_until, follow, typenames};

const ADD_NOTE: &str =
    "mutation($s: ID!, $b: String!) { addNote(sessionId: $s, body: $b) { id sessionId authorId body createdAt } }";

/// Notes reach the agents and admins following the session, live and on
/// replay, and never the customer: not their feed, not their transcript,
/// not their view of the session.
#[tokio::test]
async fn notes_reach_staff_and_never_the_customer() {
    let app = spawn(Options::default()).await;
    let (alice, ann, admin) = (
        tokens::customer("alice"),
        tokens::agent("ann"),
        tokens::admin(),
    );
    let sid = app.active_session(&alice, &ann).await;

    let mut customer_feed = app.ws(Some(&alice)).await;
    follow(&mut customer_feed, "c", &sid, 0).await;
    events_until(&mut customer_feed, "CaughtUp").await;
    let mut agent_feed = app.ws(Some(&ann)).await;
    follow(&mut agent_feed, "a", &sid, 0).await;
    events_until(&mut agent_feed, "CaughtUp").await;
    let mut admin_feed = app.ws(Some(&admin)).await;
    follow(&mut admin_feed, "r", &sid, 0).await;
    events_until(&mut admin_feed, "CaughtUp").await;

    let before = app
        .ok(
            &alice,
            "query($s: ID!) { session(id: $s) { lastSeq } }",
            json!({ "s": sid }),
        )
        .await;
    let note = app
        .ok(
            &ann,
            ADD_NOTE,
            json!({ "s": sid, "b": "  VIP, refund approved by Sam  " }),
        )
        .await["addNote"]
        .clone();
    assert_eq!(note["body"], "VIP, refund approved by Sam");
    assert_eq!(note["authorId"], "ann");
    assert_eq!(note["sessionId"], sid);

    // Live to the agent and the admin.
    for feed in [&mut agent_feed, &mut admin_feed] {
        let live = events_until(feed, "NoteAdded").await;
        assert_eq!(live.last().unwrap()["note"]["id"], note["id"]);
    }
    // The customer's feed goes on with the next message, no note before it.
    app.send(&ann, &sid, "Your refund is on its way", "a-1")
        .await;
    // (Published in that order to one feed, the note would come first.)
    let seen = events_until(&mut customer_feed, "MessagePosted").await;
    assert!(!typenames(&seen).contains(&"NoteAdded"), "{seen:?}");

    // No seq taken, nothing in the transcript, no notes for the customer.
    let view = app
        .ok(
            &alice,
            "query($s: ID!) { session(id: $s) { lastSeq notes { id } messages(first: 50) { nodes { body } } } }",
            json!({ "s": sid }),
        )
        .await;
    assert_eq!(
        view["session"]["lastSeq"].as_i64().unwrap(),
        before["session"]["lastSeq"].as_i64().unwrap() + 1,
        "only the agent's message took a seq"
    );
    assert_eq!(view["session"]["notes"], json!([]));
    assert!(!view.to_string().contains("VIP"), "{view}");
    let mine = app
        .ok(
            &alice,
            "{ mySessions(first: 5) { nodes { notes { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(mine["mySessions"]["nodes"][0]["notes"], json!([]));

    // Staff read them on the session, oldest first.
    let staff = app
        .ok(
            &admin,
            "query($s: ID!) { session(id: $s) { notes { body authorId } } }",
            json!({ "s": sid }),
        )
        .await;
    assert_eq!(
        staff["session"]["notes"],
        json!([{ "body": "VIP, refund approved by Sam", "authorId": "ann" }])
    );

    // Replay: staff catch up on the note before CaughtUp; the customer does not.
    let mut late_agent = app.ws(Some(&ann)).await;
    follow(&mut late_agent, "l", &sid, 0).await;
    let replay = events_until(&mut late_agent, "CaughtUp").await;
    assert!(typenames(&replay).contains(&"NoteAdded"), "{replay:?}");
    let mut late_customer = app.ws(Some(&alice)).await;
    follow(&mut late_customer, "lc", &sid, 0).await;
    let replay = events_until(&mut late_customer, "CaughtUp").await;
    assert!(!typenames(&replay).contains(&"NoteAdded"), "{replay:?}");
    // Resuming after the last message: the note was written before it.
    let mut resumed = app.ws(Some(&ann)).await;
    follow(
        &mut resumed,
        "r2",
        &sid,
        view["session"]["lastSeq"].as_i64().unwrap(),
    )
    .await;
    let replay = events_until(&mut resumed, "CaughtUp").await;
    assert_eq!(typenames(&replay), ["CaughtUp"], "{replay:?}");
}

#[tokio::test]
async fn who_may_write_notes() {
    let app = spawn(Options::default()).await;
    let (alice, ann, bob) = (
        tokens::customer("alice"),
        tokens::agent("ann"),
        tokens::agent("bob"),
    );
    let sid = app.active_session(&alice, &ann).await;
    let add = |who: &str, body: &str| {
        let (who, body, sid) = (who.to_owned(), body.to_owned(), sid.clone());
        let app = &app;
        async move {
            app.gql(Some(&who), ADD_NOTE, json!({ "s": sid, "b": body }))
                .await
        }
    };
    assert_eq!(code_of(&add(&alice, "hi").await), "FORBIDDEN");
    assert_eq!(code_of(&add(&bob, "hi").await), "FORBIDDEN");
    assert_eq!(code_of(&add(&ann, "   ").await), "BAD_USER_INPUT");
    assert_eq!(
        code_of(&add(&ann, &"x".repeat(4001)).await),
        "BAD_USER_INPUT"
    );
    let missing = app
        .gql(
            Some(&ann),
            ADD_NOTE,
            json!({ "s": uuid::Uuid::new_v4().to_string(), "b": "x" }),
        )
        .await;
    assert_eq!(code_of(&missing), "NOT_FOUND");
    assert!(add(&tokens::admin(), "from the lead")
        .await
        .get("errors")
        .is_none());

    // Handed on to bob, ann held it before and may still note it.
    app.start_shift(&bob).await;
    app.ok(
        &ann,
        "mutation($s: ID!) { transferSession(sessionId: $s, toAgentId: \"bob\") { id } }",
        json!({ "s": sid }),
    )
    .await;
    assert!(add(&ann, "handed to bob").await.get("errors").is_none());
    assert!(add(&bob, "got it").await.get("errors").is_none());
    // A new agent who never held it may not.
    let carl = tokens::agent("carl");
    assert_eq!(code_of(&add(&carl, "hi").await), "FORBIDDEN");
}
