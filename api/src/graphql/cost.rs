//! What a document may ask for, decided before async-graphql validates it,
//! in time linear in the document's size.
//!
//! async-graphql's validation (and its depth and complexity limits) walks
//! each fragment again at every spread: a 1 KB chain of fragments that each
//! spread the next twice costs 2^depth visits, and took seconds of CPU and
//! gigabytes of memory before it was refused. Here each fragment's cost is
//! computed once and remembered, so the walk is linear; a document that
//! passes expands to at most `max_cost` fields, which bounds every later
//! pass over it.
//!
//! The cost of a field is 1 plus its children's cost times the number of
//! items the field can return: `first`/`last` (or the page default) for
//! paginated fields, an estimate for plain lists. Complexity that counted
//! fields only let 30 aliases of `mySessions(first:100){…messages(first:500)…}`
//! build a 48 MB answer.

use std::collections::HashMap;

use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, ServerError, Value, Variables};

/// Fragment definitions one document may hold.
pub const MAX_FRAGMENTS: usize = 100;
/// Fragment spreads one document may write.
pub const MAX_SPREADS: usize = 500;
/// List fields one operation may select under an alias: aliases are how a
/// small document asks for the same large list many times.
pub const MAX_ALIASED_LISTS: usize = 5;

/// How many items a field of the schema can return: the page size it is
/// asked for, or an estimate for lists without pagination. Keyed by field
/// name (names are unique among our list fields; a test checks every list
/// field of the SDL is here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Items {
    /// Paginated by `first`/`last`, this many when neither is given.
    Page { default: u64 },
    /// A plain list, expected to hold about this many.
    About(u64),
}

fn items_of(field: &str) -> Option<Items> {
    Some(match field {
        "messages" => Items::Page { default: 50 },
        "mySessions" => Items::Page { default: 20 },
        // The queue and the agent list are not paginated; a busy deployment
        // has a few hundred of either.
        "queue" | "agents" => Items::About(100),
        "history" => Items::About(20),
        _ => return None,
    })
}

/// What one field of an answer weighs: 1, but a message body can hold
/// MAX_MESSAGE_CHARS (4,000 by default: up to 16 KB), and answers of many
/// bodies are what grew to tens of megabytes.
fn weight_of(field: &str) -> u64 {
    match field {
        "body" => 10,
        _ => 1,
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub max_depth: usize,
    pub max_cost: u64,
}

/// Refuses a document that asks for more than `budget` allows, or that no
/// server could answer in reasonable time; says why.
pub fn check(
    document: &ExecutableDocument,
    variables: &Variables,
    budget: Budget,
) -> Result<(), ServerError> {
    let refuse = |message: String| Err(ServerError::new(message, None));
    if document.fragments.len() > MAX_FRAGMENTS {
        return refuse(format!(
            "the document defines {} fragments; at most {MAX_FRAGMENTS} are allowed",
            document.fragments.len()
        ));
    }
    let spreads: usize = document
        .operations
        .iter()
        .map(|(_, op)| spreads_in(&op.node.selection_set.node))
        .chain(
            document
                .fragments
                .values()
                .map(|f| spreads_in(&f.node.selection_set.node)),
        )
        .sum();
    if spreads > MAX_SPREADS {
        return refuse(format!(
            "the document spreads fragments {spreads} times; at most {MAX_SPREADS} are allowed"
        ));
    }
    let mut walk = Walk {
        document,
        variables,
        operation: None,
        fragments: HashMap::new(),
    };
    for (_, operation) in document.operations.iter() {
        let operation = &operation.node;
        walk.operation = Some(operation);
        // A fragment's cost depends on the variables of the operation that
        // spreads it: remember it per operation.
        walk.fragments.clear();
        let cost = walk.set(&operation.selection_set.node)?;
        // Fragments no operation spreads are validated all the same.
        for name in document.fragments.keys() {
            let unused = walk.fragment(name)?;
            within_budget(unused, budget)?;
        }
        within_budget(cost, budget)?;
        if cost.aliased_lists > MAX_ALIASED_LISTS as u64 {
            return refuse(format!(
                "the query selects list fields under {} aliases; at most {MAX_ALIASED_LISTS} are allowed",
                cost.aliased_lists
            ));
        }
        if operation.ty == OperationType::Subscription && cost.root_fields != 1 {
            return refuse(format!(
                "a subscription selects exactly one root field, not {}",
                cost.root_fields
            ));
        }
    }
    Ok(())
}

fn within_budget(cost: Cost, budget: Budget) -> Result<(), ServerError> {
    if cost.depth > budget.max_depth {
        return Err(ServerError::new(
            format!(
                "the query is nested {} levels deep; at most {} are allowed",
                cost.depth, budget.max_depth
            ),
            None,
        ));
    }
    if cost.fields > budget.max_cost {
        return Err(ServerError::new(
            format!(
                "the query is too complex: its answer could hold {} fields (a message body \
                 counts as 10), at most {} are allowed; ask for smaller pages (first/last) or \
                 fewer fields",
                if cost.fields == u64::MAX {
                    "countless".to_owned()
                } else {
                    cost.fields.to_string()
                },
                budget.max_cost
            ),
            None,
        ));
    }
    Ok(())
}

fn spreads_in(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => spreads_in(&f.node.selection_set.node),
            Selection::InlineFragment(f) => spreads_in(&f.node.selection_set.node),
            Selection::FragmentSpread(_) => 1,
        })
        .sum()
}

#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    /// Fields the answer could hold, counted through lists.
    fields: u64,
    /// Levels of nested fields.
    depth: usize,
    /// List fields selected under an alias, counted through lists too.
    aliased_lists: u64,
    /// Fields at this level (fragments flattened): the root fields, at the top.
    root_fields: u64,
}

impl Cost {
    fn add(&mut self, other: Cost) {
        self.fields = self.fields.saturating_add(other.fields);
        self.depth = self.depth.max(other.depth);
        self.aliased_lists = self.aliased_lists.saturating_add(other.aliased_lists);
        self.root_fields = self.root_fields.saturating_add(other.root_fields);
    }
}

enum Memo {
    Visiting,
    Done(Cost),
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    operation: Option<&'a OperationDefinition>,
    fragments: HashMap<&'a Name, Memo>,
}

impl<'a> Walk<'a> {
    // Recursion follows the document's nesting, which the parser bounds,
    // and fragment spreads, each fragment entered at most once (memo).
    // `page` is the size of the connection whose fields these are: its
    // `nodes` and `edges` hold that many, its `pageInfo` one.
    fn set(&mut self, set: &'a SelectionSet) -> Result<Cost, ServerError> {
        self.set_in(set, None)
    }

    fn set_in(&mut self, set: &'a SelectionSet, page: Option<u64>) -> Result<Cost, ServerError> {
        let mut total = Cost::default();
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let name = field.name.node.as_str();
                    let kind = items_of(name);
                    let (times, inner_page) = match (kind, page) {
                        (Some(Items::Page { default }), _) => {
                            (1, Some(self.page_size(field, default).max(1)))
                        }
                        (Some(Items::About(n)), _) => (n, None),
                        (None, Some(size)) if matches!(name, "nodes" | "edges") => (size, None),
                        (None, _) => (1, None),
                    };
                    let children = self.set_in(&field.selection_set.node, inner_page)?;
                    let aliased = u64::from(kind.is_some() && field.alias.is_some());
                    total.add(Cost {
                        fields: children
                            .fields
                            .saturating_mul(times)
                            .saturating_add(weight_of(name)),
                        depth: children.depth + 1,
                        aliased_lists: children
                            .aliased_lists
                            .saturating_mul(times)
                            .saturating_add(aliased),
                        root_fields: 1,
                    });
                }
                Selection::InlineFragment(fragment) => {
                    total.add(self.set_in(&fragment.node.selection_set.node, page)?);
                }
                Selection::FragmentSpread(spread) => {
                    // A fragment on a connection type would lose its page
                    // size here; count it as the largest page instead.
                    let name = &spread.node.fragment_name.node;
                    let cost = self.fragment(name)?;
                    total.add(match page {
                        Some(size) => Cost {
                            fields: cost.fields.saturating_mul(size),
                            aliased_lists: cost.aliased_lists.saturating_mul(size),
                            ..cost
                        },
                        None => cost,
                    });
                }
            }
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &'a Name) -> Result<Cost, ServerError> {
        match self.fragments.get(name) {
            Some(Memo::Done(cost)) => return Ok(*cost),
            Some(Memo::Visiting) => {
                return Err(ServerError::new(
                    format!("fragment {name} spreads itself"),
                    None,
                ))
            }
            None => {}
        }
        // An unknown fragment costs nothing here; validation reports it.
        let Some(definition) = self.document.fragments.get(name) else {
            return Ok(Cost::default());
        };
        self.fragments.insert(name, Memo::Visiting);
        let cost = self.set(&definition.node.selection_set.node)?;
        self.fragments.insert(name, Memo::Done(cost));
        Ok(cost)
    }

    /// The `first` or `last` a paginated field is asked for (a literal, a
    /// variable, or the variable's default), else the page default. Values
    /// out of range are refused later by the resolver.
    fn page_size(&self, field: &async_graphql::parser::types::Field, default: u64) -> u64 {
        let asked = ["first", "last"].iter().filter_map(|arg| {
            let value = field.get_argument(arg)?;
            let value = match &value.node {
                async_graphql_value::Value::Variable(name) => self.variable(name)?,
                other => other.clone().into_const()?,
            };
            match value {
                Value::Number(n) => n.as_u64(),
                _ => None,
            }
        });
        asked.max().unwrap_or(default)
    }

    fn variable(&self, name: &Name) -> Option<Value> {
        if let Some(value) = self.variables.get(name) {
            return Some(value.clone());
        }
        self.operation?
            .variable_definitions
            .iter()
            .find(|d| d.node.name.node == *name)
            .and_then(|d| d.node.default_value.as_ref())
            .map(|v| v.node.clone())
    }
}

#[cfg(test)]
mod tests {
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
        for line in sdl.lines() {
            let line = line.trim();
            let Some((head, ty)) = line.rsplit_once("): ").or_else(|| line.split_once(": ")) else {
                continue;
            };
            let name = head.split('(').next().unwrap_or(head).trim();
            let is_list_field =
                ty.starts_with('[') || ty.trim_end_matches('!').ends_with("Connection");
            // `edges`/`nodes` are the pages of their connection field.
            if is_list_field && !matches!(name, "edges" | "nodes") && !name.is_empty() {
                assert!(
                    items_of(name).is_some(),
                    "list field {name} has no size in items_of"
                );
            }
        }
    }
}
