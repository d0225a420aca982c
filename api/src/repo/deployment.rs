//! The deployment's identity: one random id per database, made by a
//! migration, shared by every process on that database.

use sea_orm::{ConnectionTrait, DbErr, Statement};
use uuid::Uuid;

pub async fn id<C: ConnectionTrait>(db: &C) -> Result<Uuid, DbErr> {
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT id FROM deployment",
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the deployment row is missing".into()))?;
    let id: String = row.try_get("", "id")?;
    Uuid::parse_str(&id).map_err(|e| DbErr::Type(format!("deployment id {id:?}: {e}")))
}
