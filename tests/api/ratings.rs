//! Satisfaction ratings: who may rate, once, within the window; who sees
//! the rating; the figures by period and agent; the end the widget hears.

use chrono::{Duration, Utc};
use futures_util::future::join_all;
use serde_json::{json, Value};
use switchboard::clock::Clock;

use testkit::graphql::code_of;
use testkit::server::{spawn, Options};
use testkit::tokens;

const RATE: &str = "mutation($s: ID!, $score: Int!, $c: String) {
    rateSession(sessionId: $s, score: $score, comment: $c) {
      id status rating { score comment agentId createdAt } } }";

const RATING: &str = "query($s: ID!) { session(id: $s) { rating { score comment agentId } } }";

const STATS: &str = "query($from: DateTime!, $to: DateTime!, $a: ID) {
    ratingStats(from: $from, to: $to, agentId: $a) { count average satisfied } }";

fn rate_vars(session: &str, score: i64, comment: Option<&str>) -> Value {
    json!({ "s": session, "score": score, "c": comment })
}

#[tokio::test]
async fn a_customer_rates_an_ended_chat_once_and_its_agent_and_admins_see_it() {
    let app = spawn(&[]).await;
    let (rita, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&rita, &ann).await;

    // Not before it ends.
    let open = app.gql(Some(&rita), RATE, rate_vars(&sid, 5, None)).await;
    assert_eq!(code_of(&open), "CONFLICT", "{open}");
    app.end(&ann, &sid).await;

    // Wrong people: the agent, an admin, another customer (who cannot see it).
    let ann_rates = app.gql(Some(&ann), RATE, rate_vars(&sid, 5, None)).await;
    assert_eq!(code_of(&ann_rates), "FORBIDDEN", "{ann_rates}");
    let admin_rates = app
        .gql(Some(&tokens::admin()), RATE, rate_vars(&sid, 5, None))
        .await;
    assert_eq!(code_of(&admin_rates), "FORBIDDEN", "{admin_rates}");
    let stranger = tokens::customer("sam");
    let sam_rates = app
        .gql(Some(&stranger), RATE, rate_vars(&sid, 5, None))
        .await;
    assert_eq!(code_of(&sam_rates), "NOT_FOUND", "{sam_rates}");
    let anonymous = app.gql(None, RATE, rate_vars(&sid, 5, None)).await;
    assert_eq!(code_of(&anonymous), "UNAUTHENTICATED", "{anonymous}");

    // Bad input: scores outside 1–5, a comment over 1,000 characters.
    for score in [0, 6, -1] {
        let bad = app
            .gql(Some(&rita), RATE, rate_vars(&sid, score, None))
            .await;
        assert_eq!(code_of(&bad), "BAD_USER_INPUT", "score {score}: {bad}");
    }
    let long = "x".repeat(1001);
    let bad = app
        .gql(Some(&rita), RATE, rate_vars(&sid, 4, Some(&long)))
        .await;
    assert_eq!(code_of(&bad), "BAD_USER_INPUT", "{bad}");
    assert!(bad["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("1000"));
    // None of those stored anything.
    let none = app.ok(&rita, RATING, json!({ "s": sid })).await;
    assert!(none["session"]["rating"].is_null(), "{none}");

    // The customer rates: 1,000 characters are fine; the rating names the agent.
    let comment = "é".repeat(1000);
    let rated = app
        .ok(&rita, RATE, rate_vars(&sid, 5, Some(&comment)))
        .await;
    let rating = &rated["rateSession"]["rating"];
    assert_eq!(rating["score"], 5);
    assert_eq!(rating["comment"], comment.as_str());
    assert_eq!(rating["agentId"], "ann");
    assert!(rating["createdAt"].is_string());

    // Once.
    let again = app.gql(Some(&rita), RATE, rate_vars(&sid, 1, None)).await;
    assert_eq!(code_of(&again), "CONFLICT", "{again}");

    // Seen by the customer, the agent it names and admins.
    for token in [&rita, &ann, &tokens::admin()] {
        let seen = app.ok(token, RATING, json!({ "s": sid })).await;
        assert_eq!(seen["session"]["rating"]["score"], 5, "{seen}");
        assert_eq!(seen["session"]["rating"]["agentId"], "ann");
    }
}

#[tokio::test]
async fn the_rating_names_the_agent_who_held_the_chat_at_its_end() {
    let app = spawn(&[]).await;
    let (rita, ann, bob) = (
        tokens::customer("rita"),
        tokens::agent("ann"),
        tokens::agent("bob"),
    );
    let sid = app.active_session(&rita, &ann).await;
    app.start_shift(&bob).await;
    app.ok(
        &ann,
        "mutation($s: ID!) { transferSession(sessionId: $s, toAgentId: \"bob\") { status } }",
        json!({ "s": sid }),
    )
    .await;
    app.end(&bob, &sid).await;
    let rated = app.ok(&rita, RATE, rate_vars(&sid, 2, None)).await;
    assert_eq!(rated["rateSession"]["rating"]["agentId"], "bob");
    let seen = app.ok(&bob, RATING, json!({ "s": sid })).await;
    assert_eq!(seen["session"]["rating"]["score"], 2);
    // Ann held it earlier: she no longer sees the session, nor its rating.
    let ann_sees = app.ok(&ann, RATING, json!({ "s": sid })).await;
    assert!(ann_sees["session"].is_null(), "{ann_sees}");
}

#[tokio::test]
async fn a_chat_no_agent_served_cannot_be_rated() {
    let app = spawn(&[]).await;
    let rita = tokens::customer("rita");
    let sid = app.start_session(&rita).await;
    app.end(&rita, &sid).await;
    let body = app.gql(Some(&rita), RATE, rate_vars(&sid, 3, None)).await;
    assert_eq!(code_of(&body), "CONFLICT", "{body}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("no agent"));
}

#[tokio::test]
async fn ratings_close_after_the_window() {
    let clock = Clock::manual(Utc::now());
    let app = spawn(
        Options::default()
            .clock(clock.clock())
            .set("RATING_WINDOW_DAYS", "7"),
    )
    .await;
    let issuer = tokens::issued_by(&clock.clock());
    let (rita, ann) = (issuer.customer("rita"), issuer.agent("ann"));
    let early = app.active_session(&rita, &ann).await;
    app.end(&ann, &early).await;
    let kim = issuer.customer("kim");
    let late = app.start_session(&kim).await;
    app.accept(&ann, &late).await;
    app.end(&ann, &late).await;

    // Six days and 23 hours on: still open. A day later: closed.
    clock.step_wall(Duration::days(7) - Duration::hours(1));
    let issuer = tokens::issued_by(&clock.clock());
    let rated = app
        .ok(&issuer.customer("rita"), RATE, rate_vars(&early, 4, None))
        .await;
    assert_eq!(rated["rateSession"]["rating"]["score"], 4);
    clock.step_wall(Duration::hours(2));
    let issuer = tokens::issued_by(&clock.clock());
    let body = app
        .gql(
            Some(&issuer.customer("kim")),
            RATE,
            rate_vars(&late, 4, None),
        )
        .await;
    assert_eq!(code_of(&body), "CONFLICT", "{body}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("7 days"));

    // Past retention the ratings go with their chats.
    clock.step_wall(Duration::days(91));
    assert_eq!(app.service.retention().purge_expired().await.unwrap(), 2);
    let issuer = tokens::issued_by(&clock.clock());
    let stats = app
        .ok(
            &issuer.admin(),
            STATS,
            json!({ "from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(stats["ratingStats"]["count"], 0);
}

#[tokio::test]
async fn ten_concurrent_ratings_store_one() {
    let app = spawn(&[]).await;
    let (rita, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&rita, &ann).await;
    app.end(&rita, &sid).await;
    let answers = join_all((1..=10).map(|i| {
        let (app, rita, sid) = (&app, &rita, &sid);
        async move {
            app.gql(Some(rita), RATE, rate_vars(sid, (i % 5) + 1, None))
                .await
        }
    }))
    .await;
    let stored: Vec<&Value> = answers
        .iter()
        .filter(|a| a.get("errors").is_none())
        .collect();
    assert_eq!(stored.len(), 1, "{answers:?}");
    for refused in answers.iter().filter(|a| a.get("errors").is_some()) {
        assert_eq!(code_of(refused), "CONFLICT", "{refused}");
    }
    let kept = app.ok(&rita, RATING, json!({ "s": sid })).await;
    assert_eq!(
        kept["session"]["rating"]["score"],
        stored[0]["data"]["rateSession"]["rating"]["score"]
    );
}

/// Ends and rates one chat of `customer` with `agent`.
async fn rated_chat(app: &testkit::server::Server, customer: &str, agent: &str, score: i64) {
    let (c, a) = (tokens::customer(customer), tokens::agent(agent));
    let sid = app.active_session(&c, &a).await;
    app.end(&a, &sid).await;
    app.ok(&c, RATE, rate_vars(&sid, score, None)).await;
}

#[tokio::test]
async fn stats_by_period_for_admins_and_each_agent_for_themselves() {
    let app = spawn(&[]).await;
    let from = (Utc::now() - Duration::minutes(5)).to_rfc3339();
    // Ann: 5, 4, 2. Bob: 1. An unrated chat of Ann's does not count.
    rated_chat(&app, "c1", "ann", 5).await;
    rated_chat(&app, "c2", "ann", 4).await;
    rated_chat(&app, "c3", "ann", 2).await;
    rated_chat(&app, "c4", "bob", 1).await;
    let unrated = app
        .active_session(&tokens::customer("c5"), &tokens::agent("ann"))
        .await;
    app.end(&tokens::agent("ann"), &unrated).await;
    let to = (Utc::now() + Duration::minutes(5)).to_rfc3339();

    let stats = |token: String, agent: Option<&'static str>| {
        let (app, from, to) = (&app, from.clone(), to.clone());
        async move {
            app.gql(
                Some(&token),
                STATS,
                json!({ "from": from, "to": to, "a": agent }),
            )
            .await
        }
    };
    let close = |v: &Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-9;

    let all = stats(tokens::admin(), None).await;
    let all = &all["data"]["ratingStats"];
    assert_eq!(all["count"], 4, "{all}");
    assert!(close(&all["average"], 3.0), "{all}");
    assert!(close(&all["satisfied"], 0.5), "{all}");

    let ann_by_admin = stats(tokens::admin(), Some("ann")).await;
    let ann_by_admin = &ann_by_admin["data"]["ratingStats"];
    assert_eq!(ann_by_admin["count"], 3);
    assert!(close(&ann_by_admin["average"], 11.0 / 3.0));
    assert!(close(&ann_by_admin["satisfied"], 2.0 / 3.0));

    // An agent gets their own, named or not; another's is FORBIDDEN.
    let own = stats(tokens::agent("ann"), None).await;
    assert_eq!(own["data"]["ratingStats"], *ann_by_admin);
    let named = stats(tokens::agent("ann"), Some("ann")).await;
    assert_eq!(named["data"]["ratingStats"], *ann_by_admin);
    let other = stats(tokens::agent("ann"), Some("bob")).await;
    assert_eq!(code_of(&other), "FORBIDDEN", "{other}");
    let customer = stats(tokens::customer("c1"), None).await;
    assert_eq!(code_of(&customer), "FORBIDDEN", "{customer}");

    // A period with no chats: zero, and no figures.
    let before = app
        .gql(
            Some(&tokens::admin()),
            STATS,
            json!({ "from": "2020-01-01T00:00:00Z", "to": "2020-02-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(
        before["data"]["ratingStats"],
        json!({ "count": 0, "average": null, "satisfied": null })
    );
    let backwards = app
        .gql(
            Some(&tokens::admin()),
            STATS,
            json!({ "from": to, "to": from }),
        )
        .await;
    assert_eq!(code_of(&backwards), "BAD_USER_INPUT", "{backwards}");
}

#[tokio::test]
async fn the_customer_hears_that_the_agent_ended_the_chat() {
    let app = spawn(&[]).await;
    let (rita, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&rita, &ann).await;
    let mut ws = app.ws(Some(&rita)).await;
    ws.session_events("1", &sid, 0).await;
    ws.next_of("sessionEvents", "CaughtUp").await;
    app.end(&ann, &sid).await;
    let changed = ws.next_of("sessionEvents", "SessionChanged").await;
    assert_eq!(changed["session"]["status"], "ENDED", "{changed}");
    assert_eq!(changed["session"]["endedBy"], "AGENT");
    // The survey can follow at once.
    app.ok(&rita, RATE, rate_vars(&sid, 5, None)).await;
}
