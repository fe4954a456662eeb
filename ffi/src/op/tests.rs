//! The state machine driven through the C functions against in-memory instances.

use std::collections::HashMap;
use std::ptr;

use super::*;
use crate::config::{redlock_config_free, redlock_config_new, redlock_config_set_retry};
use crate::lease::{
    redlock_lease_free, redlock_lease_is_valid, redlock_lease_resource,
    redlock_lease_valid_until_ms, redlock_lease_value,
};
use crate::reply::redlock_reply_kind;

/// A toy instance: single keys, no TTL; enough for SET NX, and the extend/release scripts.
#[derive(Default)]
struct Toy {
    keys: HashMap<Vec<u8>, Vec<u8>>,
    down: bool,
}

impl Toy {
    fn answer(&mut self, out: &redlock_output) -> Option<redlock_reply> {
        if self.down {
            return None;
        }
        let argv: Vec<&[u8]> = (0..out.argc)
            .map(|i| unsafe { std::slice::from_raw_parts(*out.argv.add(i), *out.argv_len.add(i)) })
            .collect();
        let (key, value) = match out.command {
            redlock_command_kind::Acquire => (argv[1], argv[2]),
            _ => (argv[3], argv[4]),
        };
        let ours = self.keys.get(key).map(Vec::as_slice) == Some(value);
        let (kind, integer) = match out.command {
            redlock_command_kind::Acquire if self.keys.contains_key(key) => {
                (redlock_reply_kind::Nil, 0)
            }
            redlock_command_kind::Acquire => {
                self.keys.insert(key.to_vec(), value.to_vec());
                (redlock_reply_kind::Ok, 0)
            }
            redlock_command_kind::Extend => (redlock_reply_kind::Integer, i64::from(ours)),
            _ => {
                if ours {
                    self.keys.remove(key);
                }
                (redlock_reply_kind::Integer, i64::from(ours))
            }
        };
        Some(redlock_reply {
            kind: kind as u32,
            integer,
            text: ptr::null(),
            text_len: 0,
        })
    }
}

fn config(n: u32, ttl: u64) -> *mut redlock_config {
    let mut c = ptr::null_mut();
    assert_eq!(
        unsafe { redlock_config_new(n, ttl, &mut c) },
        redlock_result::Ok
    );
    c
}

/// Polls and answers until WAIT or DONE; returns the last output.
fn drive(op: *mut redlock_op, toys: &mut [Toy], now: u64) -> redlock_output {
    loop {
        let mut out = redlock_output::empty(redlock_output_kind::Wait);
        assert_eq!(unsafe { redlock_op_poll(op, &mut out) }, redlock_result::Ok);
        if out.kind != redlock_output_kind::Send {
            return out;
        }
        // The RESP form and the argv form agree.
        let resp = unsafe { std::slice::from_raw_parts(out.resp, out.resp_len) };
        assert!(resp.starts_with(format!("*{}\r\n", out.argc).as_bytes()));
        let r = match toys[out.instance as usize].answer(&out) {
            Some(reply) => unsafe {
                redlock_op_handle_reply(op, out.instance, out.request, &reply, now)
            },
            None => unsafe {
                redlock_op_handle_transport_error(op, out.instance, out.request, now)
            },
        };
        assert_eq!(r, redlock_result::Ok);
    }
}

fn acquire(c: *const redlock_config, key: &[u8], now: u64) -> *mut redlock_op {
    let mut op = ptr::null_mut();
    assert_eq!(
        unsafe { redlock_acquire_new(c, key.as_ptr(), key.len(), now, &mut op) },
        redlock_result::Ok
    );
    op
}

#[test]
fn acquire_extend_release_round_trip() {
    let c = config(3, 10_000);
    let mut toys: Vec<Toy> = (0..3).map(|_| Toy::default()).collect();
    unsafe {
        let op = acquire(c, b"orders:42", 1_000);
        let out = drive(op, &mut toys, 1_001);
        assert_eq!(out.kind, redlock_output_kind::Done);
        assert_eq!(out.outcome, redlock_outcome::Acquired);
        assert_eq!(redlock_op_outcome(op), redlock_outcome::Acquired);
        assert_eq!(redlock_op_attempts(op), 1);
        let mut lease = ptr::null_mut();
        assert_eq!(redlock_op_lease(op, &mut lease), redlock_result::Ok);
        assert_eq!(redlock_lease_valid_until_ms(lease), 1_000 + 10_000 - 102);
        assert!(redlock_lease_is_valid(lease, 1_001));
        let value = std::ffi::CStr::from_ptr(redlock_lease_value(lease));
        assert_eq!(value.to_bytes().len(), 32);
        assert_eq!(toys[0].keys[&b"orders:42"[..]], value.to_bytes());
        let (mut k, mut kl) = (ptr::null(), 0);
        assert_eq!(
            redlock_lease_resource(lease, 0, &mut k, &mut kl),
            redlock_result::Ok
        );
        assert_eq!(std::slice::from_raw_parts(k, kl), b"orders:42");
        assert_eq!(
            redlock_lease_resource(lease, 1, &mut k, &mut kl),
            redlock_result::InvalidParameter
        );
        let mut report = redlock_instance_report {
            status: redlock_instance_status::Unknown,
            server_error: redlock_server_error::Other,
        };
        assert_eq!(redlock_op_report(op, 0, &mut report), redlock_result::Ok);
        assert_eq!(report.status, redlock_instance_status::Yes);
        assert_eq!(report.server_error, redlock_server_error::None);
        assert_eq!(
            redlock_op_report(op, 3, &mut report),
            redlock_result::UnknownInstance
        );
        redlock_op_free(op);

        // A second holder is refused while the first holds it.
        let other = acquire(c, b"orders:42", 2_000);
        let mut now = 2_000;
        let out = loop {
            let out = drive(other, &mut toys, now);
            if out.kind == redlock_output_kind::Done {
                break out;
            }
            now = out.until_ms;
            assert_eq!(redlock_op_handle_timeout(other, now), redlock_result::Ok);
        };
        assert_eq!(out.outcome, redlock_outcome::Contended);
        assert_eq!(redlock_op_attempts(other), 4);
        let mut none = ptr::null_mut();
        assert_eq!(redlock_op_lease(other, &mut none), redlock_result::NoLease);
        assert!(none.is_null());
        redlock_op_free(other);

        let mut ext = ptr::null_mut();
        assert_eq!(
            redlock_extend_new(c, lease, 5_000, &mut ext),
            redlock_result::Ok
        );
        let out = drive(ext, &mut toys, 5_001);
        assert_eq!(out.outcome, redlock_outcome::Extended);
        let mut extended = ptr::null_mut();
        assert_eq!(redlock_op_lease(ext, &mut extended), redlock_result::Ok);
        assert_eq!(redlock_lease_valid_until_ms(extended), 5_000 + 10_000 - 102);
        redlock_op_free(ext);

        let mut rel = ptr::null_mut();
        assert_eq!(
            redlock_release_new(c, extended, 6_000, &mut rel),
            redlock_result::Ok
        );
        assert_eq!(
            drive(rel, &mut toys, 6_001).outcome,
            redlock_outcome::Released
        );
        assert!(toys.iter().all(|t| t.keys.is_empty()));
        assert_eq!(redlock_op_lease(rel, &mut none), redlock_result::NoLease);
        assert_eq!(
            redlock_op_cancel(rel, 6_002),
            redlock_result::WrongOperation
        );
        redlock_op_free(rel);
        redlock_lease_free(extended);
        redlock_lease_free(lease);
        redlock_config_free(c);
    }
}

#[test]
fn minority_down_still_acquires_majority_down_does_not() {
    let c = config(5, 10_000);
    unsafe {
        let mut toys: Vec<Toy> = (0..5).map(|_| Toy::default()).collect();
        toys[1].down = true;
        toys[3].down = true;
        let op = acquire(c, b"k", 0);
        assert_eq!(drive(op, &mut toys, 1).outcome, redlock_outcome::Acquired);
        let mut report = redlock_instance_report {
            status: redlock_instance_status::Unknown,
            server_error: redlock_server_error::None,
        };
        assert_eq!(redlock_op_report(op, 1, &mut report), redlock_result::Ok);
        assert_eq!(report.status, redlock_instance_status::TransportError);
        redlock_op_free(op);

        let mut toys: Vec<Toy> = (0..5).map(|_| Toy::default()).collect();
        for t in &mut toys[..3] {
            t.down = true;
        }
        assert_eq!(redlock_config_set_retry(c, 0, 0, 0), redlock_result::Ok);
        let op = acquire(c, b"k", 0);
        assert_eq!(drive(op, &mut toys, 1).outcome, redlock_outcome::NoQuorum);
        // The failed attempt was cleaned up on the instances it reached.
        assert!(toys.iter().all(|t| t.keys.is_empty()));
        redlock_op_free(op);
        redlock_config_free(c);
    }
}

#[test]
fn misuse_gets_documented_codes_and_no_output() {
    let c = config(3, 10_000);
    unsafe {
        let mut op = ptr::null_mut();
        let key = vec![b'k'; REDLOCK_MAX_KEY_LEN + 1];
        assert_eq!(
            redlock_acquire_new(c, key.as_ptr(), key.len(), 0, &mut op),
            redlock_result::KeyTooLong
        );
        // A huge length is refused before the key is read.
        assert_eq!(
            redlock_acquire_new(c, key.as_ptr(), usize::MAX, 0, &mut op),
            redlock_result::KeyTooLong
        );
        assert_eq!(
            redlock_acquire_new(c, key.as_ptr(), 0, 0, &mut op),
            redlock_result::EmptyKey
        );
        assert_eq!(
            redlock_acquire_new(c, ptr::null(), 3, 0, &mut op),
            redlock_result::NullParameter
        );
        assert_eq!(
            redlock_acquire_new(ptr::null(), key.as_ptr(), 3, 0, &mut op),
            redlock_result::NullParameter
        );
        assert_eq!(
            redlock_acquire_new(c, key.as_ptr(), 3, 0, ptr::null_mut()),
            redlock_result::NullParameter
        );
        let keys = [b"a".as_ptr(), b"a".as_ptr()];
        let lens = [1usize, 1];
        assert_eq!(
            redlock_acquire_all_new(c, keys.as_ptr(), lens.as_ptr(), 2, 0, &mut op),
            redlock_result::DuplicateResource
        );
        assert_eq!(
            redlock_acquire_all_new(c, keys.as_ptr(), lens.as_ptr(), 0, 0, &mut op),
            redlock_result::NoResources
        );
        assert_eq!(
            redlock_acquire_all_new(c, keys.as_ptr(), lens.as_ptr(), 9, 0, &mut op),
            redlock_result::TooManyResources
        );
        let seed = [7u8; 31];
        assert_eq!(
            redlock_acquire_seeded_new(
                c,
                keys.as_ptr(),
                lens.as_ptr(),
                1,
                seed.as_ptr(),
                31,
                0,
                &mut op
            ),
            redlock_result::InvalidParameter
        );
        assert!(op.is_null(), "no output written on failure");

        let op = acquire(c, b"k", 100);
        let mut out = redlock_output::empty(redlock_output_kind::Wait);
        assert_eq!(redlock_op_poll(op, &mut out), redlock_result::Ok);
        assert_eq!(
            redlock_op_poll(op, ptr::null_mut()),
            redlock_result::NullParameter
        );
        let ok = redlock_reply {
            kind: redlock_reply_kind::Ok as u32,
            integer: 0,
            text: ptr::null(),
            text_len: 0,
        };
        assert_eq!(
            redlock_op_handle_reply(op, 3, out.request, &ok, 101),
            redlock_result::UnknownInstance
        );
        assert_eq!(
            redlock_op_handle_reply(op, u32::MAX, out.request, &ok, 101),
            redlock_result::UnknownInstance
        );
        let zeroed = redlock_reply { kind: 0, ..ok };
        assert_eq!(
            redlock_op_handle_reply(op, 0, out.request, &zeroed, 101),
            redlock_result::InvalidParameter
        );
        let bad_text = redlock_reply {
            kind: redlock_reply_kind::Error as u32,
            text_len: 4,
            ..ok
        };
        assert_eq!(
            redlock_op_handle_reply(op, 0, out.request, &bad_text, 101),
            redlock_result::NullParameter
        );
        assert_eq!(
            redlock_op_handle_reply(op, 0, out.request, ptr::null(), 101),
            redlock_result::NullParameter
        );
        assert_eq!(
            redlock_op_handle_reply(op, 0, out.request, &ok, 101),
            redlock_result::Ok
        );
        // Time going backwards fails closed: no lease, and the cleanup is still emitted.
        assert_eq!(
            redlock_op_handle_timeout(op, 50),
            redlock_result::TimeWentBackwards
        );
        let mut toys: Vec<Toy> = (0..3).map(|_| Toy::default()).collect();
        let done = drive(op, &mut toys, 102);
        assert_eq!(done.outcome, redlock_outcome::ClockWentBackwards);
        let mut lease = ptr::null_mut();
        assert_eq!(redlock_op_lease(op, &mut lease), redlock_result::NoLease);
        redlock_op_free(op);
        redlock_op_free(ptr::null_mut());
        assert_eq!(redlock_op_outcome(ptr::null()), redlock_outcome::None);
        redlock_config_free(c);
    }
}

#[test]
fn seeded_acquires_are_reproducible() {
    let c = config(3, 10_000);
    let value = |seed: u8| unsafe {
        let keys = [b"k".as_ptr()];
        let lens = [1usize];
        let seed = [seed; REDLOCK_SEED_LEN];
        let mut op = ptr::null_mut();
        assert_eq!(
            redlock_acquire_seeded_new(
                c,
                keys.as_ptr(),
                lens.as_ptr(),
                1,
                seed.as_ptr(),
                32,
                0,
                &mut op
            ),
            redlock_result::Ok
        );
        let mut toys: Vec<Toy> = (0..3).map(|_| Toy::default()).collect();
        assert_eq!(drive(op, &mut toys, 1).outcome, redlock_outcome::Acquired);
        let mut lease = ptr::null_mut();
        assert_eq!(redlock_op_lease(op, &mut lease), redlock_result::Ok);
        let v = std::ffi::CStr::from_ptr(redlock_lease_value(lease)).to_owned();
        redlock_lease_free(lease);
        redlock_op_free(op);
        v
    };
    assert_eq!(value(1), value(1));
    assert_ne!(value(1), value(2));
    unsafe { redlock_config_free(c) };
}

#[test]
fn an_expired_lease_is_not_extended() {
    let c = config(3, 1_000);
    let mut toys: Vec<Toy> = (0..3).map(|_| Toy::default()).collect();
    unsafe {
        let op = acquire(c, b"k", 0);
        assert_eq!(drive(op, &mut toys, 1).outcome, redlock_outcome::Acquired);
        let mut lease = ptr::null_mut();
        assert_eq!(redlock_op_lease(op, &mut lease), redlock_result::Ok);
        let mut ext = ptr::null_mut();
        assert_eq!(
            redlock_extend_new(c, lease, 5_000, &mut ext),
            redlock_result::Ok
        );
        let mut out = redlock_output::empty(redlock_output_kind::Wait);
        assert_eq!(redlock_op_poll(ext, &mut out), redlock_result::Ok);
        assert_eq!(out.kind, redlock_output_kind::Done);
        assert_eq!(out.outcome, redlock_outcome::Expired);
        redlock_op_free(ext);
        redlock_lease_free(lease);
        redlock_op_free(op);
        redlock_config_free(c);
    }
}

#[test]
fn operations_can_move_between_threads() {
    fn is_send<T: Send>() {}
    is_send::<redlock_op>();
    is_send::<redlock_config>();
    is_send::<redlock_lease>();
}
