//! The budget's checks: costs through fragments, list pages and aliases.

use super::*;
use async_graphql::parser::parse_query;

const BUDGET: Budget = Budget {
    max_depth: 16,
    max_cost: 10_000,
};

fn check_text(query: &str, variables: serde_json::Value) -> Result<(), String> {
    let document = parse_query(query).expect("parses");
    let variables = Variables::from_json(variables);
    check(&document, &variables, BUDGET).map_err(|e| e.message)
}

fn cost_of(query: &str) -> u64 {
    let document = parse_query(query).unwrap();
    let variables = Variables::default();
    let mut walk = Walk {
        document: &document,
        variables: &variables,
        operation: None,
        fragments: HashMap::new(),
    };
    let (_, op) = document.operations.iter().next().unwrap();
    walk.operation = Some(&op.node);
    walk.set(&op.node.selection_set.node).unwrap().fields
}

/// `query{...F0} fragment F0 on Query{...F1 ...F1} … fragment Fn on Query{__typename}`
fn fragment_bomb(levels: usize, spreads_per_level: usize) -> String {
    let mut text = String::from("query{...F0}");
    for i in 0..levels {
        text.push_str(&format!(" fragment F{i} on Query{{"));
        for _ in 0..spreads_per_level {
            text.push_str(&format!("...F{} ", i + 1));
        }
        text.push('}');
    }
    text.push_str(&format!(" fragment F{levels} on Query{{__typename}}"));
    text
}

#[test]
fn a_fragment_bomb_is_refused_without_expanding_it() {
    // 2^60 fields if expanded; answered at once.
    let started = std::time::Instant::now();
    let refusal = check_text(&fragment_bomb(60, 2), serde_json::json!({})).unwrap_err();
    assert!(refusal.contains("too complex"), "{refusal}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // Small ones pass: 2^5 = 32 fields.
    check_text(&fragment_bomb(5, 2), serde_json::json!({})).unwrap();
}

#[test]
fn fragment_cycles_and_counts_are_refused() {
    let cycle = "query{...A} fragment A on Query{...B} fragment B on Query{...A}";
    assert!(check_text(cycle, serde_json::json!({}))
        .unwrap_err()
        .contains("spreads itself"));
    let mut many = String::from("query{__typename}");
    for i in 0..=MAX_FRAGMENTS {
        many.push_str(&format!(" fragment F{i} on Query{{__typename}}"));
    }
    assert!(check_text(&many, serde_json::json!({}))
        .unwrap_err()
        .contains("fragments"));
    let spreads = format!(
        "query{{...F {}}} fragment F on Query{{__typename}}",
        "...F ".repeat(MAX_SPREADS)
    );
    assert!(check_text(&spreads, serde_json::json!({}))
        .unwrap_err()
        .contains("spreads fragments"));
}

#[test]
fn list_fields_multiply_their_children() {
    // (field, expected cost)
    let table = [
        ("{ me { id } }", 2),
        ("{ mySessions(first: 10) { nodes { id subject } } }", 1 + (1 + 10 * 2)),
        ("{ mySessions { nodes { id } } }", 1 + (1 + 20)),
        (
            "{ mySessions(first: 100) { nodes { messages(first: 5) { nodes { body } } } } }",
            1 + (1 + 100 * (1 + (1 + 5 * 10))),
        ),
        (
            "{ session(id: \"x\") { messages(last: 3) { nodes { seq body } } } }",
            1 + 1 + (1 + 3 * (1 + 10)),
        ),
        // pageInfo is one object whatever the page size.
        (
            "{ mySessions(first: 100) { nodes { id } pageInfo { hasNextPage } } }",
            1 + (1 + 100) + (1 + 1),
        ),
        (
            "{ mySessions(first: 10) { edges { cursor node { id } } } }",
            1 + (1 + 10 * (1 + 2)),
        ),
        ("{ queue { id } }", 1 + 100),
        // A page of 0 still costs its fields once: they are validated.
        ("{ mySessions(first: 0) { nodes { id } } }", 1 + (1 + 1)),
        (
            "{ mySessions(first: 10) { ...Page } } fragment Page on ChatSessionConnection { nodes { id } }",
            1 + 10 * (1 + 1),
        ),
    ];
    for (query, expected) in table {
        assert_eq!(cost_of(query), expected, "{query}");
    }
}

#[test]
fn page_sizes_come_from_variables_and_their_defaults() {
    let query = "query($n: Int = 400) { mySessions(first: 100) { nodes { messages(first: $n) { nodes { body } } } } }";
    assert!(
        check_text(query, serde_json::json!({})).is_err(),
        "default 400"
    );
    assert!(check_text(query, serde_json::json!({"n": 400})).is_err());
    check_text(query, serde_json::json!({"n": 2})).unwrap();
}

#[test]
fn a_full_page_of_a_transcript_fits_the_default_budget() {
    // What clients ask for: the largest page of messages, every field.
    check_text(
        "query($s: ID!) { session(id: $s) { messages(first: 500) {
           nodes { id seq sender senderId body status clientMessageId createdAt }
           pageInfo { hasNextPage endCursor } } } }",
        serde_json::json!({}),
    )
    .unwrap();
    // Twenty such pages of bodies at once are not.
    assert!(check_text(
        "{ mySessions(first: 20) { nodes { messages(first: 500) { nodes { body } } } } }",
        serde_json::json!({}),
    )
    .is_err());
}

#[test]
fn aliases_of_big_lists_are_refused() {
    let alias = |i: usize| {
        format!("a{i}: mySessions(first: 100) {{ nodes {{ messages(first: 500) {{ nodes {{ body }} }} }} }}")
    };
    let query = format!("{{ {} }}", (0..30).map(alias).collect::<Vec<_>>().join(" "));
    assert!(check_text(&query, serde_json::json!({}))
        .unwrap_err()
        .contains("too complex"));
    let small = (0..=MAX_ALIASED_LISTS)
        .map(|i| format!("a{i}: mySessions(first: 1) {{ nodes {{ id }} }}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(check_text(&format!("{{ {small} }}"), serde_json::json!({}))
        .unwrap_err()
        .contains("aliases"));
}

#[test]
fn depth_is_counted_through_fragments() {
    let mut query = String::from("{ ...F0 }");
    for i in 0..20 {
        query.push_str(&format!(
            " fragment F{i} on Query {{ me {{ ...F{} }} }}",
            i + 1
        ));
    }
    query.push_str(" fragment F20 on Query { __typename }");
    // `me` is a Viewer, not a Query, but depth is refused before types are.
    assert!(check_text(&query, serde_json::json!({}))
        .unwrap_err()
        .contains("levels deep"));
}

#[test]
fn a_subscription_has_exactly_one_root_field() {
    assert!(check_text(
        "subscription { agentEvents { __typename } queueEvents { __typename } }",
        serde_json::json!({})
    )
    .unwrap_err()
    .contains("exactly one root field"));
    assert!(check_text(
        "subscription { ...F } fragment F on Subscription { agentEvents { __typename } queueEvents { __typename } }",
        serde_json::json!({})
    )
    .is_err());
    check_text(
        "subscription { agentEvents { __typename } }",
        serde_json::json!({}),
    )
    .unwrap();
}

#[test]
fn every_list_field_of_the_schema_has_a_size() {
    let sdl = super::super::sdl();
    // Input objects' fields are arguments, never selected.
    let mut in_input = false;
    for line in sdl.lines() {
        let line = line.trim();
        if line.starts_with("input ") {
            in_input = true;
        } else if line == "}" {
            in_input = false;
        }
        if in_input {
            continue;
        }
        let Some((head, ty)) = line.rsplit_once("): ").or_else(|| line.split_once(": ")) else {
            continue;
        };
        let name = head.split('(').next().unwrap_or(head).trim();
        let is_list_field = ty.starts_with('[') || ty.trim_end_matches('!').ends_with("Connection");
        // `edges`/`nodes` are the pages of their connection field.
        if is_list_field && !matches!(name, "edges" | "nodes") && !name.is_empty() {
            assert!(
                items_of(name).is_some(),
                "list field {name} has no size in items_of"
            );
        }
    }
}
