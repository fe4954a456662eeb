//! The runtime against real `redis-server` processes started by the harness.
//!
//! Deadlines here are generous on purpose: these tests run on loaded 2-core machines. They assert
//! behaviour (which error, which keys), never tight timings.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redlock::{Error, InstanceStatus, LockOptions, LostReason, Redlock};
use redlock_harness::{Cluster, ClusterOptions};

fn cluster(n: usize) -> Cluster {
    Cluster::start(n, ClusterOptions::new()).expect("start redis-server instances")
}

async fn redlock(urls: Vec<String>) -> Redlock {
    Redlock::builder(urls)
        .retry_delay(Duration::from_millis(20), Duration::from_millis(10))
        .connect()
        .await
        .expect("connect")
}

/// Every key on every running instance.
fn all_keys(cluster: &Cluster) -> Vec<String> {
    let mut keys = Vec::new();
    for inst in cluster.iter().filter(|i| i.is_running() && !i.is_stopped()) {
        keys.extend(inst.keys_matching("*").expect("KEYS"));
    }
    keys
}

/// Waits (generously) until no instance holds a key, for background cleanups.
async fn assert_no_keys_left(cluster: &Cluster) {
    for _ in 0..200 {
        if all_keys(cluster).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("lock keys left behind: {:?}", all_keys(cluster));
}

const TTL: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks_lose_no_update_of_a_shared_counter() {
    let cluster = cluster(5);
    let redlock = Arc::new(
        Redlock::builder(cluster.urls())
            .retries(1_000)
            .retry_delay(Duration::from_millis(5), Duration::from_millis(4))
            .connect()
            .await
            .unwrap(),
    );
    let counter = Arc::new(AtomicU64::new(0));
    let (tasks, rounds) = (8, 15);
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (redlock, counter) = (Arc::clone(&redlock), Arc::clone(&counter));
        handles.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let lock = redlock.lock("counter", TTL).await.expect("lock");
                // A read-modify-write that loses updates unless the lock excludes the others.
                let v = counter.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                assert!(lock.is_valid());
                counter.store(v + 1, Ordering::SeqCst);
                lock.release().await.expect("release");
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(counter.load(Ordering::SeqCst), tasks * rounds);
    assert_no_keys_left(&cluster).await;
}

#[tokio::test]
async fn a_minority_down_still_locks() {
    let cluster = cluster(5);
    cluster[0].kill().unwrap();
    cluster[3].kill().unwrap();
    let redlock = redlock(cluster.urls()).await;
    let lock = redlock
        .lock("minority", TTL)
        .await
        .expect("lock with 3 of 5");
    assert!(lock.remaining_validity() > Duration::from_secs(20));
    let report = lock.release().await.unwrap();
    assert!(report.confirmed);
    assert_eq!(report.deleted, 3);
    assert_eq!(report.instances[0].status, InstanceStatus::TransportError);
    assert_no_keys_left(&cluster).await;
}

#[tokio::test]
async fn a_majority_down_fails_fast_with_no_quorum_not_contention() {
    let cluster = cluster(5);
    for i in [0, 2, 4] {
        cluster[i].kill().unwrap();
    }
    let redlock = redlock(cluster.urls()).await;
    let started = std::time::Instant::now();
    let err = redlock.lock("majority", TTL).await.unwrap_err();
    let Error::NoQuorum {
        attempts,
        instances,
    } = &err
    else {
        panic!("expected NoQuorum, got {err}")
    };
    assert_eq!(*attempts, 4, "1 attempt + 3 retries");
    assert_eq!(instances[0].status, InstanceStatus::TransportError);
    assert!(
        instances[0].detail.is_some(),
        "the cause is reported: {err}"
    );
    assert!(err.to_string().contains("no quorum"), "{err}");
    // Connections are refused at once: no waiting for TTL-sized timeouts.
    assert!(started.elapsed() < TTL / 2, "took {:?}", started.elapsed());
    assert_no_keys_left(&cluster).await;
}

#[tokio::test]
async fn a_held_lock_is_contended_and_says_so() {
    let cluster = cluster(3);
    let redlock = redlock(cluster.urls()).await;
    let held = redlock.lock("busy", TTL).await.unwrap();
    let err = redlock.try_lock("busy", TTL).await.unwrap_err();
    assert!(matches!(err, Error::Contended { attempts: 1, .. }), "{err}");
    assert!(err.is_retryable());
    held.release().await.unwrap();
    let again = redlock.try_lock("busy", TTL).await.expect("free again");
    again.release().await.unwrap();
    assert_no_keys_left(&cluster).await;
}

#[tokio::test]
async fn a_paused_instance_costs_at_most_the_instance_timeout() {
    let cluster = cluster(3);
    let redlock = Redlock::builder(cluster.urls())
        .instance_timeout(Duration::from_millis(300))
        .retries(0)
        .connect()
        .await
        .unwrap();
    cluster[2].stop().unwrap();
    // Two healthy instances are a quorum of three: no waiting for the paused one.
    let lock = redlock.lock("paused", TTL).await.expect("lock");
    lock.release().await.unwrap();
    // With one healthy instance held by someone else, the paused one decides: after its timeout.
    cluster[1].set("paused", "someone-else").unwrap();
    let started = std::time::Instant::now();
    let err = redlock.lock("paused", TTL).await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, Error::Contended { .. }), "{err}");
    assert_eq!(err.instances()[2].status, InstanceStatus::TimedOut);
    assert!(waited >= Duration::from_millis(290), "waited {waited:?}");
    assert!(
        waited < Duration::from_secs(10),
        "waited {waited:?}: far beyond the timeout"
    );
    cluster[2].cont().unwrap();
    cluster[1].command_str(&["DEL", "paused"]).unwrap();
    assert_no_keys_left(&cluster).await;
}

#[tokio::test]
async fn a_black_holed_instance_costs_at_most_the_instance_timeout() {
    let cluster = Cluster::start_with_proxies(3, ClusterOptions::new()).unwrap();
    let redlock = Redlock::builder(cluster.proxy_urls())
        .instance_timeout(Duration::from_millis(300))
        .retries(0)
        .connect()
        .await
        .unwrap();
    cluster.proxy(0).blackhole();
    let lock = redlock
        .lock("hole", TTL)
        .await
        .expect("lock on the other two");
    let report = lock.release().await.unwrap();
    assert!(report.confirmed);
    assert_eq!(report.instances[0].status, InstanceStatus::TimedOut);
    cluster.proxy(0).drop_connections();
    cluster.proxy(0).reset();
    assert_no_keys_left(&cluster).await;
}

#[tokio::test]
async fn release_never_deletes_another_holders_key() {
    let cluster = cluster(3);
    let redlock = redlock(cluster.urls()).await;
    let a = redlock
        .lock("shared", Duration::from_millis(300))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await; // a's keys expire
    let b = redlock
        .lock("shared", TTL)
        .await
        .expect("free after expiry");
    let b_value = b.value();
    let report = a.release().await.unwrap();
    assert_eq!(report.deleted, 0, "a's release deleted nothing");
    for inst in cluster.iter() {
        assert_eq!(
            inst.get("shared").unwrap(),
            Some(b_value.clone().into_bytes())
        );
    }
    b.release().await.unwrap();
    assert_no_keys_left(&cluster).await;
}

#[tokio::test]
async fn extend_never_resurrects_an_expired_lock() {
    let cluster = cluster(3);
    let redlock = redlock(cluster.urls()).await;
    let lock = redlock
        .lock("ghost", Duration::from_millis(200))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!lock.is_valid());
    let err = lock.extend(TTL).await.unwrap_err();
    assert!(matches!(err, Error::Expired), "{err}");
    assert!(all_keys(&cluster).is_empty(), "extend created a key");
    // The keys expired and another holder came: a late extend must not take them over either.
    let other = redlock.lock("ghost", TTL).await.unwrap();
    assert!(lock.extend(TTL).await.is_err());
    other.release().await.unwrap();
    drop(lock);
    assert_no_keys_left(&cluster).await;
}

#[tokio::test]
async fn extend_moves_the_deadline_from_its_own_start() {
    let cluster = cluster(3);
    let redlock = redlock(cluster.urls()).await;
    let lock = redlock
        .lock("stretch", Duration::from_secs(2))
        .await
        .unwrap();
    let left = lock.extend(Duration::from_secs(20)).await.unwrap();
    assert!(left > Duration::from_secs(15), "left {left:?}");
    assert!(lock.remaining_validity() > Duration::from_secs(15));
    for inst in cluster.iter() {
        assert!(inst.pttl("stretch").unwrap() > 15_000);
    }
    lock.release().await.unwrap();
    assert_no_keys_left(&cluster).await;
}

#[tokio::test]
async fn auto_extension_keeps_a_lock_across_ttls_and_signals_loss_in_time() {
    let cluster = cluster(5);
    let redlock = redlock(cluster.urls()).await;
    let ttl = Duration::from_millis(1_000);
    let lock = redlock
        .lock_with(&["kept"], &LockOptions::new(ttl).auto_extend(true))
        .await
        .unwrap();
    let lost = lock.lost();
    tokio::pin!(lost);
    // Three TTLs later it is still held.
    tokio::select! {
        reason = &mut lost => panic!("lost while healthy: {reason}"),
        _ = tokio::time::sleep(ttl * 3) => {}
    }
    assert!(lock.is_valid());
    assert!(cluster[0].pttl("kept").unwrap() > 0);
    // A majority goes away: the signal fires no later than the validity end.
    let deadline = lock.valid_until();
    for i in [0, 1, 2] {
        cluster[i].kill().unwrap();
    }
    let reason = tokio::time::timeout(ttl * 10, &mut lost)
        .await
        .expect("loss signalled");
    let fired = tokio::time::Instant::now();
    assert!(
        matches!(reason, LostReason::ExtensionFailed | LostReason::Expired),
        "{reason}"
    );
    assert!(
        fired <= deadline + Duration::from_millis(50),
        "fired {:?} after the deadline",
        fired - deadline
    );
    assert!(!lock.is_valid());
    drop(lock);
    assert_no_keys_left(&cluster).await;
}

#[tokio::test]
async fn the_lost_signal_fires_when_the_validity_runs_out() {
    let cluster = cluster(3);
    let redlock = redlock(cluster.urls()).await;
    let lock = redlock
        .lock("short", Duration::from_millis(300))
        .await
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(10), lock.lost())
        .await
        .unwrap();
    assert_eq!(reason, LostReason::Expired);
}

#[tokio::test]
async fn a_restarted_instance_with_an_empty_script_cache_still_works() {
    let cluster = cluster(3);
    let redlock = redlock(cluster.urls()).await;
    let lock = redlock.lock_all(&["a", "b"], TTL).await.unwrap();
    lock.release().await.unwrap();
    for inst in cluster.iter() {
        inst.restart_empty().unwrap();
    }
    // The script cache is empty now. Every new connection queues the script loads ahead of its
    // first command, so no EVALSHA meets NOSCRIPT (the core would fall back to EVAL, one more round trip, and an
    // acquire decided meanwhile on the other instances would leave this one out).
    let mut locked = None;
    for _ in 0..50 {
        match redlock.lock_all(&["a", "b"], TTL).await {
            Ok(l) => {
                locked = Some(l);
                break;
            }
            // Connections to the old processes are broken; the first commands reconnect.
            Err(Error::NoQuorum { .. }) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("{e}"),
        }
    }
    let lock = locked.expect("locked after restart");
    lock.extend(TTL).await.unwrap();
    let report = lock.release().await.unwrap();
    assert_eq!(report.deleted, 3);
    for inst in cluster.iter() {
        let stats = inst.command_str(&["INFO", "errorstats"]).unwrap();
        let stats = stats.as_str().unwrap_or_default();
        assert!(stats.contains("# Errorstats"), "no error stats: {stats}");
        assert!(
            !stats.contains("errorstat_NOSCRIPT"),
            "an EVALSHA met an empty script cache: {stats}"
        );
    }
    assert_no_keys_left(&cluster).await;
}

#[tokio::test]
async fn multi_resource_locks_are_all_or_nothing() {
    let cluster = cluster(3);
    let redlock = redlock(cluster.urls()).await;
    let first = redlock.lock("x", TTL).await.unwrap();
    let err = redlock.try_lock_all_for_test(&["w", "x", "y"]).await;
    assert!(matches!(err, Err(Error::Contended { .. })));
    assert!(
        all_keys(&cluster).iter().all(|k| k == "x"),
        "no partial keys: {:?}",
        all_keys(&cluster)
    );
    first.release().await.unwrap();
    let all = redlock.lock_all(&["w", "x", "y"], TTL).await.unwrap();
    assert_eq!(all_keys(&cluster).len(), 9);
    all.release().await.unwrap();
    assert_no_keys_left(&cluster).await;
}

trait TryAll {
    async fn try_lock_all_for_test(&self, keys: &[&str]) -> Result<redlock::Lock, Error>;
}

impl TryAll for Redlock {
    async fn try_lock_all_for_test(&self, keys: &[&str]) -> Result<redlock::Lock, Error> {
        self.lock_with(keys, &LockOptions::new(TTL).retries(0))
            .await
    }
}

#[tokio::test]
async fn a_cancelled_acquire_leaves_no_keys() {
    let cluster = cluster(5);
    let redlock = Redlock::builder(cluster.urls())
        .instance_timeout(Duration::from_millis(2_000))
        .connect()
        .await
        .unwrap();
    // Two instances paused, two held by someone else: the acquire can only wait.
    cluster[0].stop().unwrap();
    cluster[1].stop().unwrap();
    cluster[2].set("cancel", "other").unwrap();
    cluster[3].set("cancel", "other").unwrap();
    let acquire = redlock.lock("cancel", TTL);
    assert!(tokio::time::timeout(Duration::from_millis(300), acquire)
        .await
        .is_err());
    // The paused instances now run the SETs they had queued; the cleanup must remove them.
    cluster[0].cont().unwrap();
    cluster[1].cont().unwrap();
    for _ in 0..200 {
        let ours: Vec<_> = [0, 1, 4]
            .into_iter()
            .filter(|&i| cluster[i].get("cancel").unwrap().is_some())
            .collect();
        if ours.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in [0, 1, 4] {
        assert_eq!(
            cluster[i].get("cancel").unwrap(),
            None,
            "instance {i} kept a key"
        );
    }
    assert_eq!(cluster[2].get("cancel").unwrap(), Some(b"other".to_vec()));
}

#[tokio::test]
async fn tls_instances_connect_with_a_custom_ca() {
    let cluster = Cluster::start(3, ClusterOptions::new().tls(true)).unwrap();
    let ca = cluster.tls().unwrap().ca_cert_pem().unwrap();
    assert!(cluster.urls()[0].starts_with("rediss://"));
    let redlock = Redlock::builder(cluster.urls())
        .tls_root_ca(ca)
        .connect()
        .await
        .unwrap();
    let lock = redlock.lock("secure", TTL).await.expect("lock over tls");
    assert_eq!(lock.release().await.unwrap().deleted, 3);
}

#[tokio::test]
async fn acl_users_authenticate_and_passwords_stay_out_of_errors_and_debug() {
    let cluster = Cluster::start(3, ClusterOptions::new().acl_user("locker", "s3cr3t-pw")).unwrap();
    let redlock = redlock(cluster.urls()).await;
    assert!(!format!("{redlock:?}").contains("s3cr3t-pw"));
    let lock = redlock
        .lock("acl", TTL)
        .await
        .expect("lock as the acl user");
    lock.release().await.unwrap();

    let wrong: Vec<String> = cluster
        .urls()
        .iter()
        .map(|u| u.replace("s3cr3t-pw", "wrong-pw"))
        .collect();
    let bad = Redlock::builder(wrong).retries(0).connect().await.unwrap();
    let err = bad.lock("acl", TTL).await.unwrap_err();
    assert!(matches!(err, Error::NoQuorum { .. }), "{err}");
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("wrong-pw") && !text.contains("s3cr3t-pw"),
        "{text}"
    );
    assert_no_keys_left(&cluster).await;
}

/// A user who may not load scripts: the loads each new connection queues are refused, their
/// replies are dropped in order (a misaligned reply would answer a lock command), and the
/// `NOSCRIPT` that follows is answered with the full script.
#[tokio::test]
async fn a_user_who_may_not_load_scripts_still_locks() {
    let cluster = Cluster::start(3, ClusterOptions::new().acl_user("locker", "s3cr3t-pw")).unwrap();
    for inst in cluster.iter() {
        inst.command_str(&["ACL", "SETUSER", "locker", "-script|load"])
            .unwrap();
    }
    let redlock = redlock(cluster.urls()).await;
    let lock = redlock
        .lock_all(&["a", "b"], TTL)
        .await
        .expect("lock without SCRIPT LOAD");
    lock.extend(TTL).await.expect("extend without SCRIPT LOAD");
    let report = lock.release().await.unwrap();
    assert!(report.confirmed, "{report:?}");
    for inst in cluster.iter() {
        let stats = inst.command_str(&["INFO", "errorstats"]).unwrap();
        let stats = stats.as_str().unwrap_or_default();
        assert!(
            stats.contains("errorstat_NOPERM"),
            "the loads were not refused: {stats}"
        );
    }
    assert_no_keys_left(&cluster).await;
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let cluster = cluster(3);
    let redlock = redlock(cluster.urls()).await;
    assert!(matches!(
        redlock.lock("", TTL).await,
        Err(Error::InvalidResource(_))
    ));
    assert!(matches!(
        redlock.lock(vec![b'k'; 100_000], TTL).await,
        Err(Error::InvalidResource(_))
    ));
    assert!(matches!(
        redlock.lock("zero", Duration::ZERO).await,
        Err(Error::Config(_))
    ));
    let none: Vec<String> = Vec::new();
    assert!(matches!(
        Redlock::builder(none).build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        Redlock::builder(["http://x"]).build(),
        Err(Error::InvalidUrl { .. })
    ));
    let binary = redlock
        .lock([0u8, 159, 146, 150], TTL)
        .await
        .expect("binary keys work");
    binary.release().await.unwrap();
    assert_no_keys_left(&cluster).await;
}

#[tokio::test]
async fn finished_operations_leave_no_background_tasks() {
    let cluster = cluster(3);
    let redlock = redlock(cluster.urls()).await;
    // Warm up: connection tasks exist from here on.
    redlock
        .lock("warm", TTL)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    for i in 0..30 {
        let key = format!("t{i}");
        let lock = redlock.lock(&key, TTL).await.unwrap();
        let _ = redlock.try_lock(&key, TTL).await.unwrap_err();
        let cancelled = redlock.lock(&key, TTL);
        let _ = tokio::time::timeout(Duration::from_millis(1), cancelled).await;
        lock.release().await.unwrap();
    }
    let _dropped = redlock.lock("dropped", TTL).await.unwrap();
    drop(_dropped);
    let mut alive = usize::MAX;
    for _ in 0..100 {
        alive = metrics.num_alive_tasks();
        if alive <= baseline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(alive <= baseline, "{alive} tasks alive, {baseline} before");
    assert_no_keys_left(&cluster).await;
}

#[tokio::test]
async fn leases_run_on_tokio_time_so_paused_clock_tests_are_deterministic() {
    let cluster = cluster(3);
    let redlock = redlock(cluster.urls()).await;
    let lock = redlock.lock("paused-clock", TTL).await.unwrap();
    tokio::time::pause();
    let end = lock.valid_until();
    let lost = lock.lost();
    tokio::time::advance(lock.remaining_validity() - Duration::from_millis(10)).await;
    assert!(lock.is_valid());
    // With the clock paused, tokio jumps straight to the watchdog's deadline.
    let reason = lost.await;
    let now = tokio::time::Instant::now();
    assert_eq!(reason, LostReason::Expired);
    assert!(now < end, "fired {:?} late", now - end);
    assert!(
        end - now <= Duration::from_millis(2),
        "fired {:?} early",
        end - now
    );
    assert!(!lock.is_valid());
    tokio::time::resume();
    lock.release().await.unwrap();
    assert_no_keys_left(&cluster).await;
}

/// Three instances behind proxies that delay each direction by `delay`.
fn slow_cluster(delay: Duration) -> Cluster {
    let cluster = Cluster::start_with_proxies(3, ClusterOptions::new()).unwrap();
    for i in 0..cluster.len() {
        cluster.proxy(i).latency(delay);
    }
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_the_release_of_a_dropped_lock() {
    // Every round trip takes at least 800 ms: the background release is still running when
    // `close` is called, and nothing but `close` waits for it.
    let cluster = slow_cluster(Duration::from_millis(400));
    let redlock = Redlock::builder(cluster.proxy_urls())
        .instance_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let lock = redlock.lock("dropped", TTL).await.expect("lock");
    drop(lock);
    assert!(
        !all_keys(&cluster).is_empty(),
        "the release cannot be done yet"
    );
    tokio::time::timeout(Duration::from_secs(20), redlock.close())
        .await
        .expect("close returns once the release is done");
    assert!(
        all_keys(&cluster).is_empty(),
        "close returned before the release was done"
    );
    // Still usable after close.
    let lock = redlock
        .lock("dropped", TTL)
        .await
        .expect("lock after close");
    lock.release().await.unwrap();
    assert_no_keys_left(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_the_cleanup_of_a_dropped_acquire() {
    let cluster = Cluster::start_with_proxies(3, ClusterOptions::new()).unwrap();
    let redlock = Redlock::builder(cluster.proxy_urls())
        .connect()
        .await
        .unwrap();
    // The SETs reach Redis but their replies are held: the acquire cannot finish, and once it
    // is dropped its cleanup has to wait for those replies before it can release.
    for i in 0..cluster.len() {
        cluster.proxy(i).hold_replies();
    }
    let dropped =
        tokio::time::timeout(Duration::from_millis(300), redlock.lock("abandoned", TTL)).await;
    assert!(
        dropped.is_err(),
        "the acquire cannot finish without replies"
    );
    assert_eq!(all_keys(&cluster).len(), 3, "the SETs landed");
    let unblock = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 0..cluster.len() {
            cluster.proxy(i).pass();
        }
    };
    // Looks at the keys the moment `close` returns.
    let closed = async {
        tokio::time::timeout(Duration::from_secs(20), redlock.close())
            .await
            .expect("close returns once the cleanup is done");
        all_keys(&cluster)
    };
    let (left, ()) = tokio::join!(closed, unblock);
    assert!(
        left.is_empty(),
        "close returned before the cleanup was done: {left:?}"
    );
}
