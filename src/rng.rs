//! The randomness the core draws lock values and jitter from.

use rand_core::{CryptoRng, RngCore};

/// The thread-local CSPRNG of `rand` (ChaCha, seeded from the OS and reseeded periodically).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemRng;

impl RngCore for SystemRng {
    fn next_u32(&mut self) -> u32 {
        rand::thread_rng().next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        rand::thread_rng().next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand::thread_rng().fill_bytes(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        rand::thread_rng().try_fill_bytes(dest)
    }
}

impl CryptoRng for SystemRng {}
