//! Seeded simulation of many clients locking through the core against model Redis instances, with
//! every history verified by the shared invariant checker.
//!
//! `SIM_RUNS=<n>` changes how many seeded runs each test makes; `SIM_SEED=<seed>` replays one.

mod sim;

use redlock_history::Invariant;
use sim::{Faults, Params, World};

fn runs(default: u64) -> u64 {
    std::env::var("SIM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seeds(default: u64) -> Vec<u64> {
    match std::env::var("SIM_SEED").ok().and_then(|v| v.parse().ok()) {
        Some(seed) => vec![seed],
        None => (0..runs(default)).collect(),
    }
}

/// Runs one seed and returns its checker report and stats.
fn run(params: Params) -> (redlock_history::Report, sim::Stats, World) {
    let mut world = World::new(params);
    if let Err(e) = world.run() {
        panic!("{e}; replay with SIM_SEED={}", params.seed);
    }
    let report = world.history.check();
    (report, world.stats, world)
}

#[test]
fn no_violation_when_the_assumptions_hold() {
    let seeds = seeds(2_000);
    let mut totals = sim::Stats::default();
    for &seed in &seeds {
        let params = Params::from_seed(seed, Faults::within_assumptions());
        let (report, stats, world) = run(params);
        // A client paused between its validity check and the end of its work can overlap the
        // next holder's work: that is what fencing cures, not the lock (assumption A8), so only
        // the lock's own invariants are asserted here.
        let lock_violations = report
            .violations
            .iter()
            .filter(|v| v.invariant != Invariant::WorkOverlap)
            .count();
        totals.work_overlaps += (report.violations.len() - lock_violations) as u64;
        if lock_violations > 0 {
            let path = std::env::temp_dir().join(format!("redlock-sim-{seed}.jsonl"));
            let _ = world
                .history
                .write_jsonl(std::fs::File::create(&path).unwrap());
            panic!(
                "seed {seed} ({params:?}) broke an invariant; history in {}; replay with SIM_SEED={seed}\n{report}",
                path.display()
            );
        }
        totals.acquired += stats.acquired;
        totals.failed += stats.failed;
        totals.extended += stats.extended;
        totals.faults += stats.faults;
        totals.messages += stats.messages;
    }
    println!(
        "simulation: {} seeded runs, 0 lock invariant violations; {} acquisitions, {} failed acquires, {} extensions, {} faults, {} messages; {} work overlaps from client pauses past the lease (fencing territory)",
        seeds.len(),
        totals.acquired,
        totals.failed,
        totals.extended,
        totals.faults,
        totals.messages,
        totals.work_overlaps
    );
    assert!(
        totals.acquired > seeds.len() as u64,
        "the runs made progress"
    );
}

#[test]
fn without_faults_every_client_gets_the_lock() {
    for seed in seeds(200) {
        let params = Params::from_seed(seed, Faults::none());
        let (report, stats, _) = run(params);
        assert!(report.is_ok(), "seed {seed}: {report}");
        assert!(stats.acquired > 0, "seed {seed}: no acquisition at all");
    }
}

/// Runs seeds of a broken-assumption generator until the checker finds a mutual-exclusion
/// violation, and returns that seed.
fn find_violation(name: &str, faults: Faults) -> u64 {
    let limit = runs(2_000).max(500);
    for seed in 0..limit {
        let mut params = Params::from_seed(seed, faults);
        // Small clusters make the broken assumption bite sooner.
        params.instances = 3;
        params.clients = 4;
        params.ops_per_client = 12;
        let (report, _, _) = run(params);
        if report.has(Invariant::S1) {
            println!("{name}: the checker found a mutual-exclusion violation at seed {seed} (replay with SIM_SEED={seed})");
            let v = report.violations_of(Invariant::S1).next().unwrap();
            println!("  {}", v.message);
            return seed;
        }
    }
    panic!("{name}: no violation found in {limit} runs: the checker or the fault model is broken");
}

#[test]
fn negative_control_immediate_restart_without_persistence_is_caught() {
    let faults = Faults {
        immediate_restarts: true,
        ..Faults::none()
    };
    find_violation("restart without persistence", faults);
}

#[test]
fn negative_control_server_clock_step_is_caught() {
    let faults = Faults {
        clock_steps: true,
        ..Faults::none()
    };
    find_violation("server clock step", faults);
}
