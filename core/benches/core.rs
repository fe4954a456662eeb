//! Benchmarks of the core: whole protocol rounds decided through the machines, command
//! encoding and RESP parsing.
//!
//! `cargo bench -p redlock-core --bench core`

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use redlock_core::resp;
use redlock_core::{
    Acquire, AcquireOutcome, Command, Config, Extend, Input, Instant, Lease, Output, Release,
    Reply, RequestId, Resources, Token,
};

const N: usize = 5;

fn config() -> Config {
    Config::new(N, Duration::from_secs(10)).unwrap()
}

/// New acquire, drain its five sends, feed three OKs, poll Done. Returns the lease.
fn acquire(config: Config, resources: &Resources, rng: &ChaCha20Rng) -> Lease {
    let mut acq = Acquire::new(
        config,
        resources.clone(),
        rng.clone(),
        Instant::from_millis(1_000),
    )
    .unwrap();
    let mut sent = [(0usize, RequestId::from_u32(0)); N];
    let mut k = 0;
    while let Output::Send(tx) = acq.poll_output() {
        sent[k] = (tx.instance, tx.request);
        k += 1;
    }
    for &(instance, request) in &sent[..3] {
        acq.handle_input(Input::Reply {
            instance,
            request,
            reply: Reply::Ok,
            at: Instant::from_millis(1_002),
        })
        .unwrap();
    }
    match acq.poll_output() {
        Output::Done(AcquireOutcome::Acquired { lease, .. }) => lease.clone(),
        other => panic!("not acquired: {other:?}"),
    }
}

/// Release on all five instances, each answering 1.
fn release(config: Config, lease: &Lease) -> bool {
    let mut rel = Release::new(config, lease, Instant::from_millis(1_010)).unwrap();
    let mut sent = [(0usize, RequestId::from_u32(0)); N];
    let mut k = 0;
    while let Output::Send(tx) = rel.poll_output() {
        sent[k] = (tx.instance, tx.request);
        k += 1;
    }
    for &(instance, request) in &sent {
        rel.handle_input(Input::Reply {
            instance,
            request,
            reply: Reply::Integer(1),
            at: Instant::from_millis(1_011),
        })
        .unwrap();
    }
    match rel.poll_output() {
        Output::Done(o) => o.confirmed,
        other => panic!("release not done: {other:?}"),
    }
}

/// One extend round: five sends, three answer 1.
fn extend(config: Config, lease: &Lease) -> Instant {
    let mut ext = Extend::new(config, lease, Instant::from_millis(2_000)).unwrap();
    let mut sent = [(0usize, RequestId::from_u32(0)); N];
    let mut k = 0;
    while let Output::Send(tx) = ext.poll_output() {
        sent[k] = (tx.instance, tx.request);
        k += 1;
    }
    for &(instance, request) in &sent[..3] {
        ext.handle_input(Input::Reply {
            instance,
            request,
            reply: Reply::Integer(1),
            at: Instant::from_millis(2_001),
        })
        .unwrap();
    }
    match ext.poll_output() {
        Output::Done(o) => o.lease().valid_until(),
        other => panic!("extend not done: {other:?}"),
    }
}

fn machines(c: &mut Criterion) {
    let config = config();
    let resources = Resources::single(b"orders:42").unwrap();
    let rng = ChaCha20Rng::seed_from_u64(7);
    c.bench_function("acquire_n5_uncontended", |b| {
        b.iter(|| acquire(black_box(config), black_box(&resources), &rng))
    });
    c.bench_function("acquire_and_release_n5", |b| {
        b.iter(|| {
            let lease = acquire(black_box(config), black_box(&resources), &rng);
            release(config, &lease)
        })
    });
    let lease = acquire(config, &resources, &rng);
    c.bench_function("extend_round_n5", |b| {
        b.iter(|| extend(black_box(config), black_box(&lease)))
    });
}

fn commands(c: &mut Criterion) {
    let single = Resources::single(b"orders:42").unwrap();
    let multi = Resources::from_keys(&[b"account:1".as_slice(), b"account:2".as_slice()]).unwrap();
    let value = Token::from_bytes([0x5a; 16]);
    let mut buf = [0u8; 512];
    let set = Command::acquire(&single, &value, 10_000);
    c.bench_function("encode_resp_set", |b| {
        b.iter(|| black_box(&set).encode_resp(black_box(&mut buf)).unwrap())
    });
    let evalsha = Command::acquire(&multi, &value, 10_000);
    c.bench_function("encode_resp_evalsha", |b| {
        b.iter(|| {
            black_box(&evalsha)
                .encode_resp(black_box(&mut buf))
                .unwrap()
        })
    });
}

fn parsing(c: &mut Criterion) {
    c.bench_function("resp_parse_ok", |b| {
        b.iter(|| resp::parse(black_box(b"+OK\r\n")).unwrap().unwrap().1)
    });
    c.bench_function("resp_parse_integer", |b| {
        b.iter(|| resp::parse(black_box(b":1\r\n")).unwrap().unwrap().1)
    });
    let array = b"*10\r\n$3\r\nSET\r\n$9\r\norders:42\r\n:1\r\n+OK\r\n$-1\r\n\
                  $32\r\n5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a\r\n:-7\r\n-ERR x\r\n$2\r\nNX\r\n:30000\r\n";
    c.bench_function("resp_parse_array10", |b| {
        b.iter(|| {
            let (frame, used) = resp::parse(black_box(array)).unwrap().unwrap();
            match frame {
                resp::Frame::Array(a) => a.iter().count() + used,
                _ => unreachable!(),
            }
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = machines, commands, parsing
}
criterion_main!(benches);
