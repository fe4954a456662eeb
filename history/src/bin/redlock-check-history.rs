//! `redlock-check-history [--json] [--strict] <file.jsonl>...`
//!
//! Reads JSON-lines histories (one file per client process is fine: they are merged and stably sorted
//! by `rt`; a `Config` line may appear in every file and must agree), checks them and prints a summary
//! and every violation with its events.
//!
//! Exit codes: 0 no violation, 1 at least one violation (or warning, with `--strict`), 2 unreadable input
//! (missing file, bad JSON with its line number, no `Config`, disagreeing `Config`s) or bad usage.

use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;

use redlock_history::{check, read_jsonl, Event, Report, Violation};

const USAGE: &str = "usage: redlock-check-history [--json] [--strict] <file.jsonl>...
  --json    print the report as JSON
  --strict  count warnings (weak values, unclosed work, work past the tenure) as violations
exit: 0 ok, 1 violations, 2 unreadable input";

/// Where a merged event came from.
struct Source {
    file: usize,
    line: usize,
}

fn main() -> ExitCode {
    let mut json = false;
    let mut strict = false;
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => json = true,
            "--strict" => strict = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            s if s.starts_with("--") => {
                eprintln!("unknown option {s}\n{USAGE}");
                return ExitCode::from(2);
            }
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }

    let mut config: Option<(Event, usize, usize)> = None;
    let mut merged: Vec<(Event, Source)> = Vec::new();
    for (f, path) in files.iter().enumerate() {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) => {
                eprintln!("{path}: cannot open: {e}");
                return ExitCode::from(2);
            }
        };
        let events = match read_jsonl(BufReader::new(file)) {
            Ok(events) => events,
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::from(2);
            }
        };
        for (line, event) in events {
            if matches!(event, Event::Config { .. }) {
                match &config {
                    None => config = Some((event, f, line)),
                    Some((first, ff, fl)) if *first != event => {
                        eprintln!(
                            "{path}:{line}: Config disagrees with {}:{fl}: {} vs {}",
                            files[*ff],
                            event.to_json(),
                            first.to_json()
                        );
                        return ExitCode::from(2);
                    }
                    Some(_) => {}
                }
                continue;
            }
            merged.push((event, Source { file: f, line }));
        }
    }
    let Some((config, cf, cl)) = config else {
        eprintln!("no Config line in any input file");
        return ExitCode::from(2);
    };
    // Stable: ties keep file order, then line order.
    merged.sort_by_key(|(e, _)| e.rt().unwrap_or(0));
    let mut events = Vec::with_capacity(merged.len() + 1);
    let mut sources = Vec::with_capacity(merged.len() + 1);
    events.push(config);
    sources.push(Source { file: cf, line: cl });
    for (e, s) in merged {
        events.push(e);
        sources.push(s);
    }

    let mut report = check(&events);
    if strict {
        let warnings = std::mem::take(&mut report.warnings);
        for w in &warnings {
            *report
                .summary
                .violations_by_invariant
                .entry(w.invariant.id().to_owned())
                .or_insert(0) += 1;
        }
        report.summary.warnings_by_invariant.clear();
        report.violations.extend(warnings);
    }

    if json {
        println!("{}", report.to_json_pretty());
    } else {
        print_text(&report, &files, &sources);
    }
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_text(report: &Report, files: &[String], sources: &[Source]) {
    let s = &report.summary;
    println!(
        "history: {} events from {} file(s); N={} q={}",
        s.events,
        files.len(),
        s.instances,
        s.quorum
    );
    println!(
        "acquisitions: {} ({} ok, {} failed), attempts: {}, replies: {}, cleanups: {}",
        s.acquisitions, s.acquired, s.acquire_failed, s.attempts, s.inst_replies, s.cleanups
    );
    println!(
        "extensions: {} ({} ok, {} failed), releases: {} ({} done), work windows: {}",
        s.extensions,
        s.extensions_ok,
        s.extensions_failed,
        s.releases,
        s.releases_done,
        s.work_windows
    );
    if !s.faults_by_kind.is_empty() {
        let faults: Vec<String> = s
            .faults_by_kind
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        println!("faults: {}", faults.join(", "));
    }
    let print = |label: &str, v: &Violation| {
        println!("{label} [{}] {}", v.invariant, v.message);
        for e in &v.events {
            let at = sources
                .get(e.index)
                .map(|src| format!("{}:{}", files[src.file], src.line))
                .unwrap_or_default();
            println!("    #{} {at} {}", e.index, e.event.to_json());
        }
    };
    for v in &report.violations {
        print("VIOLATION", v);
    }
    for w in &report.warnings {
        print("warning", w);
    }
    if report.is_ok() {
        println!("OK: no violation ({} warning(s))", report.warnings.len());
    } else {
        let counts: Vec<String> = report
            .summary
            .violations_by_invariant
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        println!(
            "FAILED: {} violation(s): {}",
            report.violations.len(),
            counts.join(", ")
        );
    }
}
