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
        // Query.routingDecisions pages by `first` (100 by default); a
        // session's own list is shorter, and counted as generously.
        "routingDecisions" => Items::Page { default: 100 },
        // Skill lists are bounded when set; candidates are agents.
        "skills" | "requiredSkills" => Items::About(crate::domain::MAX_SKILLS as u64),
        "candidates" => Items::About(100),
        "webhookDeliveries" => Items::Page { default: 50 },
        "webhookEndpoints" => Items::About(100),
        // An endpoint's subscribed event types: at most every type.
        "events" => Items::About(7),
        // The workspace: searches page like mySessions; an agent holds
        // a few sessions (capacity is 2 by default); the rest are short lists.
        "searchSessions" => Items::Page { default: 20 },
        "workload" => Items::About(100),
        "sessions" => Items::About(10),
        "cannedResponses" => Items::About(50),
        "notes" => Items::About(20),
        "unresolved" => Items::About(5),
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
mod tests;
