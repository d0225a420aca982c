//! Command-line parsing for the `switchboard` binary.

use chrono::{DateTime, Utc};

use crate::auth::Role;

pub const USAGE: &str = "\
usage: switchboard [serve]          run the server (default)
       switchboard migrate          apply database migrations and exit
       switchboard schema           print the GraphQL SDL
       switchboard token --role customer|agent|admin --sub ID [--name NAME] [--ttl-secs N]
                                    print a signed token for trying the server
       switchboard audit --from RFC3339 --to RFC3339
                                    check the routing decisions of [from, to) in
                                    DATABASE_URL against every routing invariant;
                                    exits 3 if any is broken
       switchboard context-demo [--listen ADDR]
                                    serve made-up customer context (orders, profile)
                                    for CONTEXT_URL to try it (default 127.0.0.1:8090)";

/// `switchboard --help`: the usage, then every setting with its default
/// and meaning, from the settings' declarations.
pub fn help() -> String {
    format!("{USAGE}\n\n{}", crate::config::settings::help_text())
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve,
    Migrate,
    Schema,
    Token {
        role: Role,
        sub: String,
        name: Option<String>,
        ttl_secs: i64,
    },
    /// Replay the routing decisions of [from, to) and check them.
    Audit {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    /// Serve a demo customer context provider.
    ContextDemo {
        listen: String,
    },
    Help,
}

/// Default lifetime of tokens made with `switchboard token`: one day.
const DEFAULT_TTL_SECS: i64 = 24 * 3600;

pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((first, rest)) = args.split_first() else {
        return Ok(Command::Serve);
    };
    let no_more = |cmd| {
        if rest.is_empty() {
            Ok(cmd)
        } else {
            Err(format!("unexpected argument {:?}", rest[0]))
        }
    };
    match first.as_str() {
        "serve" => no_more(Command::Serve),
        "migrate" => no_more(Command::Migrate),
        "schema" => no_more(Command::Schema),
        "-h" | "--help" | "help" => Ok(Command::Help),
        "token" => parse_token(rest),
        "audit" => parse_audit(rest),
        "context-demo" => parse_context_demo(rest),
        other => Err(format!("unknown command {other:?}")),
    }
}

fn parse_token(args: &[String]) -> Result<Command, String> {
    let (mut role, mut sub, mut name, mut ttl) = (None, None, None, DEFAULT_TTL_SECS);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--role" => {
                let v = value()?;
                role = Some(Role::from_claim(&v).ok_or_else(|| {
                    format!("--role must be customer, agent or admin, not {v:?}")
                })?);
            }
            "--sub" => sub = Some(value()?),
            "--name" => name = Some(value()?),
            "--ttl-secs" => {
                let v = value()?;
                ttl =
                    v.parse().ok().filter(|n: &i64| *n > 0).ok_or_else(|| {
                        format!("--ttl-secs must be a positive number, not {v:?}")
                    })?;
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let sub = sub
        .filter(|s| !s.trim().is_empty())
        .ok_or("--sub is required")?;
    Ok(Command::Token {
        role: role.ok_or("--role is required")?,
        sub,
        name,
        ttl_secs: ttl,
    })
}

/// Where `switchboard context-demo` listens unless told.
pub const CONTEXT_DEMO_ADDR: &str = "127.0.0.1:8090";

fn parse_context_demo(args: &[String]) -> Result<Command, String> {
    match args {
        [] => Ok(Command::ContextDemo {
            listen: CONTEXT_DEMO_ADDR.to_owned(),
        }),
        [flag, addr] if flag == "--listen" => Ok(Command::ContextDemo {
            listen: addr.clone(),
        }),
        [flag] if flag == "--listen" => Err("--listen needs a value".into()),
        [other, ..] => Err(format!("unknown option {other:?}")),
    }
}

fn parse_audit(args: &[String]) -> Result<Command, String> {
    let (mut from, mut to) = (None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let time = || {
            DateTime::parse_from_rfc3339(value)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    format!("{flag} must be an RFC 3339 time (2026-12-01T09:00:00Z), not {value:?}")
                })
        };
        match flag.as_str() {
            "--from" => from = Some(time()?),
            "--to" => to = Some(time()?),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let (from, to) = (
        from.ok_or("--from is required")?,
        to.ok_or("--to is required")?,
    );
    if to <= from {
        return Err("--to must be after --from".into());
    }
    Ok(Command::Audit { from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn serve_is_the_default() {
        assert_eq!(parse(&[]), Ok(Command::Serve));
        assert_eq!(parse(&args("serve")), Ok(Command::Serve));
        assert_eq!(parse(&args("schema")), Ok(Command::Schema));
        assert!(parse(&args("serve now")).is_err());
        assert!(parse(&args("launch")).is_err());
    }

    #[test]
    fn token_options() {
        assert_eq!(
            parse(&args(
                "token --role agent --sub ann --name Ann --ttl-secs 60"
            )),
            Ok(Command::Token {
                role: Role::Agent,
                sub: "ann".into(),
                name: Some("Ann".into()),
                ttl_secs: 60
            })
        );
        assert!(parse(&args("token --role agent")).is_err());
        assert!(parse(&args("token --sub x")).is_err());
        assert!(parse(&args("token --role root --sub x")).is_err());
        assert!(parse(&args("token --role admin --sub x --ttl-secs -5")).is_err());
        assert!(parse(&args("token --role admin --sub")).is_err());
    }

    #[test]
    fn context_demo_options() {
        assert_eq!(
            parse(&args("context-demo")),
            Ok(Command::ContextDemo {
                listen: CONTEXT_DEMO_ADDR.into()
            })
        );
        assert_eq!(
            parse(&args("context-demo --listen 0.0.0.0:9000")),
            Ok(Command::ContextDemo {
                listen: "0.0.0.0:9000".into()
            })
        );
        assert!(parse(&args("context-demo --listen")).is_err());
        assert!(parse(&args("context-demo --port 9")).is_err());
    }

    #[test]
    fn audit_options() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            parse(&args(
                "audit --from 2026-12-01T09:00:00Z --to 2026-12-01T11:30:00+01:00"
            )),
            Ok(Command::Audit {
                from: t("2026-12-01T09:00:00Z"),
                to: t("2026-12-01T10:30:00Z"),
            })
        );
        assert!(parse(&args("audit --from 2026-12-01T09:00:00Z")).is_err());
        assert!(parse(&args("audit --to 2026-12-01T09:00:00Z")).is_err());
        assert!(parse(&args("audit --from yesterday --to 2026-12-01T09:00:00Z")).is_err());
        assert!(parse(&args(
            "audit --from 2026-12-01T09:00:00Z --to 2026-12-01T09:00:00Z"
        ))
        .is_err());
        assert!(parse(&args("audit --from 2026-12-01T09:00:00Z --to")).is_err());
    }
}
