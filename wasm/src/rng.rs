//! Randomness for lock values and retry jitter, from `crypto.getRandomValues` (via `getrandom`).
//!
//! One module-wide ChaCha20 generator, seeded from the host's cryptographic source when the
//! first acquire starts and reseeded every [`RESEED_AFTER`] draws. Asking the host costs
//! microseconds in Node, and keying a generator per acquire costs more than the rest of the
//! decision; drawing 16 bytes from a shared, buffered CSPRNG costs almost nothing.

use std::cell::RefCell;

use rand_chacha::rand_core::{CryptoRng, Error, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Draws served from one seed of the host's source before asking it again.
const RESEED_AFTER: u32 = 4096;

thread_local! {
    static SHARED: RefCell<Option<(ChaCha20Rng, u32)>> = const { RefCell::new(None) };
}

fn from_host() -> Result<ChaCha20Rng, getrandom::Error> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)?;
    Ok(ChaCha20Rng::from_seed(seed))
}

/// Seeds the shared generator if it is not yet: the only place a missing source is an error.
pub(crate) fn ensure_seeded() -> Result<(), getrandom::Error> {
    SHARED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) if slot.is_none() => {
            *slot = Some((from_host()?, 0));
            Ok(())
        }
        _ => Ok(()),
    })
}

/// A handle on the shared generator, for the acquire machines.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SharedRng;

impl RngCore for SharedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        SHARED.with(|cell| {
            // Neither branch below is reachable: `ensure_seeded` ran before any machine could
            // draw, and nothing re-enters while a draw is in progress. They fall back to the
            // host's source rather than panic.
            let Ok(mut slot) = cell.try_borrow_mut() else {
                let _ = getrandom::getrandom(dest);
                return;
            };
            let reseed = !matches!(slot.as_ref(), Some((_, uses)) if *uses < RESEED_AFTER);
            if reseed {
                // A failed reseed keeps the current generator: still unpredictable.
                if let Ok(fresh) = from_host() {
                    *slot = Some((fresh, 0));
                }
            }
            match slot.as_mut() {
                Some((rng, uses)) => {
                    *uses += 1;
                    rng.fill_bytes(dest);
                }
                None => {
                    let _ = getrandom::getrandom(dest);
                }
            }
        });
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// The shared generator is ChaCha20 seeded from a cryptographic source.
impl CryptoRng for SharedRng {}
