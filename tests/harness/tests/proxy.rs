//! Proxy tests: pass, latency, hold, blackhole, drop_connections, use from tokio tests.
//! These start real redis-server processes (run scripts/ensure-redis.sh first).

use std::time::{Duration, Instant};

use redlock_harness::{Cluster, ClusterOptions, Proxy, ProxyMode, RespConn};

const TIMEOUT: Duration = Duration::from_secs(10);

fn timed_ping(conn: &mut RespConn) -> Duration {
    let t = Instant::now();
    conn.ping().expect("ping through proxy");
    t.elapsed()
}

#[test]
fn proxied_cluster_urls_and_pass() {
    let cluster = Cluster::start_with_proxies(3, ClusterOptions::new()).unwrap();
    let urls = cluster.proxy_urls();
    for (i, inst) in cluster.iter().enumerate() {
        let proxy = inst.proxy().unwrap();
        assert_ne!(proxy.port(), inst.port());
        assert_eq!(proxy.upstream(), inst.addr());
        assert_eq!(urls[i], format!("redis://127.0.0.1:{}/", proxy.port()));
        assert_eq!(inst.proxy_url().unwrap(), urls[i]);
        assert_eq!(proxy.mode(), ProxyMode::Pass);
        let mut conn = RespConn::connect(proxy.addr(), TIMEOUT).unwrap();
        conn.command_str(&["SET", "via-proxy", "1"]).unwrap();
        assert_eq!(inst.get("via-proxy").unwrap(), Some(b"1".to_vec()));
        // Large values cross the proxy in many chunks.
        let big = vec![b'x'; 1 << 20];
        conn.command(&[b"SET", b"big", &big]).unwrap();
        let back = conn.command_str(&["GET", "big"]).unwrap();
        assert_eq!(back.as_bytes().unwrap(), &big[..]);
        drop(conn);
    }
    // The proxy survives a restart of its instance (same upstream port).
    cluster[0].restart().unwrap();
    let mut conn = RespConn::connect(cluster.proxy(0).addr(), TIMEOUT).unwrap();
    conn.ping().unwrap();
}

#[test]
fn latency_adds_delay_in_both_directions() {
    let cluster = Cluster::start_with_proxies(1, ClusterOptions::new()).unwrap();
    let proxy = cluster.proxy(0);
    let mut conn = RespConn::connect(proxy.addr(), TIMEOUT).unwrap();
    timed_ping(&mut conn);

    let delay = Duration::from_millis(150);
    proxy.latency(delay);
    assert_eq!(proxy.mode(), ProxyMode::latency(delay));
    for _ in 0..3 {
        let rtt = timed_ping(&mut conn);
        assert!(rtt >= 2 * delay, "round trip {rtt:?} < 2 x {delay:?}");
    }
    // Pipelined commands keep their order under latency.
    for i in 0..20 {
        conn.send(&[b"SET", b"order", i.to_string().as_bytes()])
            .unwrap();
    }
    for _ in 0..20 {
        assert!(conn.read_reply().unwrap().is_ok());
    }
    assert_eq!(cluster[0].get("order").unwrap(), Some(b"19".to_vec()));

    // One-way latency: only requests are delayed.
    proxy.set_mode(ProxyMode::Latency {
        upstream: delay,
        downstream: Duration::ZERO,
        jitter: Duration::from_millis(20),
    });
    let rtt = timed_ping(&mut conn);
    assert!(rtt >= delay, "round trip {rtt:?} < {delay:?}");

    proxy.reset();
    assert_eq!(proxy.mode(), ProxyMode::Pass);
    timed_ping(&mut conn);
}

#[test]
fn blackhole_times_out_and_keeps_accepting() {
    let cluster = Cluster::start_with_proxies(1, ClusterOptions::new()).unwrap();
    let proxy = cluster.proxy(0);
    let mut conn = RespConn::connect(proxy.addr(), TIMEOUT).unwrap();
    conn.ping().unwrap();
    conn.set_timeout(Some(Duration::from_millis(500))).unwrap();

    proxy.blackhole();
    let err = conn.command_str(&["SET", "bh", "1"]).unwrap_err();
    assert!(err.is_timeout(), "expected a timeout, got {err}");
    // New connections are accepted, but nothing answers.
    let mut fresh = RespConn::connect(proxy.addr(), Duration::from_millis(500)).unwrap();
    assert!(fresh.ping().unwrap_err().is_timeout());
    // Nothing reached redis.
    assert_eq!(cluster[0].get("bh").unwrap(), None);
    // Even a dead upstream stays silent (no close is forwarded).
    cluster[0].kill().unwrap();
    let mut silent = RespConn::connect(proxy.addr(), Duration::from_millis(500)).unwrap();
    assert!(silent.ping().unwrap_err().is_timeout());
    cluster[0].restart().unwrap();

    proxy.reset();
    let mut after = RespConn::connect(proxy.addr(), TIMEOUT).unwrap();
    after.ping().unwrap();
}

#[test]
fn drop_connections_resets_open_and_new_connections() {
    let cluster = Cluster::start_with_proxies(1, ClusterOptions::new()).unwrap();
    let proxy = cluster.proxy(0);
    let mut conn = RespConn::connect(proxy.addr(), TIMEOUT).unwrap();
    conn.ping().unwrap();
    assert_eq!(proxy.active_connections(), 1);

    proxy.drop_connections();
    let err = conn.ping().unwrap_err();
    assert!(
        err.is_connection_error(),
        "expected a connection error, got {err}"
    );

    // New connections are reset right away (connect itself may succeed: the kernel
    // completes the handshake before the proxy accepts).
    let err = RespConn::connect(proxy.addr(), TIMEOUT)
        .and_then(|mut c| c.ping())
        .unwrap_err();
    assert!(
        err.is_connection_error(),
        "expected a connection error, got {err}"
    );

    // A quick drop + reset still resets the connections that were open.
    proxy.reset();
    let mut conn = RespConn::connect(proxy.addr(), TIMEOUT).unwrap();
    conn.ping().unwrap();
    proxy.drop_connections();
    proxy.reset();
    assert!(conn.ping().unwrap_err().is_connection_error());
    let mut conn = RespConn::connect(proxy.addr(), TIMEOUT).unwrap();
    conn.ping().unwrap();
}

#[test]
fn killed_upstream_gives_connection_error_through_proxy() {
    let cluster = Cluster::start_with_proxies(1, ClusterOptions::new()).unwrap();
    let proxy = cluster.proxy(0);
    let mut conn = RespConn::connect(proxy.addr(), TIMEOUT).unwrap();
    conn.ping().unwrap();
    cluster[0].kill().unwrap();
    assert!(conn.ping().unwrap_err().is_connection_error());
    let err = RespConn::connect(proxy.addr(), TIMEOUT)
        .and_then(|mut c| c.ping())
        .unwrap_err();
    assert!(err.is_connection_error(), "{err}");
}

#[test]
fn hold_replies_delivers_them_late_in_order() {
    let cluster = Cluster::start_with_proxies(1, ClusterOptions::new()).unwrap();
    let proxy = cluster.proxy(0);
    let mut conn = RespConn::connect(proxy.addr(), TIMEOUT).unwrap();
    conn.ping().unwrap();
    conn.set_timeout(Some(Duration::from_millis(300))).unwrap();

    proxy.hold_replies();
    conn.send(&[b"SET", b"held", b"1"]).unwrap();
    conn.send(&[b"GET", b"held"]).unwrap();
    // The request went through: redis has the key, but the reply is held.
    let deadline = Instant::now() + TIMEOUT;
    while cluster[0].get("held").unwrap().is_none() {
        assert!(Instant::now() < deadline, "request never reached redis");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(conn.read_reply().unwrap_err().is_timeout());

    // Releasing delivers the held replies in order on the same connection. (The timed-out
    // read consumed nothing, so the stream is intact.)
    proxy.reset();
    conn.set_timeout(Some(TIMEOUT)).unwrap();
    assert!(conn.read_reply().unwrap().is_ok());
    assert_eq!(conn.read_reply().unwrap().as_bytes(), Some(&b"1"[..]));
    conn.ping().unwrap();
}

#[test]
fn standalone_proxy_from_sync_code() {
    let cluster = Cluster::start(1, ClusterOptions::new()).unwrap();
    let proxy = Proxy::start(cluster[0].addr()).unwrap();
    assert_eq!(proxy.url(), format!("redis://127.0.0.1:{}/", proxy.port()));
    let mut conn = RespConn::connect(proxy.addr(), TIMEOUT).unwrap();
    conn.ping().unwrap();
    assert_eq!(proxy.accepted_connections(), 1);
    // An extra per-client proxy in front of the same instance.
    let extra = cluster[0].new_proxy().unwrap();
    assert_ne!(extra.port(), proxy.port());
    extra.blackhole();
    conn.ping().unwrap(); // other proxy unaffected
    drop(proxy);
    assert!(
        conn.ping().unwrap_err().is_connection_error(),
        "dropping the proxy closes its connections"
    );
}

#[tokio::test(start_paused = true)]
async fn proxy_uses_real_time_inside_paused_tokio_test() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let cluster = Cluster::start(1, ClusterOptions::new()).unwrap();
    let proxy = Proxy::start(cluster[0].addr()).unwrap();
    proxy.latency(Duration::from_millis(100));
    let mut stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let t = Instant::now();
    stream.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 7];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    // Dropping from inside the runtime is fine too.
    drop(proxy);
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_from_multi_thread_runtime() {
    let cluster = Cluster::start_with_proxies(2, ClusterOptions::new()).unwrap();
    let addr = cluster.proxy(1).addr();
    cluster.proxy(1).latency(Duration::from_millis(50));
    let rtt = tokio::task::spawn_blocking(move || {
        let mut conn = RespConn::connect(addr, TIMEOUT).unwrap();
        timed_ping(&mut conn)
    })
    .await
    .unwrap();
    assert!(rtt >= Duration::from_millis(100), "{rtt:?}");
}
