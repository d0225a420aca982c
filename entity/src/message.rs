use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub session_id: Uuid,
    pub seq: i32,
    pub sender: String,
    pub sender_id: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    pub client_message_id: Option<String>,
    pub created_at: DateTimeUtc,
    /// JSON: a FILE's attachment or an ARTICLE's link; null for text.
    #[sea_orm(column_type = "Text", nullable)]
    pub payload: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::chat_session::Entity",
        from = "Column::SessionId",
        to = "super::chat_session::Column::Id",
        on_delete = "Cascade"
    )]
    ChatSession,
}

impl Related<super::chat_session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ChatSession.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
