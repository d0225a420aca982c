//! Request limits async-graphql has no switch for.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

/// Refuses documents with more than `max` aliases. Aliases let one request
/// ask for the same expensive field many times over; complexity bounds the
/// total work, this bounds the trick itself, before anything runs.
pub struct AliasLimit {
    pub max: usize,
}

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension { max: self.max })
    }
}

struct AliasLimitExtension {
    max: usize,
}

#[async_graphql::async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let aliases = count_aliases(&document);
        if aliases > self.max {
            return Err(ServerError::new(
                format!(
                    "the query uses {aliases} aliases; at most {} are allowed",
                    self.max
                ),
                None,
            ));
        }
        Ok(document)
    }
}

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
