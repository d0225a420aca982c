//! Request limits async-graphql has no switch for (applied by the gateway).

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Aliases as written: in every operation and every fragment definition once.
pub fn count_aliases(document: &ExecutableDocument) -> usize {
    let in_operations: usize = document
        .operations
        .iter()
        .map(|(_, op)| in_set(&op.node.selection_set.node))
        .sum();
    let in_fragments: usize = document
        .fragments
        .values()
        .map(|f| in_set(&f.node.selection_set.node))
        .sum();
    in_operations + in_fragments
}

fn in_set(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + in_set(&f.node.selection_set.node)
            }
            Selection::InlineFragment(f) => in_set(&f.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(query: &str) -> usize {
        count_aliases(&async_graphql::parser::parse_query(query).unwrap())
    }

    #[test]
    fn aliases_are_counted_everywhere_they_are_written() {
        assert_eq!(count("{ a { b } }"), 0);
        assert_eq!(count("{ x: a { y: b z: c } }"), 3);
        assert_eq!(
            count("query { x: a ...F ... on Q { y: b } } fragment F on Q { z: c }"),
            3
        );
        assert_eq!(count("query A { x: a } query B { y: a }"), 2);
    }
}
