//! The C and C++ programs against real `redis-server` instances, under valgrind (zero leaks,
//! zero errors, or the test fails).
//!
//! These tests are ignored by a plain `cargo test`: `make test-ffi` builds the programs (with
//! `-Wall -Wextra -Werror`, C99 and C++17, through pkg-config) into `target/ffi/bin` and runs
//! `cargo test -p redlock-ffi --test c_suite -- --ignored` with `REDLOCK_FFI_BIN` pointing there.
//! `REDLOCK_FFI_VALGRIND=0` runs the programs without valgrind (faster, for development).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redlock_harness::{Cluster, ClusterOptions};

const IGNORED: &str = "needs the C programs: run `make test-ffi`";

/// Wide: valgrind slows the programs down a lot, and the machine may be busy.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(300);

fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("REDLOCK_FFI_BIN")
        .unwrap_or_else(|| panic!("REDLOCK_FFI_BIN is not set: {IGNORED}"));
    let path = Path::new(&dir).join(name);
    assert!(path.exists(), "{} missing: {IGNORED}", path.display());
    path
}

fn valgrind() -> bool {
    std::env::var("REDLOCK_FFI_VALGRIND").map_or(true, |v| v != "0")
}

/// A per-instance timeout (ms) generous enough for valgrind on a busy 2-core machine: the
/// default (5 % of the 10 s TTL) can expire there, turning a healthy instance into a "no".
const SLOW: &str = "2000";

/// A connect timeout (ms) for the blocking client on the same busy machine: the default (1 s)
/// can expire there, and an instance connected late has no scripts preloaded.
const CONNECT: &str = "5000";

/// Exit status valgrind uses for memory errors and leaks (the programs use 0, 1 and 2).
const VALGRIND_ERROR: i32 = 99;

/// A C program under test, started (under valgrind unless disabled).
struct Program {
    name: String,
    child: Child,
}

impl Program {
    fn start(name: &str, args: &[&str]) -> Program {
        Self::start_with(name, args, valgrind())
    }

    fn start_with(name: &str, args: &[&str], under_valgrind: bool) -> Program {
        let mut cmd = if under_valgrind {
            let mut c = Command::new("valgrind");
            c.args([
                "--quiet",
                "--leak-check=full",
                "--show-leak-kinds=definite,indirect,possible",
                "--errors-for-leak-kinds=definite,indirect,possible",
                &format!("--error-exitcode={VALGRIND_ERROR}"),
            ])
            .arg(bin(name));
            c
        } else {
            Command::new(bin(name))
        };
        let child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e} (is valgrind installed?)"));
        Program {
            name: format!("{name} {}", args.join(" ")),
            child,
        }
    }

    /// Waits for the program and returns its stdout; panics with its output unless it exited 0.
    fn expect_success(mut self) -> String {
        let mut out = self.child.stdout.take().unwrap();
        let mut err = self.child.stderr.take().unwrap();
        let readers = (
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = out.read_to_string(&mut s);
                s
            }),
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = err.read_to_string(&mut s);
                s
            }),
        );
        let deadline = Instant::now() + PROGRAM_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = readers.0.join().unwrap();
        let stderr = readers.1.join().unwrap();
        match status {
            None => panic!(
                "{} did not finish within {PROGRAM_TIMEOUT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
                self.name
            ),
            Some(s) if s.code() == Some(VALGRIND_ERROR) => panic!(
                "valgrind found memory errors or leaks in {}\nstderr:\n{stderr}",
                self.name
            ),
            Some(s) if !s.success() => panic!(
                "{} failed ({s})\nstdout:\n{stdout}\nstderr:\n{stderr}",
                self.name
            ),
            Some(_) => {
                // valgrind --quiet prints nothing unless it found something.
                assert!(
                    !stderr.contains("=="),
                    "valgrind reported on {}:\n{stderr}",
                    self.name
                );
                stdout
            }
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        // A test that panicked leaves no program running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(name: &str, args: &[&str]) -> String {
    Program::start(name, args).expect_success()
}

fn cluster(n: usize) -> Cluster {
    Cluster::start(n, ClusterOptions::new()).expect("redis-server instances start")
}

fn url_args(cluster: &Cluster) -> Vec<String> {
    cluster.urls()
}

fn with_urls<'a>(args: &[&'a str], urls: &'a [String]) -> Vec<&'a str> {
    args.iter()
        .copied()
        .chain(urls.iter().map(String::as_str))
        .collect()
}

/// Every lock key is gone from every running instance: no holder left anything behind.
fn assert_no_keys_left(cluster: &Cluster) {
    for inst in cluster {
        if inst.is_running() {
            let keys = inst.keys_matching("*").expect("KEYS on a running instance");
            let described: Vec<String> = keys
                .iter()
                .map(|k| {
                    let value = inst.command_str(&["GET", k]).ok();
                    let pttl = inst.command_str(&["PTTL", k]).ok();
                    format!("{k} = {value:?} (pttl {pttl:?})")
                })
                .collect();
            assert!(
                keys.is_empty(),
                "instance {} still holds {described:?}",
                inst.index()
            );
        }
    }
}

fn read_counter(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
#[ignore = "needs the C programs: run `make test-ffi`"]
fn bad_arguments_get_their_documented_codes() {
    let cluster = cluster(3);
    let urls = url_args(&cluster);
    let out = run("bad_args", &with_urls(&[], &urls));
    assert!(out.contains(" 0 failed"), "{out}");
    assert_no_keys_left(&cluster);
}

#[test]
#[ignore = "needs the C programs: run `make test-ffi`"]
fn processes_exclude_each_other() {
    let cluster = cluster(3);
    let urls = url_args(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("counter");
    let file = counter.to_str().unwrap();
    // Three processes driving the state machine over hiredis, two blocking clients with two
    // threads each, all incrementing one file under one lock.
    let event_loop = [
        "-q", "-k", "c:mutex", "-n", "8", "-d", "20", "-i", SLOW, "-f", file,
    ];
    let blocking = [
        "-q", "-k", "c:mutex", "-n", "4", "-j", "2", "-d", "20", "-i", SLOW, "-c", CONNECT, "-f",
        file,
    ];
    let programs: Vec<Program> = (0..3)
        .map(|_| Program::start("hiredis_poll", &with_urls(&event_loop, &urls)))
        .chain((0..2).map(|_| Program::start("blocking", &with_urls(&blocking, &urls))))
        .collect();
    for p in programs {
        p.expect_success();
    }
    assert_eq!(read_counter(&counter), 3 * 8 + 2 * 2 * 4, "lost updates");
    assert_no_keys_left(&cluster);
}

/// The control for `processes_exclude_each_other`: the same work without the lock loses
/// updates, so a counter that adds up there is evidence of exclusion, not luck.
#[test]
#[ignore = "needs the C programs: run `make test-ffi`"]
fn without_the_lock_updates_are_lost() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("counter");
    let file = counter.to_str().unwrap();
    let args = ["-q", "-u", "-n", "30", "-f", file, "redis://127.0.0.1:1"];
    let programs: Vec<Program> = (0..4)
        .map(|_| Program::start_with("hiredis_poll", &args, false))
        .collect();
    for p in programs {
        p.expect_success();
    }
    let total = read_counter(&counter);
    assert!(
        total < 4 * 30,
        "no update was lost without the lock ({total})"
    );
}

#[test]
#[ignore = "needs the C programs: run `make test-ffi`"]
fn a_minority_down_still_locks() {
    let cluster = cluster(5);
    cluster[1].kill().unwrap();
    cluster[3].kill().unwrap();
    let urls = url_args(&cluster);
    let out = run(
        "hiredis_poll",
        &with_urls(&["-k", "c:minority", "-n", "2", "-i", SLOW], &urls),
    );
    // The report shows the dead instances for what they are.
    assert!(out.contains("[1] transport error"), "{out}");
    assert!(out.contains("[3] transport error"), "{out}");
    run(
        "blocking",
        &with_urls(
            &[
                "-q",
                "-k",
                "c:minority",
                "-n",
                "2",
                "-j",
                "2",
                "-i",
                SLOW,
                "-c",
                CONNECT,
            ],
            &urls,
        ),
    );
    run("redlock_cpp", &with_urls(&[], &urls));
    assert_no_keys_left(&cluster);
}

#[test]
#[ignore = "needs the C programs: run `make test-ffi`"]
fn a_majority_down_reports_no_quorum() {
    let cluster = cluster(5);
    for i in [0, 2, 4] {
        cluster[i].kill().unwrap();
    }
    let urls = url_args(&cluster);
    let out = run(
        "hiredis_poll",
        &with_urls(
            &[
                "-k",
                "c:majority",
                "-e",
                "no_quorum",
                "-r",
                "1",
                "-d",
                "20",
                "-i",
                SLOW,
            ],
            &urls,
        ),
    );
    assert!(out.contains("no_quorum after 2 attempt(s)"), "{out}");
    run(
        "blocking",
        &with_urls(
            &[
                "-q",
                "-k",
                "c:majority",
                "-e",
                "no_quorum",
                "-d",
                "20",
                "-i",
                SLOW,
            ],
            &urls,
        ),
    );
    // The failed attempts were released on the instances that accepted them.
    assert_no_keys_left(&cluster);
}

#[test]
#[ignore = "needs the C programs: run `make test-ffi`"]
fn cpp_raii_wrapper_over_the_shared_library() {
    let cluster = cluster(3);
    let urls = url_args(&cluster);
    let out = run("redlock_cpp", &with_urls(&[], &urls));
    assert!(out.contains("0 failure(s)"), "{out}");
    assert_no_keys_left(&cluster);
}
