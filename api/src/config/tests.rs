use super::secret::{load_or_create_secret, SECRET_FILE};
use super::*;
use std::collections::HashMap;

fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_lookup(|k| map.get(k).cloned())
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("switchboard-config-{}", uuid::Uuid::new_v4()))
}

#[test]
fn defaults_use_sqlite_and_a_generated_secret_that_is_reused() {
    let dir = temp_dir();
    let d = dir.to_str().unwrap();
    let first = settings(&[("DATA_DIR", d)]).unwrap();
    assert!(first.database_url.starts_with("sqlite://"));
    assert_eq!(first.listen_addr, "127.0.0.1:8080");
    assert_eq!(first.agent_capacity, 2);
    assert_eq!(first.history_days, 14);
    assert_eq!(first.retention_days, 90);
    assert_eq!(first.event_bus, EventBusKind::InProcess);
    let second = settings(&[("DATA_DIR", d)]).unwrap();
    assert!(!dir.exists(), "parsing settings made the data folder");
    let made = first.jwt_secret.load().unwrap();
    assert!(made.generated);
    let again = second.jwt_secret.load().unwrap();
    assert!(!again.generated);
    assert_eq!(made.secret.expose(), again.secret.expose());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_numbers_and_short_secrets_are_refused() {
    let dir = temp_dir();
    let d = dir.to_str().unwrap();
    assert!(settings(&[("DATA_DIR", d), ("AGENT_CAPACITY", "zero")]).is_err());
    assert!(settings(&[("DATA_DIR", d), ("AGENT_CAPACITY", "0")]).is_err());
    assert!(settings(&[("DATA_DIR", d), ("JWT_SECRET", "short")]).is_err());
    assert!(settings(&[("DATA_DIR", d), ("ROUTING_MODE", "random")]).is_err());
    assert!(
        settings(&[("DATA_DIR", d), ("EVENT_BUS", "postgres")]).is_err(),
        "postgres bus on SQLite"
    );
    assert!(settings(&[("DATA_DIR", d), ("EVENT_BUS", "carrier-pigeon")]).is_err());
    assert!(settings(&[("DATA_DIR", d), ("EVENT_BUS", "nats://")]).is_err());
    assert!(
        settings(&[("DATA_DIR", d), ("NATS_SUBJECT", "a.b")]).is_err(),
        "a subject without NATS"
    );
    for bad in ["a.*", "a.>", "a..b", "a b"] {
        assert!(
            settings(&[
                ("DATA_DIR", d),
                ("EVENT_BUS", "nats://127.0.0.1:4222"),
                ("NATS_SUBJECT", bad)
            ])
            .is_err(),
            "{bad}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_nats_url_selects_the_nats_bus_and_its_password_is_masked() {
    let dir = temp_dir();
    let d = dir.to_str().unwrap();
    let s = settings(&[
        ("DATA_DIR", d),
        ("EVENT_BUS", "nats://relay:s3cret@127.0.0.1:4222"),
    ])
    .unwrap();
    assert_eq!(
        s.event_bus,
        EventBusKind::Nats {
            url: "nats://relay:s3cret@127.0.0.1:4222".into()
        }
    );
    assert_eq!(s.nats_subject, None);
    let banner = s.banner().join("\n");
    assert!(banner.contains("EVENT_BUS=nats://relay:***@127.0.0.1:4222"));
    assert!(!banner.contains("s3cret"));
    let s = settings(&[
        ("DATA_DIR", d),
        ("EVENT_BUS", "nats://127.0.0.1:4222"),
        ("NATS_SUBJECT", "tenant-a.switchboard"),
    ])
    .unwrap();
    assert_eq!(s.nats_subject.as_deref(), Some("tenant-a.switchboard"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn credentials_in_query_parameters_and_nats_tokens_are_masked() {
    assert_eq!(
        redact_url("postgres://db/chat?user=app&password=s3cret&sslmode=require"),
        "postgres://db/chat?user=app&password=***&sslmode=require"
    );
    assert_eq!(
        redact_url("nats://s3cr3t-token@127.0.0.1:4222"),
        "nats://***@127.0.0.1:4222"
    );
    let dir = temp_dir();
    let s = settings(&[
        ("DATA_DIR", dir.to_str().unwrap()),
        ("DATABASE_URL", "postgres://db/chat?password=hunter22"),
        ("EVENT_BUS", "nats://tok3n@127.0.0.1:4222"),
        ("METRICS_TOKEN", "metrics-token-0123456789"),
    ])
    .unwrap();
    let banner = s.banner().join("\n");
    for secret in ["hunter22", "tok3n", "metrics-token-0123456789"] {
        assert!(!banner.contains(secret), "{secret} in {banner}");
    }
    assert!(!format!("{s:?}").contains("metrics-token-0123456789"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_secret_made_by_one_of_two_processes_starting_together_is_shared() {
    for _ in 0..20 {
        let dir = temp_dir();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || load_or_create_secret(&dir).map(|(s, _)| s))
            })
            .collect();
        let secrets: Vec<Vec<u8>> = threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap()
                    .expect("no half-written secret")
                    .expose()
                    .to_vec()
            })
            .collect();
        assert!(secrets.windows(2).all(|w| w[0] == w[1]));
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "only the secret remains");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn the_data_folder_is_private_and_made_only_when_needed() {
    let dir = temp_dir();
    let d = dir.to_str().unwrap();
    settings(&[("DATA_DIR", d), ("JWT_SECRET", "0123456789abcdef0123")]).unwrap();
    assert!(!dir.exists(), "parsing settings made the data folder");
    let s = settings(&[("DATA_DIR", d)]).unwrap();
    assert!(!dir.exists(), "parsing settings made the data folder");
    s.jwt_secret.load().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn own_origins_come_from_public_url_or_the_listen_address() {
    assert_eq!(
        own_origins(Some("https://Chat.example.com/support"), "0.0.0.0:8080"),
        vec!["https://chat.example.com"]
    );
    let local = own_origins(None, "127.0.0.1:8080");
    assert!(local.contains(&"http://127.0.0.1:8080".to_owned()));
    assert!(local.contains(&"http://localhost:8080".to_owned()));
    assert_eq!(own_origins(None, "10.0.0.5:80"), vec!["http://10.0.0.5:80"]);
    let dir = temp_dir();
    let d = dir.to_str().unwrap();
    assert!(settings(&[("DATA_DIR", d), ("PUBLIC_URL", "ftp://x")]).is_err());
    assert!(settings(&[("DATA_DIR", d), ("PUBLIC_URL", "https://u:p@x")]).is_err());
    assert!(settings(&[("DATA_DIR", d), ("TRUSTED_PROXIES", "10.0.0.0/33")]).is_err());
    let s = settings(&[("DATA_DIR", d), ("TRUSTED_PROXIES", "10.0.0.0/8, ::1")]).unwrap();
    assert_eq!(s.limits.trusted_proxies.len(), 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn passwords_are_masked_in_the_banner() {
    assert_eq!(
        redact_url("postgres://app:s3cret@db:5432/chat"),
        "postgres://app:***@db:5432/chat"
    );
    assert_eq!(
        redact_url("postgres://postgres@127.0.0.1/x"),
        "postgres://postgres@127.0.0.1/x"
    );
}

#[test]
fn every_setting_is_declared_read_and_in_the_banner() {
    let looked_up = std::cell::RefCell::new(Vec::new());
    let s = Settings::from_lookup(|name| {
        looked_up.borrow_mut().push(name.to_owned());
        None
    })
    .unwrap();
    let mut looked_up = looked_up.into_inner();
    looked_up.sort();
    looked_up.dedup();
    let mut declared: Vec<String> = settings::ALL.iter().map(|s| s.name.to_owned()).collect();
    declared.sort();
    assert_eq!(looked_up, declared, "read and declared differ");
    let banner = s.banner();
    assert_eq!(banner.len(), settings::ALL.len());
    for (line, setting) in banner.iter().zip(settings::ALL) {
        assert!(line.starts_with(&format!("{}=", setting.name)), "{line}");
    }
    assert!(banner.contains(&"LOG_FORMAT=text".to_owned()));
    assert!(banner.contains(&"JWT_SECRET=<from data/jwt_secret>".to_owned()));
}

#[test]
fn defaults_come_from_the_declarations() {
    let s = settings(&[]).unwrap();
    for setting in settings::ALL {
        if let settings::Kind::Int { default, .. } = setting.kind {
            let line = setting.banner_line(&s);
            assert_eq!(line, format!("{}={default}", setting.name));
        }
    }
    assert_eq!(s.routing_mode, RoutingMode::default());
    assert_eq!(s.limits.graphiql_cdn, DEFAULT_GRAPHIQL_CDN);
    assert!(s.limits.introspection);
}

#[test]
fn the_help_lists_every_setting_with_its_default() {
    let help = settings::help_text();
    for setting in settings::ALL {
        assert!(help.contains(&format!("  {} (default: ", setting.name)));
    }
    assert!(help.contains("AGENT_CAPACITY (default: 2; 1 to 100)"));
    assert!(help
        .lines()
        .all(|l| l.chars().count() <= 78 || !l.contains(' ')));
}

#[test]
fn agents_are_away_before_their_chats_are_abandoned() {
    let dir = temp_dir();
    let d = dir.to_str().unwrap();
    let defaults = settings(&[("DATA_DIR", d)]).unwrap();
    assert_eq!(
        (defaults.agent_away_secs, defaults.agent_abandon_secs),
        (60, 300)
    );
    let equal = settings(&[
        ("DATA_DIR", d),
        ("AGENT_AWAY_SECS", "30"),
        ("AGENT_ABANDON_SECS", "30"),
    ]);
    assert!(equal.is_ok());
    // Chats sent back while the agent is still AVAILABLE would come back
    // to them at once.
    let err = settings(&[("DATA_DIR", d), ("AGENT_ABANDON_SECS", "59")]).unwrap_err();
    assert!(err.to_string().contains("AGENT_ABANDON_SECS"), "{err}");
    assert!(settings(&[("DATA_DIR", d), ("AGENT_AWAY_SECS", "0")]).is_err());
}

#[test]
fn guest_tokens_tickets_and_blocked_clients() {
    let dir = temp_dir();
    let d = dir.to_str().unwrap();
    let defaults = settings(&[("DATA_DIR", d)]).unwrap();
    assert_eq!(defaults.guests.token_ttl_secs, 86_400);
    assert_eq!(defaults.guests.challenge_bits, 0);
    assert!(defaults.tickets.is_none());
    assert!(defaults.limits.blocked_clients.is_empty());
    assert_eq!(defaults.rating_window_days, 7);
    // A shorter token limit shortens the default guest life, and refuses a chosen longer one.
    let short = settings(&[("DATA_DIR", d), ("MAX_TOKEN_TTL_SECS", "3600")]).unwrap();
    assert_eq!(short.guests.token_ttl_secs, 3600);
    let err = settings(&[
        ("DATA_DIR", d),
        ("MAX_TOKEN_TTL_SECS", "3600"),
        ("GUEST_TOKEN_TTL_SECS", "7200"),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("GUEST_TOKEN_TTL_SECS"), "{err}");

    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let on = settings(&[
        ("DATA_DIR", d),
        ("TICKET_URL", "http://10.0.0.5:8000/tickets"),
        ("TICKET_SECRET", secret),
        ("TICKET_TIMEOUT_MS", "1500"),
    ])
    .unwrap();
    let tickets = on.tickets.as_ref().unwrap();
    assert_eq!(tickets.timeout, std::time::Duration::from_millis(1500));
    assert_eq!(tickets.attempts, 3);
    assert!(on.banner().contains(&"TICKET_SECRET=<set>".to_owned()));
    assert!(!on.banner().iter().any(|l| l.contains("MfKQ9r8")));
    for (url, secret, wrong) in [
        ("http://x/t", "", "TICKET_SECRET"),
        ("http://x/t", "not-a-whsec", "TICKET_SECRET"),
        ("ftp://x/t", secret, "TICKET_URL"),
        ("", secret, "TICKET_SECRET"),
    ] {
        let err = settings(&[
            ("DATA_DIR", d),
            ("TICKET_URL", url),
            ("TICKET_SECRET", secret),
        ])
        .unwrap_err();
        assert!(err.to_string().contains(wrong), "{url} {secret}: {err}");
    }

    let blocked = settings(&[
        ("DATA_DIR", d),
        ("BLOCKED_CLIENTS", "203.0.113.0/24, 2001:db8::1"),
    ])
    .unwrap();
    assert_eq!(blocked.limits.blocked_clients.len(), 2);
    assert!(settings(&[("DATA_DIR", d), ("BLOCKED_CLIENTS", "300.1.1.1")]).is_err());
}

#[test]
fn a_loopback_database_is_reached_without_tls_unless_the_url_asks() {
    use super::database_connect_url as connect;
    for (given, used) in [
        (
            "postgres://postgres@127.0.0.1:5432/chat",
            "postgres://postgres@127.0.0.1:5432/chat?sslmode=disable",
        ),
        (
            "postgresql://app:pw@localhost/chat?application_name=sb",
            "postgresql://app:pw@localhost/chat?application_name=sb&sslmode=disable",
        ),
        (
            "postgres://[::1]/chat",
            "postgres://[::1]/chat?sslmode=disable",
        ),
        (
            "postgres://127.8.9.10/chat",
            "postgres://127.8.9.10/chat?sslmode=disable",
        ),
        // The operator's choice stands.
        (
            "postgres://127.0.0.1/chat?sslmode=require",
            "postgres://127.0.0.1/chat?sslmode=require",
        ),
        (
            "postgres://localhost/chat?host=/var/run/postgresql",
            "postgres://localhost/chat?host=/var/run/postgresql",
        ),
        // Other hosts keep the driver's default.
        ("postgres://db.internal/chat", "postgres://db.internal/chat"),
        ("postgres://10.0.0.5/chat", "postgres://10.0.0.5/chat"),
        (
            "postgres://localhost.evil.example/chat",
            "postgres://localhost.evil.example/chat",
        ),
        (
            "sqlite://data/switchboard.db?mode=rwc",
            "sqlite://data/switchboard.db?mode=rwc",
        ),
        ("not a url", "not a url"),
    ] {
        assert_eq!(connect(given), used, "{given}");
    }
}
