//! Builds the application from settings: database, migrations, services,
//! routes and the bound listener. Tests build it on port 0 and read the port.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    Statement, TransactionTrait,
};
use tokio::net::TcpListener;

use crate::auth::JwtKeys;
use crate::clock::Clock;
use crate::config::{EventBusKind, JwtSecret, Settings};
use crate::events::{nats, EventBus, Relay, RelayError};
use crate::graphql;
use crate::http::serve::{serve, ConnectionLimits};
use crate::http::{router, AppState};
use crate::matching::RoutingMode;
use crate::repo;
use crate::service::{Core, GuestPolicy, Policy, Services};
use crate::shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("event relay: {0}")]
    EventBus(#[from] RelayError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    DataDir(String),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
}

/// The embedded database's folder, held by this process alone.
///
/// Two processes on one SQLite file would each believe their in-process
/// event bus reaches every subscriber, and miss each other's events. The
/// lock is an OS file lock: it goes with the process, however it ends.
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    /// Makes the data folder (0700) and the database file (0600) if
    /// missing, and takes the folder's lock; `None` on Postgres, where
    /// many processes are the point.
    pub fn claim(settings: &Settings) -> Result<Option<DataDirLock>, StartupError> {
        if !settings.database_url.starts_with("sqlite:") {
            return Ok(None);
        }
        let dir = &settings.data_dir;
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            StartupError::DataDir(format!("data folder {}: {what}: {e}", dir.display()))
        };
        crate::config::ensure_private_dir(dir).map_err(|e| fail("cannot create it", &e))?;
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(dir.join(".lock"))
            .map_err(|e| fail("cannot open its lock file", &e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StartupError::DataDir(format!(
                    "another switchboard process is using the data folder {} \
                     (its SQLite database serves one process); stop it, give this one \
                     another DATA_DIR, or run several processes on Postgres (DATABASE_URL)",
                    dir.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(fail("cannot lock it", &e)),
        }
        // SQLite makes its -wal and -shm files with the database's mode.
        let database = dir.join(crate::config::SQLITE_FILE);
        options
            .open(&database)
            .map_err(|e| fail("cannot create the database file", &e))?;
        Ok(Some(DataDirLock { _file: file }))
    }
}

/// The token-signing secret, made in the data folder if this is the first
/// start without JWT_SECRET (and then said so in the log).
pub fn load_jwt_secret(settings: &Settings) -> Result<JwtSecret, StartupError> {
    let loaded = settings.jwt_secret.load()?;
    if loaded.generated {
        tracing::info!(
            "generated a new token-signing secret in {}; `switchboard token` run from \
             this folder signs with it",
            settings.data_dir.display()
        );
    }
    Ok(loaded.secret)
}

/// Where files are kept and how download links are signed: with a key
/// derived from the token secret, which every process of a deployment
/// shares, so a link one process hands out works on all of them.
fn file_policy(
    settings: &Settings,
    jwt_secret: &JwtSecret,
) -> Result<crate::service::FilePolicy, StartupError> {
    let files = &settings.files;
    let storage =
        crate::storage::open(files.storage_url.as_deref(), &settings.data_dir, &files.aws)
            .map_err(|reason| crate::config::ConfigError::Invalid {
                name: "STORAGE_URL",
                reason,
            })?;
    tracing::info!(store = %storage.describe(), "file store");
    Ok(crate::service::FilePolicy {
        storage,
        signer: crate::domain::files::LinkSigner::derived_from(jwt_secret.expose()),
        link_ttl: chrono::Duration::seconds(files.download_link_ttl_secs),
        public_url: settings.public_url.clone(),
        content_types: files.content_types.clone(),
        max_upload_bytes: settings.limits.max_upload_bytes as u64,
        article_origins: files.article_origins.clone(),
    })
}

pub async fn connect(settings: &Settings) -> Result<DatabaseConnection, DbErr> {
    let url = crate::config::database_connect_url(&settings.database_url);
    let mut options = ConnectOptions::new(url.into_owned());
    // sqlx keeps retrying a refused connection until the acquire timeout:
    // a request rides out a short database restart, and a long outage
    // makes it wait this long before it fails.
    let acquire = Duration::from_secs(settings.db_acquire_timeout_secs);
    // (SeaORM turns connect_timeout into this same pool setting.)
    options
        .max_connections(settings.db_pool_size)
        .acquire_timeout(acquire)
        .sqlx_logging(false);
    Database::connect(options).await
}

/// Applies pending migrations. On Postgres they run in one transaction under
/// an advisory lock, so processes starting together migrate once, in turn.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Migrator::up(db, None).await;
    }
    let txn = db.begin().await?;
    txn.execute(Statement::from_string(
        DatabaseBackend::Postgres,
        // An arbitrary constant key that names "the migration lock".
        "SELECT pg_advisory_xact_lock(7242019002)",
    ))
    .await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    service: Services,
    shutdown: Shutdown,
    shutdown_grace: Duration,
    connection_limits: ConnectionLimits,
    _data_dir: Option<DataDirLock>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// As [`Self::build`], with time read from `clock`: the services, token
    /// checks, WebSocket timers and background loops all follow it.
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> Result<Self, StartupError> {
        let data_dir = DataDirLock::claim(&settings)?;
        let jwt_secret = load_jwt_secret(&settings)?;
        let listener = TcpListener::bind(&settings.listen_addr)
            .await
            .map_err(|source| StartupError::Listen {
                addr: settings.listen_addr.clone(),
                source,
            })?;
        let mut limits = settings.limits.clone();
        if settings.public_url.is_none() {
            // Port 0 is only known once bound.
            if let Ok(bound) = listener.local_addr() {
                limits.own_origins = crate::config::own_origins(None, &bound.to_string());
            }
        }
        let db = connect(&settings).await?;
        migrate(&db).await?;
        let keys = JwtKeys::new(&jwt_secret)
            .with_max_ttl(settings.max_token_ttl_secs)
            .with_clock(clock.clone());
        let policy = Policy {
            routing_mode: settings.routing_mode,
            agent_capacity: settings.agent_capacity,
            history_days: settings.history_days,
            retention_days: settings.retention_days,
            max_message_chars: settings.max_message_chars,
            offer_timeout: chrono::Duration::seconds(settings.offer_timeout_secs),
            skill_wait: chrono::Duration::seconds(settings.skill_wait_secs),
            resume_grace: chrono::Duration::seconds(settings.resume_grace_secs),
            agent_absence: crate::domain::AbsenceRule {
                away_after: chrono::Duration::seconds(settings.agent_away_secs),
                abandon_after: chrono::Duration::seconds(settings.agent_abandon_secs),
            },
            message_rate_per_sec: settings.message_rate_per_sec,
            message_burst: settings.message_burst,
            ip_session_rate_per_min: settings.ip_session_rate_per_min,
            ip_session_burst: settings.ip_session_burst,
            webhooks: settings.webhooks.clone(),
            rating_window: chrono::Duration::days(settings.rating_window_days),
            tickets: settings.tickets.clone(),
            guests: GuestPolicy::new(settings.guests.clone(), keys.clone(), &jwt_secret),
            files: file_policy(&settings, &jwt_secret)?,
            context: crate::service::ContextPolicy::new(&settings.context, &jwt_secret),
        };
        let relay = match &settings.event_bus {
            EventBusKind::InProcess => Relay::InProcess,
            EventBusKind::Postgres => Relay::Postgres(db.get_postgres_connection_pool().clone()),
            EventBusKind::Nats { url } => {
                let subject = match &settings.nats_subject {
                    Some(subject) => subject.clone(),
                    None => nats::subject_for(repo::deployment::id(&db).await?),
                };
                tracing::info!(subject = %subject, "relaying events through NATS");
                Relay::Nats(nats::NatsRelay {
                    url: url.clone(),
                    subject,
                })
            }
        };
        let bus = relay.start(EventBus::in_process()).await?;
        let service = Core::start(db, bus, policy, clock);
        let shutdown = Shutdown::default();
        let connection_limits = ConnectionLimits {
            header_timeout: Duration::from_secs(limits.http_header_timeout_secs),
            max_per_address: limits.ip_max_connections,
            trusted_proxies: limits.trusted_proxies.clone(),
        };
        let state = AppState {
            gateway: graphql::gateway(service.clone(), &limits),
            service: service.clone(),
            keys,
            limits,
            shutdown: shutdown.clone(),
            connections: Default::default(),
        };
        Ok(Application {
            listener,
            router: router(state),
            service,
            shutdown,
            shutdown_grace: Duration::from_secs(settings.shutdown_grace_secs),
            connection_limits,
            _data_dir: data_dir,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn service(&self) -> &Services {
        &self.service
    }

    /// Serves until `stop` resolves. Then it stops accepting, finishes
    /// in-flight requests, closes every WebSocket with 1012 (clients
    /// reconnect, to another process, and resume by seq) and waits for them
    /// up to SHUTDOWN_GRACE_SECS. Background routing work (offer lapse, queue
    /// sweep) runs while serving.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let routing = (self.service.policy().routing_mode != RoutingMode::Manual)
            .then(|| tokio::spawn(routing_loop(self.service.clone())));
        let retention = tokio::spawn(retention_loop(self.service.clone()));
        let presence = tokio::spawn(presence_loop(self.service.clone()));
        let agent_presence = tokio::spawn(agent_presence_loop(self.service.clone()));
        let webhooks = crate::service::webhooks::dispatcher::spawn(self.service.clone())?;
        let sockets = self.shutdown.clone();
        let served = serve(
            self.listener,
            self.router,
            self.connection_limits,
            async move {
                stop.await;
                sockets.begin();
            },
        )
        .await;
        let still_open = self.shutdown.drained(self.shutdown_grace).await;
        if still_open > 0 {
            tracing::warn!(
                still_open,
                "WebSockets still open after the shutdown grace period"
            );
        }
        if let Some(task) = routing {
            task.abort();
        }
        retention.abort();
        presence.abort();
        agent_presence.abort();
        webhooks.stop();
        // Agents connected here count as gone now, not a heartbeat bound
        // from now (a process that dies without this gets the bound).
        let forget = self.service.presence();
        let forgotten =
            tokio::time::timeout(Duration::from_secs(5), forget.forget_agent_connections());
        if forgotten.await.is_err() {
            tracing::warn!("could not record agents' closed connections in time");
        }
        served
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// How often stored offer deadlines are checked.
const LAPSE_CHECK: Duration = Duration::from_millis(500);
/// How often the matcher runs without a trigger: a safety net for triggers
/// lost to errors, and the way work queued before a restart gets matched.
const MATCH_SWEEP: Duration = Duration::from_secs(5);

/// Lapses offers past their deadline and sweeps the queue. Every process
/// runs one; the routing lock and row locks make them agree.
async fn routing_loop(service: Services) {
    let mut lapse = service.clock().interval(LAPSE_CHECK);
    let mut sweep = service.clock().interval(MATCH_SWEEP);
    loop {
        tokio::select! {
            _ = lapse.tick() => {
                if let Err(e) = service.routing().lapse_expired_offers().await {
                    tracing::warn!(error = %e, "lapsing offers failed");
                }
            }
            _ = sweep.tick() => service.routing().rematch().await,
        }
    }
}

/// How often data past retention is purged.
const RETENTION_SWEEP: Duration = Duration::from_secs(3600);

async fn retention_loop(service: Services) {
    let mut tick = service.clock().interval(RETENTION_SWEEP);
    loop {
        tick.tick().await;
        if let Err(e) = service.retention().purge_expired().await {
            tracing::warn!(error = %e, "retention purge failed; retrying next hour");
        }
    }
}

/// Closes chats whose customer stayed away past the grace period. After
/// the database was unreachable, it first restarts every open chat's grace
/// period: presence could not be recorded meanwhile, and the outage is ours,
/// not the customers'.
async fn presence_loop(service: Services) {
    let mut tick = service
        .clock()
        .interval(service.presence().presence_heartbeat());
    let mut presence_unrecorded = false;
    loop {
        tick.tick().await;
        if presence_unrecorded {
            match service.presence().excuse_absences().await {
                Ok(excused) => {
                    tracing::info!(
                        excused,
                        "database reachable again; open chats get their grace period anew"
                    );
                    presence_unrecorded = false;
                }
                Err(e) => tracing::warn!(error = %e, "database still unreachable"),
            }
            continue;
        }
        if let Err(e) = service.presence().close_abandoned().await {
            tracing::warn!(error = %e, "closing abandoned chats failed; retrying");
            presence_unrecorded = e.retryable();
        }
    }
}

/// Vouches for this process's agent connections each heartbeat, then
/// applies the absence rule (AWAY, chats back to the queue). Judging waits a
/// whole bound after the start and after the database was unreachable, so
/// that every process has had its chance to vouch for its connections
/// first: the outage was ours, not the agents'.
async fn agent_presence_loop(service: Services) {
    let presence = service.presence();
    let clock = service.clock();
    let mut tick = clock.interval(presence.agent_heartbeat());
    let bound = presence.agent_stale_after();
    let mut vouching_since = None;
    loop {
        tick.tick().await;
        match presence.vouch_for_agents().await {
            Ok(()) => {
                vouching_since.get_or_insert_with(|| clock.instant());
            }
            Err(e) => {
                tracing::warn!(error = %e, "agent heartbeat failed; retrying");
                vouching_since = None;
                continue;
            }
        }
        let judging = vouching_since.is_some_and(|since| clock.instant() - since >= bound);
        if judging {
            if let Err(e) = presence.sweep_agents().await {
                tracing::warn!(error = %e, "agent presence sweep failed; retrying");
                if e.retryable() {
                    vouching_since = None;
                }
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
