//! Arbitrary bytes into `resp::parse`, then every aggregate walked and every frame mapped to a
//! `Reply`; the buffer is consumed frame by frame as a host would.
//!
//! Invariants: no panic; a frame uses at least one and at most all of the bytes; aggregates
//! yield exactly `len()` elements; every strict prefix of a parsed frame is incomplete
//! (`Ok(None)`), and a parsed frame parses again identically from its own bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use redlock_core::resp::{self, Frame};
use redlock_core::Reply;

fn walk(frame: &Frame<'_>, depth: usize) -> usize {
    assert!(depth <= resp::MAX_DEPTH + 2, "nested {depth} deep");
    let _ = Reply::from_frame(frame);
    match frame {
        Frame::Array(a) | Frame::Map(a) | Frame::Set(a) | Frame::Push(a) => {
            let mut n = 0;
            let mut visited = 1;
            for item in a.iter() {
                visited += walk(&item, depth + 1);
                n += 1;
            }
            assert_eq!(n, a.len(), "aggregate yielded {n} of {}", a.len());
            assert_eq!(a.is_empty(), n == 0);
            visited
        }
        _ => 1,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // A host loop: parse frames off the front until incomplete or an error.
    for _ in 0..64 {
        match resp::parse(rest) {
            Ok(Some((frame, used))) => {
                assert!(
                    used > 0 && used <= rest.len(),
                    "used {used} of {}",
                    rest.len()
                );
                walk(&frame, 0);
                let bytes = &rest[..used];
                // Small frames: every strict prefix is incomplete, the frame re-parses alike.
                if used <= 256 {
                    for cut in 0..used {
                        assert_eq!(
                            resp::parse(&bytes[..cut]),
                            Ok(None),
                            "prefix of {cut}/{used} bytes"
                        );
                    }
                }
                let (again, used2) = resp::parse(bytes).unwrap().unwrap();
                assert_eq!(used2, used);
                assert_eq!(again, frame);
                rest = &rest[used..];
            }
            Ok(None) | Err(_) => break,
        }
    }
});
