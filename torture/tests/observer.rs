//! The runtime's observation hook, as the torture workers rely on it: every step of acquire,
//! extend and release is reported with the core's clock readings, in order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redlock::redlock_core::{AcquireFailure, CommandKind, InstanceStatus};
use redlock::{Error, Observation, ObservedReply, Operation, Redlock};
use redlock_harness::{Cluster, ClusterOptions};

/// An owned copy of what the tests look at.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    AcquireStarted(u64),
    AttemptStarted(u64, u32, String, u64),
    Sent(Operation, CommandKind, Option<u32>, usize),
    Reply(Operation, Option<u32>, usize, String, bool),
    TimedOut(u32, usize),
    Acquired(u64, u32, String, u64, u64, u64, Vec<usize>),
    AcquireFailed(AcquireFailure),
    ExtendStarted(u64),
    Extended(u64, u64, Vec<usize>),
    ReleaseStarted(u64),
    Released(Vec<InstanceStatus>),
}

fn recorder() -> (Arc<Mutex<Vec<Seen>>>, Arc<dyn redlock::Observer>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let observer = move |o: &Observation<'_>| {
        let s = match *o {
            Observation::AcquireStarted { lock, .. } => Seen::AcquireStarted(lock),
            Observation::AttemptStarted {
                lock,
                attempt,
                value,
                t1,
                ..
            } => Seen::AttemptStarted(lock, attempt, value.to_owned(), t1.as_millis()),
            Observation::CommandSent {
                operation,
                command,
                attempt,
                instance,
                ..
            } => Seen::Sent(operation, command, attempt, instance),
            Observation::ReplyReceived {
                operation,
                attempt,
                instance,
                reply,
                current,
                ..
            } => {
                let r = match reply {
                    ObservedReply::Ok => "ok".to_owned(),
                    ObservedReply::Nil => "nil".to_owned(),
                    ObservedReply::Integer(i) => i.to_string(),
                    other => format!("{other:?}"),
                };
                Seen::Reply(operation, attempt, instance, r, current)
            }
            Observation::TimedOut {
                attempt, instance, ..
            } => Seen::TimedOut(attempt, instance),
            Observation::Acquired {
                lock,
                attempt,
                value,
                t1,
                t2,
                valid_until,
                votes,
            } => Seen::Acquired(
                lock,
                attempt,
                value.to_owned(),
                t1.as_millis(),
                t2.as_millis(),
                valid_until.as_millis(),
                votes.to_vec(),
            ),
            Observation::AcquireFailed { reason, .. } => Seen::AcquireFailed(reason),
            Observation::ExtendStarted { lock, .. } => Seen::ExtendStarted(lock),
            Observation::Extended {
                t1,
                valid_until,
                votes,
                ..
            } => Seen::Extended(t1.as_millis(), valid_until.as_millis(), votes.to_vec()),
            Observation::ReleaseStarted { lock, .. } => Seen::ReleaseStarted(lock),
            Observation::Released { statuses, .. } => Seen::Released(statuses.to_vec()),
            _ => return,
        };
        sink.lock().unwrap().push(s);
    };
    (seen, Arc::new(observer))
}

fn take(seen: &Mutex<Vec<Seen>>) -> Vec<Seen> {
    std::mem::take(&mut *seen.lock().unwrap())
}

#[tokio::test]
async fn acquire_extend_and_release_are_observed_with_their_clock_readings() {
    let cluster = Cluster::start(3, ClusterOptions::new()).unwrap();
    let (seen, observer) = recorder();
    let redlock = Redlock::builder(cluster.urls())
        .observer(observer)
        .connect()
        .await
        .unwrap();
    let ttl = Duration::from_secs(30);
    let lock = redlock.lock("obs", ttl).await.unwrap();
    let id = lock.id();
    let events = take(&seen);
    assert_eq!(events[0], Seen::AcquireStarted(id));
    let Seen::AttemptStarted(l, 1, value, t1) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!((*l, value.as_str()), (id, lock.value().as_str()));
    let sent = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Seen::Sent(Operation::Acquire, CommandKind::Acquire, Some(1), _)
            )
        })
        .count();
    assert_eq!(sent, 3);
    let Some(Seen::Acquired(l, 1, v, at1, t2, until, votes)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!((*l, v, at1), (id, value, t1));
    assert!(t2 >= t1);
    // valid_until = t1 + ttl - drift (1 % + 2 ms).
    assert_eq!(*until, t1 + 30_000 - 302);
    assert_eq!(*until, lock.lease().valid_until().as_millis());
    assert_eq!(
        redlock.tokio_instant(lock.lease().valid_until()),
        lock.valid_until()
    );
    assert!(votes.len() >= 2);
    for v in votes {
        assert!(events.contains(&Seen::Reply(
            Operation::Acquire,
            Some(1),
            *v,
            "ok".into(),
            true
        )));
    }

    lock.extend(ttl).await.unwrap();
    let events = take(&seen);
    assert_eq!(events[0], Seen::ExtendStarted(id));
    let Some(Seen::Extended(t1, until, votes)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(*until, t1 + 30_000 - 302);
    assert_eq!(*until, lock.lease().valid_until().as_millis());
    assert!(votes.len() >= 2);

    lock.release().await.unwrap();
    let events = take(&seen);
    assert_eq!(events[0], Seen::ReleaseStarted(id));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(
                e,
                Seen::Sent(Operation::Release, CommandKind::Release, None, _)
            ))
            .count(),
        3
    );
    assert_eq!(
        events.last(),
        Some(&Seen::Released(vec![InstanceStatus::Yes; 3]))
    );
}

#[tokio::test]
async fn failed_attempts_show_their_replies_cleanups_and_timeouts() {
    let cluster = Cluster::start_with_proxies(3, ClusterOptions::new()).unwrap();
    let (seen, observer) = recorder();
    let redlock = Redlock::builder(cluster.proxy_urls())
        .instance_timeout(Duration::from_millis(300))
        .observer(observer)
        .connect()
        .await
        .unwrap();
    // Instance 0 is silent, instance 1 holds another value: the attempt fails contended.
    cluster[1].set("busy", "someone-else").unwrap();
    cluster.proxy(0).blackhole();
    let e = redlock
        .try_lock("busy", Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Contended { .. } | Error::NoQuorum { .. }),
        "{e}"
    );
    let events = take(&seen);
    assert!(
        events.contains(&Seen::Reply(
            Operation::Acquire,
            Some(1),
            1,
            "nil".into(),
            true
        )),
        "{events:?}"
    );
    assert!(events.contains(&Seen::TimedOut(1, 0)), "{events:?}");
    // Instance 2 said OK to the failed attempt: it gets a cleanup release of attempt 1, and so
    // does the silent instance 0 (its SET may have landed).
    for inst in [0, 2] {
        assert!(
            events.contains(&Seen::Sent(
                Operation::Acquire,
                CommandKind::Release,
                Some(1),
                inst
            )),
            "{events:?}"
        );
    }
    assert!(
        matches!(events.last(), Some(Seen::AcquireFailed(_))),
        "{events:?}"
    );
    cluster.proxy(0).drop_connections();
    cluster.proxy(0).reset();
}
