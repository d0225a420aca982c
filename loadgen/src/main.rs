use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;
use switchboard_loadgen::scenarios::{
    self, BaselineParams, BurstParams, ChatParams, IdleParams, ResumeParams,
};
use switchboard_loadgen::{Report, ScenarioError, Target};

const USAGE: &str = "\
usage: switchboard-loadgen chat|idle|burst|resume|baseline [options]

  --url URL            server (default http://127.0.0.1:8080)
  --jwt-secret S       the server's JWT_SECRET (default: $JWT_SECRET)
  --server-pid PID     read the server's CPU and RSS from /proc
  --database-url URL   the server's database: `baseline` inserts there, and
                       `chat` runs the baseline after itself and reports the ratio
  --db-connections N   baseline connections, as the server's DB_POOL_SIZE (16)
  --body-bytes N       message size (100)
chat:     --chats C (100) --messages M per side (20) --think-ms T (0)
          --drain-secs (10) --setup-secs (120)
idle:     --connections K (1000) --hold-secs (10)
burst:    --customers Q (1000) --agents A (500) --timeout-secs (60)
resume:   --missed 10,100,1000 --repeats (3)
baseline: --rows N (20000)

Prints a table and one JSON line per scenario; exits 1 when the run had
errors or lost, duplicated or reordered messages.";

struct Args(HashMap<String, String>);

impl Args {
    fn parse(raw: &[String]) -> Result<(String, Args), String> {
        let mut it = raw.iter();
        let scenario = it.next().ok_or("no scenario")?.clone();
        let mut map = HashMap::new();
        while let Some(flag) = it.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected {flag}"))?;
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            map.insert(name.to_owned(), value.clone());
        }
        Ok((scenario, Args(map)))
    }

    fn str(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    fn num<T: std::str::FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        match self.0.remove(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: not a number: {v}")),
        }
    }

    fn secs(&mut self, name: &str, default: u64) -> Result<Duration, String> {
        Ok(Duration::from_secs(self.num(name, default)?))
    }

    fn finish(self) -> Result<(), String> {
        match self.0.keys().next() {
            Some(k) => Err(format!("unknown option --{k}")),
            None => Ok(()),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.is_empty() || raw[0] == "-h" || raw[0] == "--help" {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(&raw).await {
        Ok(reports) => {
            for r in &reports {
                print!("{}", r.table());
            }
            for r in &reports {
                println!("{}", r.json);
            }
            if reports.iter().any(|r| r.flaws > 0) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("switchboard-loadgen: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

async fn run(raw: &[String]) -> Result<Vec<Report>, Box<dyn std::error::Error>> {
    let (scenario, mut a) = Args::parse(raw)?;
    let url = a
        .str("url")
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    let secret = a
        .str("jwt-secret")
        .or_else(|| std::env::var("JWT_SECRET").ok())
        .unwrap_or_default();
    let target = Target::new(&url, &secret, a.str("server-pid"));
    let database_url = a.str("database-url");
    let db_connections: u32 = a.num("db-connections", 16)?;
    let body_bytes: usize = a.num("body-bytes", 100)?;
    let needs_secret = scenario != "baseline";
    if needs_secret && secret.len() < 16 {
        return Err("--jwt-secret (or JWT_SECRET) must be the server's secret".into());
    }
    let reports = match scenario.as_str() {
        "chat" => {
            let p = ChatParams {
                chats: a.num("chats", 100)?,
                messages: a.num("messages", 20)?,
                think: Duration::from_millis(a.num("think-ms", 0)?),
                body_bytes,
                drain: a.secs("drain-secs", 10)?,
                setup_timeout: a.secs("setup-secs", 120)?,
            };
            a.finish()?;
            let mut chat = scenarios::chat(&target, p).await?;
            let mut reports = Vec::new();
            if let Some(database_url) = database_url {
                let rows = chat.json["expected"].as_u64().unwrap_or(0) as usize;
                let base = scenarios::baseline(BaselineParams {
                    database_url,
                    connections: db_connections,
                    rows,
                    body_bytes,
                })
                .await?;
                let ours = chat.json["delivered_per_sec"].as_f64().unwrap_or(0.0);
                let theirs = base.json["rows_per_sec"].as_f64().unwrap_or(0.0);
                if let Some(obj) = chat.json.as_object_mut() {
                    obj.insert("baseline_rows_per_sec".into(), json!(theirs));
                    obj.insert(
                        "ratio_to_baseline".into(),
                        json!(if theirs > 0.0 {
                            (ours / theirs * 1000.0).round() / 1000.0
                        } else {
                            0.0
                        }),
                    );
                }
                reports.push(chat);
                reports.push(base);
            } else {
                reports.push(chat);
            }
            reports
        }
        "idle" => {
            let p = IdleParams {
                connections: a.num("connections", 1000)?,
                hold: a.secs("hold-secs", 10)?,
            };
            a.finish()?;
            vec![scenarios::idle(&target, p).await?]
        }
        "burst" => {
            let p = BurstParams {
                customers: a.num("customers", 1000)?,
                agents: a.num("agents", 500)?,
                timeout: a.secs("timeout-secs", 60)?,
            };
            a.finish()?;
            vec![scenarios::burst(&target, p).await?]
        }
        "resume" => {
            let missed = a
                .str("missed")
                .unwrap_or_else(|| "10,100,1000".to_owned())
                .split(',')
                .map(|s| s.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--missed: {e}"))?;
            let p = ResumeParams {
                missed,
                repeats: a.num("repeats", 3)?,
                body_bytes,
            };
            a.finish()?;
            vec![scenarios::resume(&target, p).await?]
        }
        "baseline" => {
            let p = BaselineParams {
                database_url: database_url
                    .ok_or_else(|| ScenarioError::Setup("baseline needs --database-url".into()))?,
                connections: db_connections,
                rows: a.num("rows", 20_000)?,
                body_bytes,
            };
            a.finish()?;
            vec![scenarios::baseline(p).await?]
        }
        other => return Err(format!("unknown scenario {other}").into()),
    };
    Ok(reports)
}
