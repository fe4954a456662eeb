//! Starts N `redis-server` instances for test suites written in other languages (C, JavaScript)
//! and lets them inject faults over stdin.
//!
//! ```text
//! redis-cluster [--instances N] [--tls] [--acl USER:PASSWORD] [--proxies] [--aof]
//! ```
//!
//! Prints one JSON line, `{"urls":[…],"proxy_urls":[…],"ports":[…],"ca":"…"}`, then reads one
//! command per line and answers each with one JSON line (`{"ok":true}` or
//! `{"ok":false,"error":"…"}`):
//!
//! | command | effect |
//! |---|---|
//! | `kill I` / `stop I` / `cont I` | SIGKILL / SIGSTOP / SIGCONT instance I |
//! | `restart I` / `restart-empty I` | restart on the same port, keeping / wiping its data |
//! | `latency I MS` / `blackhole I` / `drop I` / `pass I` | proxy modes (with `--proxies`) |
//! | `set I KEY VALUE` / `del I KEY` | write or delete a key on instance I directly |
//! | `keys PATTERN` | `{"ok":true,"keys":[[…],…]}`: matching keys per running instance |
//! | `quit` | stop everything and exit (so does end of input) |
//!
//! Every instance dies with this process.

use std::io::{BufRead, Write};
use std::time::Duration;

use redlock_harness::{Cluster, ClusterOptions, Persistence};

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| json_str(s)).collect();
    format!("[{}]", inner.join(","))
}

fn main() {
    let mut n = 3;
    let mut options = ClusterOptions::new();
    let mut proxies = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--instances" => {
                n = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| fail("--instances needs a number"))
            }
            "--tls" => options = options.tls(true),
            "--aof" => options = options.persistence(Persistence::AofAlways),
            "--proxies" => proxies = true,
            "--acl" => {
                let spec = args
                    .next()
                    .unwrap_or_else(|| fail("--acl needs USER:PASSWORD"));
                let (user, pw) = spec
                    .split_once(':')
                    .unwrap_or_else(|| fail("--acl needs USER:PASSWORD"));
                options = options.acl_user(user, pw);
            }
            other => fail(&format!("unknown option {other}")),
        }
    }
    let cluster = if proxies {
        Cluster::start_with_proxies(n, options)
    } else {
        Cluster::start(n, options)
    }
    .unwrap_or_else(|e| fail(&e.to_string()));
    let ports: Vec<String> = cluster.iter().map(|i| i.port().to_string()).collect();
    let proxy_urls = if proxies {
        cluster.proxy_urls()
    } else {
        Vec::new()
    };
    let ca = cluster
        .ca_cert_path()
        .map(|p| json_str(&p.display().to_string()))
        .unwrap_or_else(|| "null".into());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{{\"urls\":{},\"proxy_urls\":{},\"ports\":[{}],\"ca\":{ca}}}",
        json_list(&cluster.urls()),
        json_list(&proxy_urls),
        ports.join(",")
    );
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"quit") {
            break;
        }
        let reply = match run(&cluster, &words) {
            Ok(Some(extra)) => format!("{{\"ok\":true,{extra}}}"),
            Ok(None) => "{\"ok\":true}".to_owned(),
            Err(e) => format!("{{\"ok\":false,\"error\":{}}}", json_str(&e)),
        };
        let _ = writeln!(out, "{reply}");
        let _ = out.flush();
    }
}

fn run(cluster: &Cluster, words: &[&str]) -> Result<Option<String>, String> {
    let index = |k: usize| -> Result<usize, String> {
        let i: usize = words
            .get(k)
            .and_then(|w| w.parse().ok())
            .ok_or("missing instance index")?;
        if i >= cluster.len() {
            return Err(format!("no instance {i}"));
        }
        Ok(i)
    };
    let arg = |k: usize| {
        words
            .get(k)
            .copied()
            .ok_or_else(|| "missing argument".to_owned())
    };
    let e = |r: redlock_harness::Result<()>| r.map(|_| None).map_err(|e| e.to_string());
    match words.first().copied() {
        Some("kill") => e(cluster[index(1)?].kill()),
        Some("stop") => e(cluster[index(1)?].stop()),
        Some("cont") => e(cluster[index(1)?].cont()),
        Some("restart") => e(cluster[index(1)?].restart()),
        Some("restart-empty") => e(cluster[index(1)?].restart_empty()),
        Some("set") => e(cluster[index(1)?].set(arg(2)?, arg(3)?)),
        Some("del") => cluster[index(1)?]
            .command_str(&["DEL", arg(2)?])
            .map(|_| None)
            .map_err(|e| e.to_string()),
        Some(mode @ ("latency" | "blackhole" | "drop" | "pass")) => {
            let i = index(1)?;
            let proxy = cluster[i].proxy().ok_or("started without --proxies")?;
            match mode {
                "latency" => {
                    let ms: u64 = arg(2)?.parse().map_err(|_| "latency needs MS")?;
                    proxy.latency(Duration::from_millis(ms));
                }
                "blackhole" => proxy.blackhole(),
                "drop" => proxy.drop_connections(),
                _ => proxy.reset(),
            }
            Ok(None)
        }
        Some("keys") => {
            let pattern = words.get(1).copied().unwrap_or("*");
            let mut lists = Vec::new();
            for inst in cluster.iter() {
                if inst.is_running() && !inst.is_stopped() {
                    lists.push(json_list(
                        &inst.keys_matching(pattern).map_err(|e| e.to_string())?,
                    ));
                } else {
                    lists.push("null".into());
                }
            }
            Ok(Some(format!("\"keys\":[{}]", lists.join(","))))
        }
        Some(other) => Err(format!("unknown command {other}")),
        None => Err("empty command".into()),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("redis-cluster: {msg}");
    std::process::exit(2);
}
