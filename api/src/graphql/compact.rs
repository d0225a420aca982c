//! Trims the parsed document of a subscription to what it holds.
//!
//! A subscription keeps its parsed operation for as long as it runs, and the
//! parser collects every selection set into a vector of at least four
//! selections (~180 bytes each) whatever it holds: `agentEvents` with two
//! inline fragments kept ~4.4 KiB of mostly empty capacity per connection.

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};

/// Every vector in the document, shrunk to fit. Recursion is bounded by the
/// parser's own nesting limit (a deeper document fails to parse, before
/// this runs); the depth check proper comes later, in validation.
pub(super) fn compact(document: &mut ExecutableDocument) {
    match &mut document.operations {
        DocumentOperations::Single(op) => operation(&mut op.node),
        DocumentOperations::Multiple(ops) => {
            ops.shrink_to_fit();
            ops.values_mut().for_each(|op| operation(&mut op.node));
        }
    }
    document.fragments.shrink_to_fit();
    for fragment in document.fragments.values_mut() {
        fragment.node.directives.shrink_to_fit();
        selection_set(&mut fragment.node.selection_set.node);
    }
}

fn operation(op: &mut OperationDefinition) {
    op.variable_definitions.shrink_to_fit();
    op.directives.shrink_to_fit();
    selection_set(&mut op.selection_set.node);
}

fn selection_set(set: &mut SelectionSet) {
    set.items.shrink_to_fit();
    for item in &mut set.items {
        match &mut item.node {
            Selection::Field(field) => {
                field.node.arguments.shrink_to_fit();
                field.node.directives.shrink_to_fit();
                selection_set(&mut field.node.selection_set.node);
            }
            Selection::FragmentSpread(spread) => spread.node.directives.shrink_to_fit(),
            Selection::InlineFragment(fragment) => {
                fragment.node.directives.shrink_to_fit();
                selection_set(&mut fragment.node.selection_set.node);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    /// Capacity of every selection set, depth first.
    fn capacities(set: &SelectionSet, out: &mut Vec<(usize, usize)>) {
        out.push((set.items.len(), set.items.capacity()));
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => capacities(&f.node.selection_set.node, out),
                Selection::InlineFragment(f) => capacities(&f.node.selection_set.node, out),
                Selection::FragmentSpread(_) => {}
            }
        }
    }

    fn operation_capacities(document: &ExecutableDocument) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (_, op) in document.operations.iter() {
            capacities(&op.node.selection_set.node, &mut out);
        }
        out
    }

    #[test]
    fn compacting_leaves_no_spare_capacity_and_the_same_document() {
        let query = "subscription { agentEvents { __typename \
            ... on SessionOffered { session { id } } ... on SessionAssigned { session { id } } } }";
        let mut document = parse_query(query).unwrap();
        let before = format!("{document:?}");
        assert!(
            operation_capacities(&document)
                .iter()
                .any(|(len, cap)| cap > len),
            "the parser over-allocates; if it stops, compacting can go"
        );
        compact(&mut document);
        assert_eq!(format!("{document:?}"), before);
        for (len, cap) in operation_capacities(&document) {
            assert_eq!(len, cap);
        }
    }
}
