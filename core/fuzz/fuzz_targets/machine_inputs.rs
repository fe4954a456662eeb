//! Bytes decoded into a configuration and a script of inputs that drive an `Acquire`, then an
//! `Extend` and a `Release` of any lease it grants, checked by the same model as
//! `tests/properties.rs` (quorum evidence, validity bound, cleanup and its ordering, fresh values,
//! bounded load, clock regression, extend never resurrecting, release confirmation, `Done`
//! terminal, the documented `handle_input` results, every command's argv and RESP encoding).

#![no_main]

#[path = "../../tests/properties/model.rs"]
mod model;

use libfuzzer_sys::fuzz_target;
use model::{Act, Finish, Params, Raw, Scenario, Vote};

/// Answers to request ids not handed out yet are a known core bug (see
/// `known_bug_answer_to_an_undrained_command_counts`); set to `true` once it is fixed.
const GUESSED_IDS: bool = true;

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn gap(&mut self) -> u64 {
        match self.u8() {
            g @ 0..=127 => u64::from(g % 4),
            g @ 128..=223 => u64::from(g % 64),
            224..=249 => u64::from(self.u16()),
            250..=253 => u64::from(self.u32()),
            254 => u64::MAX / 2,
            255 => u64::MAX,
        }
    }

    fn raw(&mut self) -> Raw {
        match self.u8() % 7 {
            0 => Raw::Ok,
            1 => Raw::Nil,
            2 => Raw::Int(i64::from(self.u8() as i8)),
            3 => Raw::Int(self.u64() as i64),
            4 => {
                let len = usize::from(self.u8() % 16);
                Raw::Err((0..len).map(|_| self.u8()).collect())
            }
            5 => Raw::Err(b"NOSCRIPT".to_vec()),
            _ => Raw::Other,
        }
    }

    fn vote(&mut self) -> Vote {
        match self.u8() % 10 {
            0..=3 => Vote::Yes,
            4..=5 => Vote::No,
            6 => Vote::Error(self.u8()),
            7 => Vote::NoScript,
            _ => Vote::Raw(self.raw()),
        }
    }

    fn act(&mut self) -> Act {
        match self.u8() % 16 {
            0..=2 => Act::Drain,
            3 => Act::PollOnce,
            4..=7 => Act::Answer {
                pick: self.u16(),
                vote: self.vote(),
                gap: self.gap(),
            },
            8 => Act::Transport {
                pick: self.u16(),
                gap: self.gap(),
            },
            9 => Act::ToDeadline,
            10 => Act::Tick { gap: self.gap() },
            11 => Act::Reanswer {
                pick: self.u16(),
                vote: self.vote(),
                gap: self.gap(),
            },
            12 => Act::BadInstance {
                extra: self.u8() % 4,
                vote: self.vote(),
                gap: self.gap(),
            },
            13 if GUESSED_IDS => Act::Guess {
                instance: self.u8(),
                ahead: self.u8() % 8,
                vote: self.vote(),
                gap: self.gap(),
            },
            13 => Act::BadRequest {
                instance: self.u8(),
                id: self.u32(),
                vote: self.vote(),
                gap: self.gap(),
            },
            14 => Act::Back {
                by: u64::from(self.u16()),
                how: self.u8(),
            },
            _ => Act::Cancel { gap: self.gap() },
        }
    }

    fn finish(&mut self) -> Finish {
        match self.u8() % 3 {
            0 => Finish::TimeOut,
            1 => Finish::AllYes,
            _ => Finish::AllNo,
        }
    }

    fn acts(&mut self, max: usize) -> Vec<Act> {
        let n = usize::from(self.u8()) % (max + 1);
        let mut acts = Vec::with_capacity(n);
        while acts.len() < n && !self.is_empty() {
            acts.push(self.act());
        }
        acts
    }
}

fn params(b: &mut Bytes<'_>) -> Params {
    let n = 1 + usize::from(b.u8() % 16);
    let ttl = match b.u8() % 4 {
        0 => 3 + u64::from(b.u16() % 200),
        1 => 200 + u64::from(b.u16() % 5_000),
        2 => 5_000 + u64::from(b.u32() % 60_000),
        _ => b.u64(),
    };
    let flags = b.u8();
    let delay = u64::from(b.u16() % 500);
    Params {
        n,
        ttl_ms: ttl,
        drift_ppm: if flags & 1 == 0 {
            10_000
        } else {
            b.u32() % 50_000
        },
        drift_pad_ms: if flags & 2 == 0 {
            2
        } else {
            u64::from(b.u8() % 6)
        },
        timeout_ms: (flags & 4 != 0).then(|| u64::from(b.u32())),
        retry_count: u32::from(b.u8() % 6),
        retry_delay_ms: delay,
        retry_jitter_ms: u64::from(b.u16()) % (delay + 1),
        min_validity_ms: if flags & 8 == 0 {
            0
        } else {
            u64::from(b.u16())
        },
        acquire_deadline_ms: (flags & 16 != 0).then(|| u64::from(b.u16())),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let params = params(&mut b);
    let keys = match b.u8() % 4 {
        0 => (0..1 + b.u8() % 4)
            .map(|_| (0..1 + b.u8() % 8).map(|_| b.u8()).collect())
            .collect(),
        _ => vec![b"orders:42".to_vec()],
    };
    let sc = Scenario {
        params,
        keys,
        seed: b.u64(),
        start: match b.u8() % 4 {
            0 => b.u64(),
            _ => u64::from(b.u16()),
        },
        acquire_finish: b.finish(),
        extend_ttl: (b.u8() % 2 == 0).then(|| u64::from(b.u16())),
        extend_gap: b.gap(),
        extend_finish: b.finish(),
        release_gap: b.gap(),
        release_finish: b.finish(),
        acquire: b.acts(64),
        extend: b.acts(24),
        release: b.acts(24),
    };
    if let Err(e) = model::run_scenario(&sc) {
        panic!("{e}\nscenario: {sc:#?}");
    }
});
