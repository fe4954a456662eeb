//! Commands as data: an argv view and a RESP encoding into the caller's buffer.

use core::fmt;

use crate::resource::Resources;
use crate::script::{Script, ACQUIRE_SCRIPT, EXTEND_SCRIPT, RELEASE_NOTIFY_SCRIPT, RELEASE_SCRIPT};
use crate::token::Token;

/// What a command does on one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// Set the lock keys if absent (`SET NX PX`, or the acquire script for several keys).
    Acquire,
    /// Reset the TTL of keys that still hold our value.
    Extend,
    /// Delete keys that still hold our value.
    Release,
}

/// How a command reaches Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandForm {
    /// `SET key value NX PX ttl` (single-resource acquire).
    Set,
    /// `EVALSHA sha1 numkeys keys… args…`: the script by digest.
    EvalSha,
    /// `EVAL source numkeys keys… args…`: the script in full, after a `NOSCRIPT` reply.
    Eval,
}

/// A decimal number rendered without allocation.
#[derive(Clone, Copy)]
struct Decimal {
    digits: [u8; 20],
    start: u8,
}

impl Decimal {
    fn new(mut v: u64) -> Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            // `v % 10` < 10, so the cast cannot truncate.
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        Self {
            digits,
            // i < 20.
            start: i as u8,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.digits
            .get(usize::from(self.start)..)
            .unwrap_or_default()
    }
}

/// One command for one instance, borrowed from the machine that emitted it.
///
/// Hand it to a Redis client as an argument vector ([`Command::args`], for redis-rs `cmd`,
/// hiredis `redisCommandArgv` or node-redis `sendCommand`), or write it to a socket as RESP
/// ([`Command::encode_resp`]).
///
/// ```
/// use redlock_core::{Command, Resources, Token};
///
/// let keys = Resources::single(b"job:7")?;
/// let value = Token::from_bytes([1; 16]);
/// let cmd = Command::acquire(&keys, &value, 30_000);
/// let argv: Vec<&[u8]> = cmd.args().collect();
/// assert_eq!(argv[0], b"SET");
/// assert_eq!(argv[5], b"30000");
/// let mut buf = [0u8; 128];
/// let n = cmd.encode_resp(&mut buf).unwrap();
/// assert!(buf[..n].starts_with(b"*6\r\n$3\r\nSET\r\n"));
/// # Ok::<(), redlock_core::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct Command<'a> {
    kind: CommandKind,
    form: CommandForm,
    resources: &'a Resources,
    value: &'a Token,
    ttl_ms: u64,
    ttl: Decimal,
    numkeys: Decimal,
    notify: bool,
}

/// The caller's buffer cannot hold the encoded command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall {
    /// The number of bytes the encoding needs.
    pub needed: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "buffer too small: the command needs {} bytes",
            self.needed
        )
    }
}

impl core::error::Error for BufferTooSmall {}

impl<'a> Command<'a> {
    /// The acquire command: `SET … NX PX` for one key, the acquire script for several.
    pub fn acquire(resources: &'a Resources, value: &'a Token, ttl_ms: u64) -> Self {
        let form = if resources.len() == 1 {
            CommandForm::Set
        } else {
            CommandForm::EvalSha
        };
        Self::new(CommandKind::Acquire, form, resources, value, ttl_ms)
    }

    /// The extend command (script, by digest).
    pub fn extend(resources: &'a Resources, value: &'a Token, ttl_ms: u64) -> Self {
        Self::new(
            CommandKind::Extend,
            CommandForm::EvalSha,
            resources,
            value,
            ttl_ms,
        )
    }

    /// The release command (script, by digest).
    pub fn release(resources: &'a Resources, value: &'a Token) -> Self {
        Self::new(
            CommandKind::Release,
            CommandForm::EvalSha,
            resources,
            value,
            0,
        )
    }

    fn new(
        kind: CommandKind,
        form: CommandForm,
        resources: &'a Resources,
        value: &'a Token,
        ttl_ms: u64,
    ) -> Self {
        Self {
            kind,
            form,
            resources,
            value,
            ttl_ms,
            ttl: Decimal::new(ttl_ms),
            numkeys: Decimal::new(resources.len() as u64),
            notify: false,
        }
    }

    /// For a release: announce each deleted key on its release channel
    /// ([`RELEASE_NOTIFY_SCRIPT`]). Other commands are unchanged.
    pub fn with_notification(mut self, notify: bool) -> Self {
        self.notify = notify && self.kind == CommandKind::Release;
        self
    }

    /// The same command sent as a full `EVAL` (what to do after a `NOSCRIPT` reply). A `SET`
    /// stays a `SET`.
    pub fn with_full_script(mut self) -> Self {
        if self.form == CommandForm::EvalSha {
            self.form = CommandForm::Eval;
        }
        self
    }

    /// What the command does.
    pub fn kind(&self) -> CommandKind {
        self.kind
    }

    /// How it is sent.
    pub fn form(&self) -> CommandForm {
        self.form
    }

    /// The script it runs, if it runs one.
    pub fn script(&self) -> Option<&'static Script> {
        match (self.form, self.kind) {
            (CommandForm::Set, _) => None,
            (_, CommandKind::Acquire) => Some(&ACQUIRE_SCRIPT),
            (_, CommandKind::Extend) => Some(&EXTEND_SCRIPT),
            (_, CommandKind::Release) if self.notify => Some(&RELEASE_NOTIFY_SCRIPT),
            (_, CommandKind::Release) => Some(&RELEASE_SCRIPT),
        }
    }

    /// The keys it touches.
    pub fn resources(&self) -> &'a Resources {
        self.resources
    }

    /// The lock value it carries.
    pub fn value(&self) -> &'a Token {
        self.value
    }

    /// The TTL argument in milliseconds (0 for a release, which has none).
    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    /// The number of arguments, the command name included.
    pub fn arg_count(&self) -> usize {
        let keys = self.resources.len();
        match (self.form, self.kind) {
            (CommandForm::Set, _) => 6,
            (_, CommandKind::Release) => 3 + keys + 1,
            (_, _) => 3 + keys + 2,
        }
    }

    /// The `i`-th argument (0 is the command name).
    pub fn arg(&self, i: usize) -> Option<&[u8]> {
        if self.form == CommandForm::Set {
            return match i {
                0 => Some(b"SET"),
                1 => self.resources.get(0),
                2 => Some(self.value.as_bytes()),
                3 => Some(b"NX"),
                4 => Some(b"PX"),
                5 => Some(self.ttl.as_bytes()),
                _ => None,
            };
        }
        let keys = self.resources.len();
        match i {
            0 if self.form == CommandForm::EvalSha => Some(b"EVALSHA"),
            0 => Some(b"EVAL"),
            1 => {
                let script = self.script()?;
                Some(match self.form {
                    CommandForm::Eval => script.source.as_bytes(),
                    _ => script.sha1.as_bytes(),
                })
            }
            2 => Some(self.numkeys.as_bytes()),
            i if i < 3 + keys => self.resources.get(i - 3),
            i if i == 3 + keys => Some(self.value.as_bytes()),
            i if i == 4 + keys && self.kind != CommandKind::Release => Some(self.ttl.as_bytes()),
            _ => None,
        }
    }

    /// The arguments in order, the command name first.
    pub fn args(&self) -> Args<'_> {
        Args { cmd: self, next: 0 }
    }

    /// The exact length of [`Command::encode_resp`]'s output.
    pub fn resp_len(&self) -> usize {
        let header = 1 + Decimal::new(self.arg_count() as u64).as_bytes().len() + 2;
        self.args().fold(header, |acc, a| {
            acc + 1 + Decimal::new(a.len() as u64).as_bytes().len() + 2 + a.len() + 2
        })
    }

    /// Writes the command as a RESP array of bulk strings into `buf` and returns the number of
    /// bytes written. Nothing is written when the buffer is too small.
    pub fn encode_resp(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let needed = self.resp_len();
        let Some(out) = buf.get_mut(..needed) else {
            return Err(BufferTooSmall { needed });
        };
        let mut w = Writer { out, pos: 0 };
        w.put(b"*");
        w.put(Decimal::new(self.arg_count() as u64).as_bytes());
        w.put(b"\r\n");
        for a in self.args() {
            w.put(b"$");
            w.put(Decimal::new(a.len() as u64).as_bytes());
            w.put(b"\r\n");
            w.put(a);
            w.put(b"\r\n");
        }
        Ok(w.pos)
    }
}

struct Writer<'b> {
    out: &'b mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        if let Some(dst) = self.out.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
        }
        self.pos = end;
    }
}

/// Iterator over a command's arguments.
#[derive(Debug, Clone)]
pub struct Args<'c> {
    cmd: &'c Command<'c>,
    next: usize,
}

impl<'c> Iterator for Args<'c> {
    type Item = &'c [u8];

    fn next(&mut self) -> Option<Self::Item> {
        let a = self.cmd.arg(self.next)?;
        self.next += 1;
        Some(a)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.cmd.arg_count().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Args<'_> {}

impl fmt::Debug for Command<'_> {
    /// Shows the command as `redis-cli` would, with the script body elided.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if i == 1 && self.form == CommandForm::Eval {
                f.write_str("<script>")?;
                continue;
            }
            match core::str::from_utf8(a) {
                Ok(s) => f.write_str(s)?,
                Err(_) => write!(f, "{a:?}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of<'a>(c: &'a Command<'a>) -> heapless::Vec<&'a [u8], 16> {
        c.args().collect()
    }

    #[test]
    fn single_acquire_is_set_nx_px() {
        let keys = Resources::single(b"k").unwrap();
        let v = Token::from_bytes([0; 16]);
        let c = Command::acquire(&keys, &v, 1000);
        assert_eq!(
            args_of(&c),
            [&b"SET"[..], b"k", v.as_bytes(), b"NX", b"PX", b"1000"]
        );
        assert_eq!(c.script(), None);
        assert_eq!(c.with_full_script().form(), CommandForm::Set);
        assert_eq!(c.ttl_ms(), 1000);
    }

    #[test]
    fn multi_acquire_uses_script() {
        let keys = Resources::from_keys(&[b"a", b"b"]).unwrap();
        let v = Token::from_bytes([0; 16]);
        let c = Command::acquire(&keys, &v, 5);
        assert_eq!(
            args_of(&c),
            [
                &b"EVALSHA"[..],
                ACQUIRE_SCRIPT.sha1.as_bytes(),
                b"2",
                b"a",
                b"b",
                v.as_bytes(),
                b"5"
            ]
        );
        let full = c.with_full_script();
        assert_eq!(full.arg(0), Some(&b"EVAL"[..]));
        assert_eq!(full.arg(1), Some(ACQUIRE_SCRIPT.source.as_bytes()));
    }

    #[test]
    fn release_has_no_ttl() {
        let keys = Resources::single(b"a").unwrap();
        let v = Token::from_bytes([0; 16]);
        let c = Command::release(&keys, &v);
        assert_eq!(c.arg_count(), 5);
        assert_eq!(args_of(&c).len(), 5);
        assert_eq!(c.arg(5), None);
    }

    #[test]
    fn resp_encoding_is_exact() {
        let keys = Resources::single(b"key").unwrap();
        let v = Token::from_bytes([0xff; 16]);
        let c = Command::extend(&keys, &v, 42);
        let mut buf = [0u8; 256];
        let n = c.encode_resp(&mut buf).unwrap();
        assert_eq!(n, c.resp_len());
        let expected_head = b"*6\r\n$7\r\nEVALSHA\r\n$40\r\n";
        assert!(buf[..n].starts_with(expected_head));
        assert!(buf[..n].ends_with(b"$2\r\n42\r\n"));
        let mut small = [0u8; 10];
        assert_eq!(c.encode_resp(&mut small), Err(BufferTooSmall { needed: n }));
        assert_eq!(small, [0u8; 10]);
    }

    #[test]
    fn decimal_renders_extremes() {
        assert_eq!(Decimal::new(0).as_bytes(), b"0");
        assert_eq!(Decimal::new(u64::MAX).as_bytes(), b"18446744073709551615");
    }
}
