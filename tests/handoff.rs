//! Fast handoff against real `redis-server` processes: a waiter retries as soon as the holder
//! releases, and falls back to its retry delay when announcements are lost, instances are down
//! or its pub/sub connections break.
//!
//! The retry delay here is seconds long so the fast path and the fallback are far apart; the
//! bounds asserted are generous (these tests run on loaded 2-core machines).

use std::time::{Duration, Instant};

use redlock::Redlock;
use redlock_harness::{Cluster, ClusterOptions};

const TTL: Duration = Duration::from_secs(30);
/// The waiters' retry delay: the fast path must beat it by far.
const DELAY: Duration = Duration::from_secs(4);
/// What "soon after the release" means: a quarter of the retry delay.
const SOON: Duration = Duration::from_secs(1);

async fn manager(urls: Vec<String>, fast_handoff: bool) -> Redlock {
    Redlock::builder(urls)
        .retries(20)
        .retry_delay(DELAY, Duration::from_millis(100))
        .fast_handoff(fast_handoff)
        .connect()
        .await
        .expect("connect")
}

fn all_keys(cluster: &Cluster) -> Vec<String> {
    let mut keys = Vec::new();
    for inst in cluster.iter().filter(|i| i.is_running() && !i.is_stopped()) {
        keys.extend(inst.keys_matching("*").expect("KEYS"));
    }
    keys
}

async fn assert_no_keys_left(cluster: &Cluster) {
    for _ in 0..200 {
        if all_keys(cluster).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("lock keys left behind: {:?}", all_keys(cluster));
}

/// Holds `resource` with `holder`, starts a waiter on `waiter`, lets it fail once and subscribe,
/// runs `meanwhile`, releases, and returns how long after the release the waiter got the lock.
async fn handoff_after_release(
    holder: &Redlock,
    waiter: &Redlock,
    resource: &'static str,
    meanwhile: impl FnOnce(),
) -> Duration {
    let lock = holder.lock(resource, TTL).await.expect("holder locks");
    let w = waiter.clone();
    let waiting = tokio::spawn(async move {
        let lock = w.lock(resource, TTL).await.expect("waiter locks");
        let at = Instant::now();
        lock.release().await.expect("waiter releases");
        at
    });
    // The waiter's first attempt fails at once; give it ample time to subscribe.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "the waiter cannot have the lock yet"
    );
    meanwhile();
    let released = Instant::now();
    lock.release().await.expect("holder releases");
    let acquired = tokio::time::timeout(DELAY * 5, waiting)
        .await
        .expect("the waiter acquires in the end")
        .expect("waiter task");
    acquired.saturating_duration_since(released)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_acquires_soon_after_the_release_despite_a_long_retry_delay() {
    let cluster = Cluster::start(5, ClusterOptions::new()).expect("redis-server");
    let redlock = manager(cluster.urls(), true).await;
    let waited = handoff_after_release(&redlock, &redlock, "handoff:fast", || {}).await;
    assert!(
        waited < SOON,
        "waiter took {waited:?} after the release (retry delay {DELAY:?})"
    );
    assert_no_keys_left(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_stays_fast_with_a_minority_of_instances_killed() {
    let cluster = Cluster::start(5, ClusterOptions::new()).expect("redis-server");
    let redlock = manager(cluster.urls(), true).await;
    // One instance is down from the start, another dies while the waiter is subscribed.
    cluster[4].kill().expect("kill");
    let waited = handoff_after_release(&redlock, &redlock, "handoff:minority", || {
        cluster[3].kill().expect("kill");
    })
    .await;
    assert!(
        waited < SOON,
        "waiter took {waited:?} after the release (retry delay {DELAY:?})"
    );
    assert_no_keys_left(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_announcement_falls_back_to_the_retry_delay() {
    let cluster = Cluster::start(5, ClusterOptions::new()).expect("redis-server");
    // The holder announces nothing: its releases do not publish.
    let holder = manager(cluster.urls(), false).await;
    let waiter = manager(cluster.urls(), true).await;
    let waited = handoff_after_release(&holder, &waiter, "handoff:silent", || {}).await;
    // Woken by nothing, the waiter sleeps out its delay (minus the 500 ms it had already
    // waited and the jitter): it still gets the lock, just not early.
    assert!(
        waited > DELAY / 2,
        "waiter took only {waited:?}: woken by what?"
    );
    assert_no_keys_left(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_pubsub_connections_fall_back_to_the_retry_delay() {
    let cluster = Cluster::start_with_proxies(5, ClusterOptions::new()).expect("redis-server");
    // The holder talks to Redis directly; the waiter, pub/sub included, through the proxies.
    let holder = manager(cluster.urls(), true).await;
    let waiter = manager(cluster.proxy_urls(), true).await;
    let waited = handoff_after_release(&holder, &waiter, "handoff:broken", || {
        for i in 0..cluster.len() {
            cluster.proxy(i).drop_connections();
        }
        std::thread::sleep(Duration::from_millis(100));
        for i in 0..cluster.len() {
            cluster.proxy(i).pass();
        }
    })
    .await;
    // No announcement can reach the waiter: it retries on its timer (reconnecting its command
    // connections on the way) and gets the lock all the same.
    assert!(
        waited > DELAY / 2,
        "waiter took only {waited:?}: woken by what?"
    );
    assert_no_keys_left(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contending_waiters_with_fast_handoff_exclude_each_other_and_leave_no_keys() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    let cluster = Cluster::start(5, ClusterOptions::new()).expect("redis-server");
    // Three managers, as three processes would be: each has its own subscriptions and wakes
    // its own waiters, so waiters of different managers collide and split votes happen.
    let mut managers = Vec::new();
    for _ in 0..3 {
        managers.push(
            Redlock::builder(cluster.urls())
                .retries(10_000)
                .retry_delay(Duration::from_millis(200), Duration::from_millis(100))
                .fast_handoff(true)
                .connect()
                .await
                .expect("connect"),
        );
    }
    let counter = Arc::new(AtomicU64::new(0));
    let (tasks, rounds) = (6usize, 10u64);
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (redlock, counter) = (managers[t % 3].clone(), Arc::clone(&counter));
            tokio::spawn(async move {
                for _ in 0..rounds {
                    let lock = redlock.lock("handoff:counter", TTL).await.expect("lock");
                    let v = counter.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    assert!(lock.is_valid());
                    counter.store(v + 1, Ordering::SeqCst);
                    lock.release().await.expect("release");
                    // Outside the lock for a moment, so the lock passes to a waiter.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("task");
    }
    assert_eq!(counter.load(Ordering::SeqCst), tasks as u64 * rounds);
    // Without handoff, 60 handoffs at a 200 ms retry delay take many seconds; with it, well
    // under. Only a loose bound: liveness, not speed, is the point here.
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_no_keys_left(&cluster).await;
}
