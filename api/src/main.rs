use std::process::ExitCode;

use switchboard::auth::JwtKeys;
use switchboard::cli::{self, Command};
use switchboard::config::Settings;
use switchboard::startup::{self, Application};
use switchboard::{audit, graphql, repo, telemetry};

// glibc's malloc and free were a quarter of the server's CPU under chat load
// (perf: _int_malloc, unlink_chunk, malloc_consolidate); see BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard: {e}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("switchboard: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exit status of `switchboard audit` when it finds a violation.
const VIOLATIONS_FOUND: u8 = 3;

async fn run(command: Command) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match command {
        Command::Help => print!("{}", cli::help()),
        Command::Schema => print!("{}", graphql::sdl()),
        Command::Token {
            role,
            sub,
            name,
            ttl_secs,
        } => {
            let settings = Settings::from_env()?;
            let keys = JwtKeys::new(&settings.jwt_secret.load()?.secret);
            println!("{}", keys.issue(role, &sub, name.as_deref(), ttl_secs)?);
        }
        Command::Migrate => {
            let settings = Settings::from_env()?;
            telemetry::init(settings.log_json);
            let _data_dir = startup::DataDirLock::claim(&settings)?;
            // As at a first start: `switchboard token` then signs with it.
            startup::load_jwt_secret(&settings)?;
            let db = startup::connect(&settings).await?;
            startup::migrate(&db).await?;
            tracing::info!("migrations applied");
        }
        Command::Serve => {
            let settings = Settings::from_env()?;
            telemetry::init(settings.log_json);
            for line in settings.banner() {
                tracing::info!("config {line}");
            }
            switchboard::http::serve::raise_descriptor_limit();
            let public_url = settings.public_url.clone();
            // It also makes the token-signing secret if needed, and says so.
            let app = Application::build(settings).await?;
            let local = format!("http://{}", app.local_addr()?);
            tracing::info!(
                "GraphiQL: {}/ (add ?token=<a token from `switchboard token`>)",
                public_url.as_deref().unwrap_or(&local)
            );
            tracing::info!("listening on {local}");
            app.run_until_stopped().await?;
        }
        Command::ContextDemo { listen } => {
            let settings = Settings::from_env()?;
            telemetry::init(settings.log_json);
            let secret = match &settings.context.secret {
                Some(s) => s.expose().as_bytes().to_vec(),
                None => settings.jwt_secret.load()?.secret.expose().to_vec(),
            };
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            tracing::info!(
                "demo customer context on http://{}/ (set CONTEXT_URL to it)",
                listener.local_addr()?
            );
            switchboard::http::context_demo::serve(listener, secret).await?;
        }
        Command::Audit { from, to } => {
            let settings = Settings::from_env()?;
            let db = startup::connect(&settings).await?;
            let skill_wait = chrono::Duration::seconds(settings.skill_wait_secs);
            let period = repo::audit::load_period(&db, from, to, skill_wait).await?;
            let report = audit::check(&period);
            for line in report.lines(from, to) {
                println!("{line}");
            }
            if !report.violations.is_empty() {
                return Ok(ExitCode::from(VIOLATIONS_FOUND));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
