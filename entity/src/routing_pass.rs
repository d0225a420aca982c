use sea_orm::entity::prelude::*;

/// One matcher pass that decided something: the agents it chose from
/// (AVAILABLE with a free slot, as read under its locks: id, idle since,
/// held, capacity, skills), a JSON array. Its decisions name it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "routing_passes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub agents: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
