//! Bad input against the public Rust API (issue 6, item 4): empty, huge and binary keys, zero and
//! enormous TTLs, N = 0 and N above the maximum, unreachable and malformed URLs, and Redis
//! answering with errors (`OOM`, `READONLY`, `NOSCRIPT`, `WRONGTYPE`). Each case must end in a
//! clear error (or a correct lock) and leave no lock key behind.
//!
//! Timeouts are generous: these run on loaded 2-core machines.

use std::time::Duration;

use redlock::{Error, InstanceStatus, LockOptions, Redlock};
use redlock_harness::{Cluster, ClusterOptions};

const TTL: Duration = Duration::from_secs(30);

fn cluster(n: usize) -> Cluster {
    Cluster::start(n, ClusterOptions::new()).expect("start redis-server instances")
}

async fn manager(urls: Vec<String>) -> Redlock {
    Redlock::builder(urls)
        .retries(2)
        .retry_delay(Duration::from_millis(20), Duration::from_millis(10))
        .instance_timeout(Duration::from_secs(3))
        .connect()
        .await
        .expect("connect")
}

/// Every key on every running instance except the ones named in `keep`.
fn keys(cluster: &Cluster, keep: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for inst in cluster.iter() {
        for k in inst.keys_matching("*").expect("KEYS") {
            if !keep.contains(&k.as_str()) {
                out.push(format!("{}:{k}", inst.index()));
            }
        }
    }
    out
}

/// Waits (generously) until no lock key is left (background cleanups may still be running).
async fn assert_no_keys_left(cluster: &Cluster, keep: &[&str]) {
    for _ in 0..100 {
        if keys(cluster, keep).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("lock keys left behind: {:?}", keys(cluster, keep));
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn details(e: &Error) -> String {
    e.instances()
        .iter()
        .map(|i| format!("{} {:?}", i.status, i.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn empty_huge_binary_duplicate_and_too_many_keys() {
    let cluster = cluster(3);
    let redlock = manager(cluster.urls()).await;

    let e = redlock.lock("", TTL).await.unwrap_err();
    assert!(matches!(e, Error::InvalidResource(_)), "{e}");
    assert!(e.to_string().contains("invalid resource"), "{e}");

    let max = redlock::redlock_core::MAX_KEY_LEN;
    let e = redlock.lock(vec![b'k'; max + 1], TTL).await.unwrap_err();
    assert!(matches!(e, Error::InvalidResource(_)), "{e}");
    let e = redlock.lock(vec![b'k'; 1 << 20], TTL).await.unwrap_err();
    assert!(matches!(e, Error::InvalidResource(_)), "{e}");
    // The longest allowed key works.
    let lock = redlock
        .lock(vec![b'k'; max], TTL)
        .await
        .expect("max-length key");
    assert!(lock.release().await.unwrap().confirmed);

    // Binary keys (NUL, invalid UTF-8, CR LF) are plain bytes to Redis.
    for key in [
        vec![0u8, 159, 146, 150],
        vec![b'\r', b'\n', 0, b'*'],
        vec![0xff; 64],
    ] {
        let lock = redlock.lock(&key, TTL).await.expect("binary key");
        assert_eq!(lock.release().await.unwrap().deleted, 3);
    }

    let none: [&str; 0] = [];
    let e = redlock.lock_all(&none, TTL).await.unwrap_err();
    assert!(matches!(e, Error::InvalidResource(_)), "{e}");
    let e = redlock.lock_all(&["a", "a"], TTL).await.unwrap_err();
    assert!(matches!(e, Error::InvalidResource(_)), "{e}");
    let many: Vec<String> = (0..=redlock::redlock_core::MAX_RESOURCES)
        .map(|i| format!("k{i}"))
        .collect();
    let e = redlock.lock_all(&many, TTL).await.unwrap_err();
    assert!(matches!(e, Error::InvalidResource(_)), "{e}");
    assert_no_keys_left(&cluster, &[]).await;
}

#[tokio::test]
async fn zero_tiny_and_enormous_ttls() {
    let cluster = cluster(3);
    let redlock = manager(cluster.urls()).await;
    for ttl in [
        Duration::ZERO,
        Duration::from_millis(1),
        Duration::from_millis(2),
    ] {
        let e = redlock.lock("ttl", ttl).await.unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{ttl:?}: {e}");
        assert!(e.to_string().contains("too short"), "{e}");
    }
    // Ten years is a valid TTL for Redis and for the lock.
    let decade = Duration::from_secs(10 * 365 * 86_400);
    let lock = redlock.lock("ttl", decade).await.expect("ten-year ttl");
    let pttl = cluster[0].pttl("ttl").unwrap();
    assert!(pttl > 9 * 365 * 86_400 * 1000, "pttl {pttl}");
    assert_eq!(lock.release().await.unwrap().deleted, 3);
    // Beyond what Redis accepts as an expiry: every instance refuses it with an error, and the
    // acquire fails with that cause instead of pretending.
    for ttl in [Duration::MAX, Duration::from_millis(u64::MAX)] {
        match redlock
            .lock_with(&["ttl"], &LockOptions::new(ttl).retries(0))
            .await
        {
            Err(e @ Error::Config(_)) => assert!(!e.to_string().is_empty()),
            Err(e @ Error::NoQuorum { .. }) => {
                let d = details(&e);
                assert!(d.contains("expire") || d.contains("out of range"), "{d}");
            }
            Err(e) => panic!("{ttl:?}: unexpected error {e}"),
            Ok(lock) => panic!("{ttl:?}: locked with an expiry Redis cannot store: {lock:?}"),
        }
    }
    assert_no_keys_left(&cluster, &[]).await;
}

#[tokio::test]
async fn zero_and_too_many_instances_are_refused() {
    let none: Vec<String> = Vec::new();
    let e = Redlock::builder(none).build().unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    assert!(e.to_string().contains("at least one"), "{e}");

    let max = redlock::redlock_core::MAX_INSTANCES;
    let urls: Vec<String> = (0..=max)
        .map(|i| format!("redis://127.0.0.1:{}/", 7000 + i))
        .collect();
    let e = Redlock::builder(urls.clone()).build().unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    assert!(e.to_string().contains(&format!("{}", max + 1)), "{e}");
    Redlock::builder(urls[..max].to_vec())
        .build()
        .expect("the maximum is allowed");
}

#[tokio::test]
async fn malformed_and_unreachable_urls() {
    for url in [
        "http://127.0.0.1:6379",
        "127.0.0.1:6379",
        "",
        "redis://127.0.0.1:notaport/",
    ] {
        let e = Redlock::builder([url]).build().unwrap_err();
        assert!(matches!(e, Error::InvalidUrl { .. }), "{url:?}: {e}");
    }
    // A password never shows in the error.
    let e = Redlock::builder(["http://user:hunter2@127.0.0.1:1"])
        .build()
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");

    // Nothing listens: connect succeeds (instances may come later), locking fails fast with the
    // cause per instance.
    let dead: Vec<String> = (0..3)
        .map(|_| format!("redis://127.0.0.1:{}/", closed_port()))
        .collect();
    let redlock = manager(dead.clone()).await;
    let started = std::time::Instant::now();
    let e = redlock.lock("k", TTL).await.unwrap_err();
    assert!(matches!(e, Error::NoQuorum { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(e.instances().len(), 3);
    for i in e.instances() {
        assert!(i.status.is_failure(), "{i}");
        assert!(i.detail.is_some(), "{i}");
    }
    assert!(e.to_string().contains("no quorum"), "{e}");

    // One live instance and two dead: no quorum, and the live one keeps no key.
    let cluster = cluster(1);
    let mut mixed = cluster.urls();
    mixed.extend(dead[..2].iter().cloned());
    let redlock = manager(mixed).await;
    let e = redlock.lock("k", TTL).await.unwrap_err();
    assert!(matches!(e, Error::NoQuorum { .. }), "{e}");
    assert_no_keys_left(&cluster, &[]).await;
}

#[tokio::test]
async fn oom_from_instances_out_of_memory() {
    let cluster = cluster(3);
    let redlock = manager(cluster.urls()).await;
    // One instance full: the other two are a quorum.
    cluster[0]
        .command_str(&["CONFIG", "SET", "maxmemory", "1"])
        .unwrap();
    let lock = redlock.lock("oom", TTL).await.expect("quorum of two");
    let report = lock.release().await.unwrap();
    assert_eq!(report.deleted, 2);
    // All full (maxmemory 1 byte, noeviction): every SET gets OOM.
    for inst in cluster.iter() {
        inst.command_str(&["CONFIG", "SET", "maxmemory", "1"])
            .unwrap();
    }
    let e = redlock.lock("oom", TTL).await.unwrap_err();
    assert!(matches!(e, Error::NoQuorum { .. }), "{e}");
    assert!(e.to_string().contains("OOM"), "{e}");
    for i in e.instances() {
        assert!(matches!(i.status, InstanceStatus::ServerError(_)), "{i}");
    }
    for inst in cluster.iter() {
        inst.command_str(&["CONFIG", "SET", "maxmemory", "0"])
            .unwrap();
    }
    assert_no_keys_left(&cluster, &[]).await;
}

#[tokio::test]
async fn readonly_from_replicas() {
    let cluster = cluster(3);
    let redlock = manager(cluster.urls()).await;
    // Instances 0 and 1 become replicas of 2: they refuse writes with READONLY.
    let master = cluster[2].port().to_string();
    for i in [0, 1] {
        cluster[i]
            .command_str(&["REPLICAOF", "127.0.0.1", &master])
            .unwrap();
    }
    let e = redlock.lock("ro", TTL).await.unwrap_err();
    assert!(matches!(e, Error::NoQuorum { .. }), "{e}");
    assert!(e.to_string().contains("READONLY"), "{e}");
    // Instance 2 accepted the SET; the cleanup deleted it (and the replicas follow).
    assert_no_keys_left(&cluster, &[]).await;
    for i in [0, 1] {
        cluster[i].command_str(&["REPLICAOF", "NO", "ONE"]).unwrap();
    }
    let lock = redlock.lock("ro", TTL).await.expect("writable again");
    assert_eq!(lock.release().await.unwrap().deleted, 3);
    assert_no_keys_left(&cluster, &[]).await;
}

#[tokio::test]
async fn noscript_after_script_flush_falls_back_to_the_full_script() {
    let cluster = cluster(3);
    let redlock = manager(cluster.urls()).await;
    let flush = || {
        for inst in cluster.iter() {
            inst.command_str(&["SCRIPT", "FLUSH"]).unwrap();
        }
    };
    flush();
    // Several keys: the acquire itself is a script.
    let lock = redlock
        .lock_all(&["s1", "s2"], TTL)
        .await
        .expect("acquire after SCRIPT FLUSH");
    flush();
    lock.extend(TTL).await.expect("extend after SCRIPT FLUSH");
    flush();
    let report = lock.release().await.expect("release after SCRIPT FLUSH");
    // The acquire may decide on a quorum before the third instance's full-script resend.
    assert!(report.confirmed && report.deleted >= 2, "{report:?}");
    assert_no_keys_left(&cluster, &[]).await;
}

/// Found by the torture runs: the cleanup of a failed attempt used to go by digest (`EVALSHA`),
/// and a `NOSCRIPT` answer left the attempt's key until its TTL on an instance whose script cache
/// was empty (restarted, or `SCRIPT FLUSH`). Cleanups now carry the full script.
#[tokio::test]
async fn noscript_in_the_cleanup_of_a_failed_attempt_leaves_no_key() {
    let cluster = cluster(3);
    let redlock = manager(cluster.urls()).await;
    // Another holder on 0 and 1; instance 2's script cache is empty.
    cluster[0].set("c", "someone-else").unwrap();
    cluster[1].set("c", "someone-else").unwrap();
    cluster[2].command_str(&["SCRIPT", "FLUSH"]).unwrap();
    let e = redlock.try_lock("c", TTL).await.unwrap_err();
    assert!(matches!(e, Error::Contended { .. }), "{e}");
    // Our value was written to 2; the cleanup must delete it.
    for _ in 0..40 {
        if cluster[2].get("c").unwrap().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the failed attempt's key is still on instance 2 (pttl {} ms)",
        cluster[2].pttl("c").unwrap()
    );
}

#[tokio::test]
async fn wrongtype_on_a_key_that_holds_a_list() {
    let cluster = cluster(3);
    let redlock = manager(cluster.urls()).await;
    // A list under the resource name on every instance: the key exists, so it is taken.
    for inst in cluster.iter() {
        inst.command_str(&["RPUSH", "list", "x"]).unwrap();
    }
    let e = redlock.try_lock("list", TTL).await.unwrap_err();
    assert!(matches!(e, Error::Contended { .. }), "{e}");
    let e = redlock.lock_all(&["list", "free"], TTL).await.unwrap_err();
    assert!(matches!(e, Error::Contended { .. }), "{e}");
    for inst in cluster.iter() {
        assert_eq!(
            inst.command_str(&["LLEN", "list"]).unwrap().as_int(),
            Some(1)
        );
    }
    assert_no_keys_left(&cluster, &["list"]).await;

    // A list on one instance only: the lock holds on the other two; extend and release get
    // WRONGTYPE from the list's instance, say so per instance, and never touch the list.
    for i in [1, 2] {
        cluster[i].command_str(&["DEL", "list"]).unwrap();
    }
    let lock = redlock.lock("list", TTL).await.expect("quorum of two");
    lock.extend(TTL).await.expect("extend on two");
    let report = lock.release().await.unwrap();
    assert_eq!(report.deleted, 2);
    let first = &report.instances[0];
    assert!(
        first.status.is_failure() || first.status == InstanceStatus::Held,
        "{first}"
    );
    if let Some(d) = &first.detail {
        assert!(d.contains("WRONGTYPE"), "{d}");
    }
    assert_eq!(
        cluster[0].command_str(&["LLEN", "list"]).unwrap().as_int(),
        Some(1)
    );
    assert_no_keys_left(&cluster, &["list"]).await;
}
