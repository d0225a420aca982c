//! Schema migrations, applied by `switchboard migrate` and at every start.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_core_tables;
mod m20261122_000002_add_customer_presence;
mod m20261123_000003_create_deployment;
mod m20261123_000004_hot_session_updates;
mod m20261130_000005_key_sends_by_sender_role;
mod m20261130_000006_routing_priorities_skills_decisions;
mod m20261130_000007_track_agent_connections;
mod m20261130_000008_record_routing_context;
mod m20261130_000009_create_workspace;
mod m20261130_000010_add_message_payloads;
mod m20261130_000011_create_ratings_tickets_guests;
mod m20261130_000012_create_webhook_outbox;
mod m20261130_000013_index_pending_deliveries;
mod m20261130_000014_lighter_webhook_deliveries;
mod m20261130_000015_session_search_documents;
mod m20261130_000016_lighter_webhook_outbox;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_core_tables::Migration),
            Box::new(m20261122_000002_add_customer_presence::Migration),
            Box::new(m20261123_000003_create_deployment::Migration),
            Box::new(m20261123_000004_hot_session_updates::Migration),
            Box::new(m20261130_000005_key_sends_by_sender_role::Migration),
            Box::new(m20261130_000006_routing_priorities_skills_decisions::Migration),
            Box::new(m20261130_000007_track_agent_connections::Migration),
            Box::new(m20261130_000008_record_routing_context::Migration),
            Box::new(m20261130_000009_create_workspace::Migration),
            Box::new(m20261130_000010_add_message_payloads::Migration),
            Box::new(m20261130_000011_create_ratings_tickets_guests::Migration),
            Box::new(m20261130_000012_create_webhook_outbox::Migration),
            Box::new(m20261130_000013_index_pending_deliveries::Migration),
            Box::new(m20261130_000014_lighter_webhook_deliveries::Migration),
            Box::new(m20261130_000015_session_search_documents::Migration),
            Box::new(m20261130_000016_lighter_webhook_outbox::Migration),
        ]
    }
}
