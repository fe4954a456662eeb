//! The random value that marks a lock key as ours.

use rand_core::{CryptoRng, RngCore};

/// Random bytes in a token: 128 bits, the Redlock minimum.
pub const TOKEN_BYTES: usize = 16;
/// Length of a token's text form: lowercase hex.
pub const TOKEN_LEN: usize = TOKEN_BYTES * 2;

/// The value written to every instance by one acquire attempt, fresh for every attempt.
///
/// It is 128 bits from a cryptographic RNG, kept as 32 lowercase hex characters so every Redis
/// client, log and JavaScript string handles it as text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token([u8; TOKEN_LEN]);

impl Token {
    /// A fresh token from a cryptographic RNG.
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut raw = [0u8; TOKEN_BYTES];
        rng.fill_bytes(&mut raw);
        Self::from_bytes(raw)
    }

    /// A token from raw random bytes (for hosts that bring their own entropy).
    pub fn from_bytes(raw: [u8; TOKEN_BYTES]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; TOKEN_LEN];
        for (pair, byte) in text.chunks_exact_mut(2).zip(raw) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0x0f)];
        }
        Self(text)
    }

    /// Parses the 32-character hex text form (as stored in Redis).
    pub fn from_hex(text: &[u8]) -> Option<Self> {
        let text: [u8; TOKEN_LEN] = text.try_into().ok()?;
        text.iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
            .then_some(Self(text))
    }

    /// The text form, the exact bytes stored as the key's value.
    pub fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }

    /// The text form as a string.
    pub fn as_str(&self) -> &str {
        // Always ASCII hex: built by `from_bytes` or checked by `from_hex`.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl core::fmt::Debug for Token {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Token({})", self.as_str())
    }
}

impl core::fmt::Display for Token {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let t = Token::from_bytes([0xab; TOKEN_BYTES]);
        assert_eq!(t.as_str(), "abababababababababababababababab");
        assert_eq!(Token::from_hex(t.as_bytes()), Some(t));
        assert_eq!(Token::from_hex(b"xyz"), None);
        assert_eq!(Token::from_hex(&[b'G'; TOKEN_LEN]), None);
    }
}
