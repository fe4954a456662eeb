//! Runs `redlock-check-history` on JSON-lines files and checks its exit codes and output.

use std::path::PathBuf;
use std::process::{Command, Output};

use redlock_history::{drift_ms, write_jsonl, Event, ReplyKind, Report};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("redlock-history-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write_events(&self, file: &str, events: &[Event]) -> PathBuf {
        let mut buf = Vec::new();
        write_jsonl(&mut buf, events).unwrap();
        self.write(file, &String::from_utf8(buf).unwrap())
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redlock-check-history"))
        .args(args)
        .output()
        .unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A correct single-attempt acquisition of `resource` on 3 instances at time `t`, released at `release`.
fn acquisition(acq: u64, resource: &str, t: u64, release: Option<u64>) -> Vec<Event> {
    let ttl = 1000;
    let drift = drift_ms(ttl, 0.01, 2);
    let value = format!("{acq:032x}");
    let mut ev = vec![
        Event::AcqInvoke {
            acq,
            client: acq,
            resources: vec![resource.to_owned()],
            ttl_ms: ttl,
            rt: t,
        },
        Event::AttemptStart {
            acq,
            attempt: 0,
            value: value.clone(),
            t1_client: t,
            rt: t,
        },
    ];
    for inst in 0..3 {
        ev.push(Event::InstReply {
            acq,
            attempt: 0,
            inst,
            kind: ReplyKind::Ok,
            rt: t + 1,
        });
    }
    ev.push(Event::AcqOk {
        acq,
        attempt: 0,
        value,
        valid_until_client: t + ttl - drift,
        t1_client: t,
        t2_client: t + 1,
        validity_ms: (ttl - 1 - drift) as i64,
        votes: vec![0, 1, 2],
        rt: t + 1,
        valid_until_rt: None,
    });
    if let Some(r) = release {
        ev.push(Event::RelInvoke { acq, rt: r });
    }
    ev
}

fn config() -> Event {
    Event::config(3, 0.01, 2, 0)
}

#[test]
fn clean_history_exits_zero() {
    let dir = TempDir::new("clean");
    let mut ev = vec![config()];
    ev.extend(acquisition(1, "r", 0, Some(100)));
    ev.extend(acquisition(2, "r", 200, Some(300)));
    let path = dir.write_events("h.jsonl", &ev);
    let out = run(&[path.as_os_str()]);
    assert_eq!(
        code(&out),
        0,
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("OK: no violation"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn overlapping_leases_exit_one_and_print_the_events() {
    let dir = TempDir::new("overlap");
    let mut ev = vec![config()];
    ev.extend(acquisition(1, "r", 0, None));
    ev.extend(acquisition(2, "r", 200, None));
    let path = dir.write_events("h.jsonl", &ev);
    let out = run(&[path.as_os_str()]);
    let stdout = text(&out.stdout);
    assert_eq!(code(&out), 1, "{stdout}");
    assert!(stdout.contains("VIOLATION [S1]"), "{stdout}");
    assert!(stdout.contains(r#""ev":"AcqOk""#), "{stdout}");
    assert!(stdout.contains("h.jsonl:"), "{stdout}");
}

#[test]
fn json_flag_prints_a_parseable_report() {
    let dir = TempDir::new("json");
    let mut ev = vec![config()];
    ev.extend(acquisition(1, "r", 0, None));
    ev.extend(acquisition(2, "r", 200, None));
    let path = dir.write_events("h.jsonl", &ev);
    let out = run(&[std::ffi::OsStr::new("--json"), path.as_os_str()]);
    assert_eq!(code(&out), 1);
    let report: Report = serde_json::from_slice(&out.stdout).expect("the report is JSON");
    assert_eq!(report.summary.acquisitions, 2);
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].invariant.id(), "S1");
}

#[test]
fn files_of_several_clients_are_merged_by_rt() {
    let dir = TempDir::new("merge");
    // Client 1 holds r twice, client 2 once in between; each file repeats the Config.
    let mut a = vec![config()];
    a.extend(acquisition(1, "r", 0, Some(100)));
    a.extend(acquisition(3, "r", 400, Some(500)));
    let mut b = vec![config()];
    b.extend(acquisition(2, "r", 200, Some(300)));
    let pa = dir.write_events("client1.jsonl", &a);
    let pb = dir.write_events("client2.jsonl", &b);
    let out = run(&[pa.as_os_str(), pb.as_os_str()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("from 2 file(s)"));

    // Shift client 2 into client 1's first tenure: the merge must find the overlap.
    let mut b = vec![config()];
    b.extend(acquisition(2, "r", 50, Some(300)));
    let pb = dir.write_events("client2.jsonl", &b);
    let out = run(&[pa.as_os_str(), pb.as_os_str()]);
    assert_eq!(code(&out), 1, "{}", text(&out.stdout));
}

#[test]
fn disagreeing_config_lines_exit_two() {
    let dir = TempDir::new("config");
    let pa = dir.write_events("a.jsonl", &[config()]);
    let pb = dir.write_events("b.jsonl", &[Event::config(5, 0.01, 2, 0)]);
    let out = run(&[pa.as_os_str(), pb.as_os_str()]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("Config disagrees"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_json_exits_two_with_the_line_number() {
    let dir = TempDir::new("badjson");
    let good = config().to_json();
    let path = dir.write(
        "h.jsonl",
        &format!("{good}\n{{\"ev\":\"RelInvoke\",\"acq\":1,\"rt\":1}}\n{{not json\n"),
    );
    let out = run(&[path.as_os_str()]);
    assert_eq!(code(&out), 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
}

#[test]
fn missing_file_and_missing_config_exit_two() {
    let dir = TempDir::new("missing");
    let out = run(&[dir.0.join("nope.jsonl").as_os_str()]);
    assert_eq!(code(&out), 2);
    let path = dir.write_events("h.jsonl", &acquisition(1, "r", 0, None));
    let out = run(&[path.as_os_str()]);
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("no Config"));
    let out = run(&[]);
    assert_eq!(code(&out), 2);
}

#[test]
fn strict_flag_turns_warnings_into_failures() {
    let dir = TempDir::new("strict");
    let mut ev = vec![config()];
    ev.extend(acquisition(1, "r", 0, None));
    for e in &mut ev {
        if let Event::AttemptStart { value, .. } | Event::AcqOk { value, .. } = e {
            *value = "short".into();
        }
    }
    let path = dir.write_events("h.jsonl", &ev);
    let out = run(&[path.as_os_str()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("warning [S6]"));
    let out = run(&[std::ffi::OsStr::new("--strict"), path.as_os_str()]);
    assert_eq!(code(&out), 1);
}
