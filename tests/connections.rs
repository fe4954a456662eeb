//! Connection hygiene against real `redis-server` processes behind a fault-injecting proxy.

use std::time::Duration;

use redlock::{InstanceStatus, Redlock};
use redlock_harness::{Cluster, ClusterOptions};

const TTL: Duration = Duration::from_secs(30);

/// Replies are matched to requests by order on a multiplexed connection. A proxy that swallowed
/// bytes and then resumed on the same TCP connection would shift every later reply onto the
/// wrong request; the runtime must drop a connection whose command it abandoned after a timeout.
#[tokio::test]
async fn a_connection_that_may_have_lost_bytes_is_replaced() {
    let cluster = Cluster::start_with_proxies(3, ClusterOptions::new()).unwrap();
    let redlock = Redlock::builder(cluster.proxy_urls())
        .instance_timeout(Duration::from_millis(200))
        .retries(0)
        .connect()
        .await
        .unwrap();
    cluster.proxy(0).blackhole();
    let lock = redlock.lock("lost-bytes", TTL).await.expect("2 of 3");
    let report = lock.release().await.unwrap();
    assert_eq!(report.instances[0].status, InstanceStatus::TimedOut);
    // Forwarding resumes on the same TCP connections; the swallowed commands are gone for good.
    cluster.proxy(0).reset();
    for round in 0..3 {
        let lock = redlock.lock("lost-bytes", TTL).await.expect("lock");
        let report = lock.release().await.unwrap();
        // Instance 0 answers on a fresh connection: deleted (Yes), or nothing to delete (Held)
        // when the lock was decided before its SET went out. A shifted reply would time out.
        assert!(
            matches!(
                report.instances[0].status,
                InstanceStatus::Yes | InstanceStatus::Held
            ),
            "round {round}: instance 0 must answer its own commands: {report:?}"
        );
        assert!(report.deleted >= 2);
    }
    for inst in cluster.iter() {
        assert!(inst.keys_matching("*").unwrap().is_empty());
    }
}
