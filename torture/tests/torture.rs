//! The short torture profile against real processes (`make test-torture`, part of `make test`):
//! the positive phase must show no violation and no lost update under every fault, and both
//! negative controls must be flagged by the checker.
//!
//! Ignored by plain `cargo test` (it runs for about 80 s and starts ~15 processes); run with
//! `cargo test -p redlock-torture --test torture -- --ignored --nocapture`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn phase<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["phases"]
        .as_array()
        .and_then(|p| p.iter().find(|x| x["phase"] == name))
        .unwrap_or_else(|| panic!("no {name} phase in {report}"))
}

fn count(v: &Value, invariant: &str) -> u64 {
    v["violations_by_invariant"][invariant]
        .as_u64()
        .unwrap_or(0)
}

#[test]
#[ignore = "runs for about 80 s; `make test-torture` runs it"]
fn short_profile_is_clean_and_the_negative_controls_are_flagged() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("torture-short");
    let status = Command::new(env!("CARGO_BIN_EXE_redlock-torture"))
        .args(["--profile", "short", "--out"])
        .arg(&out)
        .status()
        .expect("run redlock-torture");
    let text = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    let report: Value = serde_json::from_str(&text).expect("report JSON");

    let positive = phase(&report, "positive");
    assert!(
        positive["violations_by_invariant"]
            .as_object()
            .is_some_and(|m| m.is_empty()),
        "violations under faults: {}",
        positive["first_violations"]
    );
    assert_eq!(positive["lost_updates"], 0, "lost updates under faults");
    assert_eq!(positive["stale_writes"], 0);
    assert!(
        positive["acquired"].as_u64().unwrap_or(0) > 20,
        "too little progress"
    );
    assert!(
        positive["passed"].as_bool().unwrap_or(false),
        "{}",
        positive["problems"]
    );

    let restart = phase(&report, "restart");
    assert!(
        count(restart, "S1") > 0,
        "unsafe restarts not flagged: {}",
        restart["violations_by_invariant"]
    );

    let pause = phase(&report, "pause");
    assert!(pause["pauses"].as_u64().unwrap_or(0) > 0, "no pause");
    assert!(
        count(pause, "WorkOverlap") + count(pause, "S1") > 0,
        "paused holder not flagged: {}",
        pause["violations_by_invariant"]
    );
    assert!(
        status.success(),
        "redlock-torture failed; report in {}",
        out.display()
    );
}
