//! Tracing set-up: human-readable by default, JSON with `LOG_FORMAT=json`.

use tracing_subscriber::{fmt, EnvFilter};

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let builder = fmt().with_env_filter(filter).with_target(true);
    // try_init: tests may call this from several places; the first one wins.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
