//! ACL, requirepass and TLS instances.
//! These start real redis-server processes (run scripts/ensure-redis.sh first).

use std::process::{Command, Stdio};
use std::time::Duration;

use redlock_harness::{Cluster, ClusterOptions, Persistence, RespConn};

const TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn acl_user_can_auth_and_wrong_password_fails() {
    let cluster = Cluster::start(2, ClusterOptions::new().acl_user("locker", "s3cret/pw")).unwrap();
    let inst = &cluster[0];
    assert_eq!(
        inst.url(),
        format!("redis://locker:s3cret%2Fpw@127.0.0.1:{}/", inst.port())
    );
    // Helpers authenticate by themselves.
    inst.set("k", "v").unwrap();
    assert_eq!(inst.get("k").unwrap(), Some(b"v".to_vec()));

    let mut conn = RespConn::connect(inst.addr(), TIMEOUT).unwrap();
    let err = conn.ping().unwrap_err();
    assert!(
        err.server_message().unwrap().starts_with("NOAUTH"),
        "unauthenticated: {err}"
    );
    let err = conn.auth(Some("locker"), "wrong").unwrap_err();
    assert!(
        err.server_message().unwrap().starts_with("WRONGPASS"),
        "wrong password: {err}"
    );
    let err = conn.auth(None, "s3cret/pw").unwrap_err();
    assert!(err.server_message().is_some(), "default user is off: {err}");
    conn.auth(Some("locker"), "s3cret/pw").unwrap();
    conn.ping().unwrap();
    assert_eq!(
        conn.command_str(&["ACL", "WHOAMI"]).unwrap().as_str(),
        Some("locker")
    );
    assert_eq!(inst.redis_cli(&["ping"]).unwrap(), "PONG");

    // Credentials survive a restart.
    inst.restart().unwrap();
    inst.ping().unwrap();
}

#[test]
fn requirepass_variant() {
    let cluster = Cluster::start_with_proxies(
        1,
        ClusterOptions::new()
            .requirepass("pw")
            .persistence(Persistence::AofAlways),
    )
    .unwrap();
    let inst = &cluster[0];
    assert_eq!(
        inst.url(),
        format!("redis://:pw@127.0.0.1:{}/", inst.port())
    );
    assert_eq!(
        inst.proxy_url().unwrap(),
        format!("redis://:pw@127.0.0.1:{}/", cluster.proxy(0).port())
    );
    inst.ping().unwrap();
    let mut conn = RespConn::connect(inst.addr(), TIMEOUT).unwrap();
    assert!(conn
        .ping()
        .unwrap_err()
        .server_message()
        .unwrap()
        .starts_with("NOAUTH"));
    assert!(conn.auth(None, "nope").is_err());
    conn.auth(None, "pw").unwrap();
    conn.ping().unwrap();
}

#[test]
fn tls_instance_answers_redis_cli() {
    let cluster = Cluster::start_with_proxies(
        2,
        ClusterOptions::new()
            .tls(true)
            .acl_user("tlsuser", "tlspass"),
    )
    .unwrap();
    let ca = cluster.ca_cert_path().expect("CA path").to_path_buf();
    assert!(ca.exists());
    let tls = cluster.tls().unwrap();
    assert!(tls.server_cert.exists() && tls.server_key.exists());
    assert!(tls
        .ca_cert_pem()
        .unwrap()
        .starts_with(b"-----BEGIN CERTIFICATE-----"));
    for inst in &cluster {
        assert!(inst.is_tls());
        assert_eq!(inst.ca_cert_path(), Some(ca.as_path()));
        assert_eq!(
            inst.url(),
            format!("rediss://tlsuser:tlspass@127.0.0.1:{}/", inst.port())
        );
        assert!(inst
            .proxy_url()
            .unwrap()
            .starts_with("rediss://tlsuser:tlspass@"));
        // redis-cli verifies the server certificate against the generated CA.
        assert_eq!(inst.redis_cli(&["ping"]).unwrap(), "PONG");
        assert_eq!(inst.redis_cli(&["set", "k", "v"]).unwrap(), "OK");
        assert_eq!(inst.redis_cli(&["get", "k"]).unwrap(), "v");
        // The mini client is plain TCP only and says so.
        let err = inst.ping().unwrap_err();
        assert!(err.to_string().contains("TLS"), "{err}");
    }

    // TLS end to end through the proxy, hostname verified against IP:127.0.0.1.
    let out = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.proxy(0).port().to_string(),
        ])
        .arg("--tls")
        .arg("--cacert")
        .arg(&ca)
        .args([
            "--user",
            "tlsuser",
            "--pass",
            "tlspass",
            "--no-auth-warning",
            "ping",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli (install with scripts/ensure-redis.sh)");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "PONG");

    // The certificate chain verifies with openssl too.
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&ca)
        .arg(&tls.server_cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Restart works for TLS instances (readiness via the log).
    cluster[1].kill().unwrap();
    cluster[1].restart().unwrap();
    assert_eq!(cluster[1].redis_cli(&["ping"]).unwrap(), "PONG");
}
