//! Process-level tests: start, helpers, kill/restart, persistence, SIGSTOP, cleanup.
//! These start real redis-server processes (run scripts/ensure-redis.sh first).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redlock_harness::{Cluster, ClusterOptions, Persistence, RespConn, Value};

/// True once `pid` no longer exists (or is a zombie nobody reaped yet).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            // "pid (comm) S ..." — the state follows the last ')'.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            state.starts_with('Z') || state.starts_with('X')
        }
    }
}

fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if process_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    process_gone(pid)
}

#[test]
fn three_instances_ping_set_get() {
    let cluster = Cluster::start(3, ClusterOptions::new()).expect("start");
    assert_eq!(cluster.len(), 3);
    let mut ports = Vec::new();
    for inst in &cluster {
        inst.ping().expect("ping");
        assert!(inst.is_running());
        assert!(inst.pid().is_some());
        assert_eq!(inst.url(), format!("redis://127.0.0.1:{}/", inst.port()));
        assert!(inst.proxy().is_none());
        ports.push(inst.port());
    }
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 3, "distinct ports");
    assert_eq!(cluster.urls().len(), 3);

    let i = &cluster[1];
    assert_eq!(i.get("missing").unwrap(), None);
    i.set("lock:a", "v1").unwrap();
    i.set("other", b"\x00\xffbin".as_slice()).unwrap();
    assert_eq!(i.get("lock:a").unwrap(), Some(b"v1".to_vec()));
    assert_eq!(i.get("other").unwrap(), Some(b"\x00\xffbin".to_vec()));
    assert_eq!(i.dbsize().unwrap(), 2);
    assert_eq!(
        i.keys_matching("lock:*").unwrap(),
        vec!["lock:a".to_string()]
    );
    assert_eq!(cluster[0].dbsize().unwrap(), 0, "instances are independent");
    assert_eq!(i.pttl("lock:a").unwrap(), -1);
    assert_eq!(i.pttl("nope").unwrap(), -2);

    // Arbitrary argv, nested values and error replies.
    let v = i
        .command(&[b"SET", b"lock:b", b"x", b"PX", b"60000", b"NX"])
        .unwrap();
    assert!(v.is_ok());
    let ttl = i.pttl("lock:b").unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "ttl {ttl}");
    assert_eq!(
        i.command(&[b"SET", b"lock:b", b"y", b"NX"]).unwrap(),
        Value::Nil
    );
    let err = i.command_str(&["NOSUCHCOMMAND"]).unwrap_err();
    assert!(err.server_message().unwrap().starts_with("ERR"), "{err}");
    let mut conn = i.connect().unwrap();
    let arr = conn.command_str(&["MGET", "lock:a", "nope"]).unwrap();
    assert_eq!(
        arr,
        Value::Array(vec![Value::Bulk(b"v1".to_vec()), Value::Nil])
    );
    // DEBUG is enabled for local connections (needed for DEBUG SLEEP).
    assert!(conn.command_str(&["DEBUG", "SLEEP", "0"]).unwrap().is_ok());
    // The harness's fixed configuration.
    let hz = conn.command_str(&["CONFIG", "GET", "hz"]).unwrap();
    assert_eq!(hz.as_array().unwrap()[1].as_str(), Some("100"));
    let policy = conn
        .command_str(&["CONFIG", "GET", "maxmemory-policy"])
        .unwrap();
    assert_eq!(policy.as_array().unwrap()[1].as_str(), Some("noeviction"));

    cluster.flushall().unwrap();
    assert!(cluster
        .keys_matching("*")
        .unwrap()
        .iter()
        .all(|k| k.is_empty()));
}

#[test]
fn kill_and_restart_without_persistence_loses_data() {
    let cluster = Cluster::start(1, ClusterOptions::new()).unwrap();
    let inst = &cluster[0];
    let port = inst.port();
    let pid = inst.pid().unwrap();
    inst.set("k", "v").unwrap();
    inst.kill().unwrap();
    assert!(!inst.is_running());
    assert_eq!(inst.pid(), None);
    assert!(wait_gone(pid, Duration::from_secs(10)));
    let err = inst.ping().unwrap_err();
    assert!(err.is_connection_error(), "expected refused, got {err}");
    inst.kill().unwrap(); // idempotent

    inst.restart().unwrap();
    assert_eq!(inst.port(), port, "same port after restart");
    assert_ne!(inst.pid(), Some(pid));
    inst.ping().unwrap();
    assert_eq!(inst.get("k").unwrap(), None, "no persistence: data gone");
    assert_eq!(inst.dbsize().unwrap(), 0);
}

#[test]
fn aof_always_survives_kill_and_restart_empty_wipes() {
    let cluster =
        Cluster::start(2, ClusterOptions::new().persistence(Persistence::AofAlways)).unwrap();
    let inst = &cluster[0];
    inst.set("lock:x", "token-1").unwrap();
    inst.kill().unwrap();
    inst.restart().unwrap();
    assert_eq!(inst.get("lock:x").unwrap(), Some(b"token-1".to_vec()));

    // restart() on a running instance crashes it first; data still survives.
    inst.set("lock:y", "token-2").unwrap();
    inst.restart().unwrap();
    assert_eq!(inst.get("lock:y").unwrap(), Some(b"token-2".to_vec()));

    inst.restart_empty().unwrap();
    assert_eq!(inst.dbsize().unwrap(), 0, "restart_empty wipes the AOF");
    assert!(inst.log_path().exists(), "logs are kept");
    assert!(cluster[1].is_running(), "other instance untouched");
}

#[test]
fn graceful_shutdown_with_everysec_keeps_data() {
    let cluster = Cluster::start(
        1,
        ClusterOptions::new().persistence(Persistence::AofEverySec),
    )
    .unwrap();
    let inst = &cluster[0];
    inst.set("k", "v").unwrap();
    inst.shutdown().unwrap();
    assert!(!inst.is_running());
    inst.shutdown().unwrap(); // idempotent
    inst.restart().unwrap();
    assert_eq!(inst.get("k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn sigstop_times_out_then_sigcont_recovers() {
    let cluster = Cluster::start(1, ClusterOptions::new()).unwrap();
    let inst = &cluster[0];
    let mut conn = inst.connect().unwrap();
    conn.ping().unwrap();
    conn.set_timeout(Some(Duration::from_millis(500))).unwrap();

    inst.stop().unwrap();
    assert!(inst.is_stopped());
    assert!(inst.is_running(), "a stopped process still exists");
    let started = Instant::now();
    let err = conn.ping().unwrap_err();
    assert!(err.is_timeout(), "expected a timeout, got {err}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    // A new connection is accepted by the kernel but gets no answer either.
    let mut fresh = RespConn::connect(inst.addr(), Duration::from_millis(500)).unwrap();
    assert!(fresh.ping().unwrap_err().is_timeout());

    inst.cont().unwrap();
    assert!(!inst.is_stopped());
    inst.ping().unwrap();
    let mut conn = inst.connect().unwrap();
    conn.ping().unwrap();
}

#[test]
fn stopped_instance_is_killed_on_drop() {
    let cluster = Cluster::start(2, ClusterOptions::new()).unwrap();
    let pids: Vec<u32> = cluster.iter().map(|i| i.pid().unwrap()).collect();
    let dir = cluster.dir().to_path_buf();
    assert!(dir.exists());
    cluster[0].stop().unwrap();
    drop(cluster);
    for pid in pids {
        assert!(
            wait_gone(pid, Duration::from_secs(10)),
            "pid {pid} survived"
        );
    }
    assert!(!dir.exists(), "temp dir removed");
}

#[test]
fn processes_die_when_a_test_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::panic::catch_unwind(move || {
        let cluster = Cluster::start(1, ClusterOptions::new()).unwrap();
        tx.send(cluster[0].pid().unwrap()).unwrap();
        panic!("simulated test failure");
    });
    assert!(result.is_err());
    let pid = rx.recv().unwrap();
    assert!(
        wait_gone(pid, Duration::from_secs(10)),
        "pid {pid} survived"
    );
}

#[test]
fn cluster_can_move_across_threads() {
    // The spawner thread owns the parent-death signal, so a cluster created on a thread
    // that then exits keeps running.
    let cluster = std::thread::spawn(|| Cluster::start(1, ClusterOptions::new()).unwrap())
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    cluster[0]
        .ping()
        .expect("instance survives its creating thread");
    let c = std::sync::Arc::new(cluster);
    let c2 = c.clone();
    std::thread::spawn(move || c2[0].restart().unwrap())
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    c[0].ping()
        .expect("instance survives the thread that restarted it");
}

#[test]
fn extra_args_and_placeholders() {
    // (Environment variables get the same substitution; redis overwrites its environ
    // block with its process title, so they are checked by a unit test instead.)
    let cluster = Cluster::start(
        2,
        ClusterOptions::new()
            .arg("--notify-keyspace-events")
            .arg("Ex")
            .arg("--dbfilename")
            .arg("dump-{index}.rdb")
            .env("HARNESS_TEST_VAR", "{dir}/x-{index}"),
    )
    .unwrap();
    for inst in &cluster {
        let v = inst
            .command_str(&["CONFIG", "GET", "notify-keyspace-events"])
            .unwrap();
        let flags = v.as_array().unwrap()[1].as_str().unwrap().to_string();
        assert!(flags.contains('E') && flags.contains('x'), "{flags}");
        let v = inst.command_str(&["CONFIG", "GET", "dbfilename"]).unwrap();
        let expected = format!("dump-{}.rdb", inst.index());
        assert_eq!(v.as_array().unwrap()[1].as_str(), Some(expected.as_str()));
        let v = inst.command_str(&["CONFIG", "GET", "dir"]).unwrap();
        let dir = std::path::PathBuf::from(v.as_array().unwrap()[1].as_str().unwrap());
        assert_eq!(
            dir.canonicalize().unwrap(),
            inst.dir().canonicalize().unwrap()
        );
    }
}

#[test]
fn bad_option_fails_with_log_tail() {
    let err = Cluster::start(
        1,
        ClusterOptions::new()
            .arg("--no-such-option")
            .arg("1")
            .startup_timeout(Duration::from_secs(20)),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("did not become ready"), "{msg}");
    assert!(msg.contains("no-such-option"), "log tail missing: {msg}");
}

/// Helper for `redis_dies_with_the_test_process`: started as a child process.
#[test]
#[ignore = "helper run as a subprocess by redis_dies_with_the_test_process"]
fn pdeathsig_helper() {
    if std::env::var_os("REDLOCK_HARNESS_PDEATHSIG_CHILD").is_none() {
        return;
    }
    let cluster = Cluster::start(1, ClusterOptions::new()).unwrap();
    println!("REDIS_PID {}", cluster[0].pid().unwrap());
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn redis_dies_with_the_test_process() {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "pdeathsig_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("REDLOCK_HARNESS_PDEATHSIG_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut redis_pid = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        // libtest may print "test pdeathsig_helper ... " on the same line.
        if let Some((_, p)) = line.split_once("REDIS_PID ") {
            redis_pid = Some(p.trim().parse::<u32>().unwrap());
            break;
        }
    }
    let redis_pid = redis_pid.expect("helper did not report a redis pid");
    assert!(!process_gone(redis_pid));
    child.kill().unwrap(); // SIGKILL: no Drop runs in the helper
    child.wait().unwrap();
    assert!(
        wait_gone(redis_pid, Duration::from_secs(10)),
        "redis pid {redis_pid} outlived the killed test process"
    );
}
