use switchboard::graphql::sdl;

use testkit::{
    server::{spawn, Options},
    tokens,
};

/// schema.graphql is what clients and the contract check read; it must be
/// what the server serves. `UPDATE_SCHEMA=1` rewrites it.
#[test]
fn schema_file_matches_the_served_schema() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let served = sdl();
    if std::env::var("UPDATE_SCHEMA").is_ok() {
        std::fs::write(path, &served).unwrap();
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        on_disk == served,
        "schema.graphql is stale: run `UPDATE_SCHEMA=1 cargo test --workspace schema_file`"
    );
}

/// README.md's configuration table is rendered from the settings'
/// declarations. `UPDATE_README=1` rewrites it.
#[test]
fn readme_configuration_table_matches_the_settings() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).unwrap_or_default();
    let table = switchboard::config::settings::markdown_table();
    // The table: from its header line to the first line that is not a row.
    let start = readme.find("| Variable | Default | Meaning |\n");
    let end = start.map(|start| {
        let mut end = start;
        for line in readme[start..].split_inclusive('\n') {
            if !line.starts_with('|') {
                break;
            }
            end += line.len();
        }
        end
    });
    let (Some(start), Some(end)) = (start, end) else {
        panic!("README.md has no configuration table");
    };
    if std::env::var("UPDATE_README").is_ok() && readme[start..end] != table {
        let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
        std::fs::write(path, updated).unwrap();
        return;
    }
    assert!(
        readme[start..end] == table,
        "README.md's configuration table is stale: run \
         `UPDATE_README=1 cargo test --workspace readme_configuration`"
    );
}

#[tokio::test]
async fn health_and_readiness_probes_and_graphiql() {
    let app = spawn(Options::default()).await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let page = app
        .http
        .get(app.url("/?token=abc.def.ghi"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("graphiql") || html.contains("GraphiQL"));
    assert!(
        html.contains("Bearer abc.def.ghi"),
        "the token pre-fills headers and connection params"
    );
    // Tokens are never echoed unless they look like a JWT.
    let page = app.get_text("/?token=%3Cscript%3E").await;
    assert!(!page.contains("<script>alert") && !page.contains("Bearer <script>"));
}

#[tokio::test]
async fn introspection_works_without_a_token() {
    let app = spawn(Options::default()).await;
    let body = app
        .gql(
            None,
            "{ __schema { queryType { name } } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
    // The query GraphiQL and codegen tools send must pass the default limits.
    let full = app
        .gql(None, FULL_INTROSPECTION, serde_json::json!({}))
        .await;
    assert!(full.get("errors").is_none(), "{full}");
    assert!(full["data"]["__schema"]["types"].as_array().unwrap().len() > 20);
}

/// graphql-js's getIntrospectionQuery(), as clients send it.
const FULL_INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}
"#;

/// /metrics reports connections, subscriptions, messages, the queue and the
/// wait and delivery histograms, in the Prometheus text format.
#[tokio::test]
async fn metrics_report_what_happened() {
    let app = spawn(Options::default()).await;
    let cust = tokens::customer("mia");
    let ann = tokens::agent("ann");
    let sid = app.start_session(&cust).await;
    app.start_session(&tokens::customer("other")).await; // stays waiting
    let mut feed = app.ws(Some(&cust)).await;
    feed.session_events("s", &sid, 0).await;
    feed.next_of("sessionEvents", "CaughtUp").await;
    app.start_shift(&ann).await;
    app.accept(&ann, &sid).await;
    app.send(&ann, &sid, "hello", "a1").await;
    feed.next_of("sessionEvents", "MessagePosted").await; // the join line
    feed.next_of("sessionEvents", "MessagePosted").await; // the reply, live

    let resp = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    assert_eq!(value("switchboard_websocket_connections"), 1.0);
    assert_eq!(value("switchboard_subscriptions"), 1.0);
    assert_eq!(value("switchboard_messages_total"), 1.0);
    assert_eq!(value("switchboard_queue_waiting"), 1.0);
    assert_eq!(value("switchboard_sessions_active"), 1.0);
    assert_eq!(value("switchboard_queue_wait_seconds_count"), 1.0);
    assert!(value("switchboard_delivery_latency_seconds_count") >= 1.0);
    drop(feed);
}

/// Every response names its request id; a proxy's well-formed id is kept.
#[tokio::test]
async fn every_request_gets_an_id() {
    let app = spawn(Options::default()).await;
    let ids: Vec<String> =
        futures_util::future::join_all((0..2).map(|_| app.http.get(app.url("/healthz")).send()))
            .await
            .into_iter()
            .map(|r| {
                r.unwrap().headers()["x-request-id"]
                    .to_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
    assert_ne!(ids[0], ids[1]);
    let kept = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "edge-42")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "edge-42");
    let replaced = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "<script>")
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "<script>");
}

/// How many of the server's connections to its database are encrypted,
/// and how many there are, as Postgres reports them.
async fn server_connections(db_url: &str) -> (i64, i64) {
    use sea_orm::{ConnectionTrait, Database, Statement};
    // The test's own connection is left out of the count.
    let db = Database::connect(format!("{db_url}?sslmode=disable"))
        .await
        .unwrap();
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*) FILTER (WHERE s.ssl) AS encrypted, count(*) AS total \
             FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid \
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get("", "encrypted").unwrap(),
        row.try_get("", "total").unwrap(),
    )
}

/// TLS over loopback protects nothing and cost the chat a tenth of its
/// throughput: a database on this host is reached in the clear unless
/// DATABASE_URL asks for TLS, and then it gets it.
#[tokio::test]
async fn a_database_on_loopback_is_reached_without_tls_unless_asked() {
    let app = spawn(Options::default()).await;
    let url = app.database_url.clone().unwrap();
    assert!(
        url.starts_with("postgres://") && url.contains("@127.0.0.1"),
        "the test database is on loopback: {url}"
    );
    let ssl_on = {
        use sea_orm::{ConnectionTrait, Database, Statement};
        let db = Database::connect(format!("{url}?sslmode=disable"))
            .await
            .unwrap();
        let row = db
            .query_one(Statement::from_string(
                db.get_database_backend(),
                "SELECT current_setting('ssl') AS ssl",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<String>("", "ssl").unwrap() == "on"
    };
    if !ssl_on {
        eprintln!("skipped: this Postgres does not offer TLS, so there is nothing to tell apart");
        return;
    }
    app.ok(
        &tokens::admin(),
        "{ queueStats { waiting } }",
        serde_json::json!({}),
    )
    .await;
    let (encrypted, total) = server_connections(&url).await;
    assert!(total > 0, "the server holds connections");
    assert_eq!(encrypted, 0, "none of {total} is encrypted");
    drop(app);

    let asked = spawn(Options::default().database(&format!("{url}?sslmode=require"))).await;
    asked
        .ok(
            &tokens::admin(),
            "{ queueStats { waiting } }",
            serde_json::json!({}),
        )
        .await;
    // (The first server's connections may not all be closed yet.)
    let (encrypted, total) = server_connections(&url).await;
    assert!(encrypted > 0, "{encrypted} of {total} encrypted");
}
