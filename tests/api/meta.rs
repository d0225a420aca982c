use switchboard::graphql::sdl;

use crate::helpers::spawn_app;

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

#[tokio::test]
async fn health_and_readiness_probes_and_graphiql() {
    let app = spawn_app().await;
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
    let page = app
        .http
        .get(app.url("/?token=%3Cscript%3E"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>alert") && !page.contains("Bearer <script>"));
}

#[tokio::test]
async fn introspection_works_without_a_token() {
    let app = spawn_app().await;
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
