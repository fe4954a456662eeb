//! `redlock_reply`: what an instance answered, as C hands it in; and a RESP parser for hosts
//! that only have a socket.

use redlock_core::resp;
use redlock_core::Reply;

use crate::boundary::{check_out, ffi_result, try_slice, write_out};
use crate::result::redlock_result;

/// The kind of a `redlock_reply`. 0 is not a kind, so a zero-initialised reply is refused with
/// `REDLOCK_RESULT_INVALID_PARAMETER` rather than read as something.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum redlock_reply_kind {
    /// The status reply `OK` (hiredis: `REDIS_REPLY_STATUS` with text "OK").
    Ok = 1,
    /// No value: a RESP2 null bulk string or array, a RESP3 null (hiredis: `REDIS_REPLY_NIL`).
    Nil = 2,
    /// An integer, in `integer` (hiredis: `REDIS_REPLY_INTEGER`).
    Integer = 3,
    /// An error reply; its full text (e.g. "NOSCRIPT No matching script...") in `text`
    /// (hiredis: `REDIS_REPLY_ERROR`).
    Error = 4,
    /// Anything else: another status, a string, an array. Never counts as a success.
    Other = 5,
}

/// One reply from one instance. Filled by the caller (from its Redis client's reply) or by
/// `redlock_resp_parse`.
///
/// `kind` holds a `redlock_reply_kind` value. `integer` is read only for
/// `REDLOCK_REPLY_KIND_INTEGER`; `text` / `text_len` only for `REDLOCK_REPLY_KIND_ERROR`
/// (not NUL-terminated; NULL is allowed with length 0). The library does not keep the pointer
/// past the call it is passed to.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct redlock_reply {
    /// A `redlock_reply_kind` value.
    pub kind: u32,
    /// The integer of a `REDLOCK_REPLY_KIND_INTEGER` reply.
    pub integer: i64,
    /// The error text of a `REDLOCK_REPLY_KIND_ERROR` reply.
    pub text: *const u8,
    /// The length of `text` in bytes.
    pub text_len: usize,
}

impl redlock_reply {
    /// The reply as the core reads it, borrowing the caller's text.
    ///
    /// # Safety
    /// For an error reply, a non-NULL `text` must be valid for `text_len` bytes for `'a`.
    pub(crate) unsafe fn as_core<'a>(&self) -> Result<Reply<'a>, redlock_result> {
        Ok(match self.kind {
            k if k == redlock_reply_kind::Ok as u32 => Reply::Ok,
            k if k == redlock_reply_kind::Nil as u32 => Reply::Nil,
            k if k == redlock_reply_kind::Integer as u32 => Reply::Integer(self.integer),
            // SAFETY: per the caller.
            k if k == redlock_reply_kind::Error as u32 => {
                Reply::Error(unsafe { try_slice(self.text, self.text_len) }?)
            }
            k if k == redlock_reply_kind::Other as u32 => Reply::Other,
            _ => return Err(redlock_result::InvalidParameter),
        })
    }
}

/// Parses the first complete RESP2/RESP3 reply at the start of `buf` (the bytes received from
/// one connection), for hosts that talk to Redis over a plain socket.
///
/// On `REDLOCK_RESULT_OK`, `*reply_out` is the reply (an error's `text` points into `buf`, so
/// keep `buf` until the reply has been fed) and `*used_out` the number of bytes it took: drop
/// them from the buffer and parse again for the next reply.
///
/// Errors: `REDLOCK_RESULT_INCOMPLETE` (no complete reply yet: read more and call again),
/// `REDLOCK_RESULT_PROTOCOL_ERROR` (not RESP: the stream is out of sync, close the connection
/// and feed `redlock_op_handle_transport_error` for its requests),
/// `REDLOCK_RESULT_NULL_PARAMETER`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn redlock_resp_parse(
    buf: *const u8,
    len: usize,
    reply_out: *mut redlock_reply,
    used_out: *mut usize,
) -> redlock_result {
    ffi_result! {
        // SAFETY: the caller provides `len` readable bytes at `buf`.
        let bytes = unsafe { try_slice(buf, len) }?;
        let reply_out = check_out(reply_out)?;
        let used_out = check_out(used_out)?;
        let (frame, used) = match resp::parse(bytes) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Err(redlock_result::Incomplete),
            Err(_) => return Err(redlock_result::ProtocolError),
        };
        let (kind, integer, text): (_, _, &[u8]) = match Reply::from_frame(&frame) {
            Reply::Ok => (redlock_reply_kind::Ok, 0, &[]),
            Reply::Nil => (redlock_reply_kind::Nil, 0, &[]),
            Reply::Integer(i) => (redlock_reply_kind::Integer, i, &[]),
            Reply::Error(t) => (redlock_reply_kind::Error, 0, t),
            Reply::Other => (redlock_reply_kind::Other, 0, &[]),
        };
        let reply = redlock_reply {
            kind: kind as u32,
            integer,
            text: if text.is_empty() { std::ptr::null() } else { text.as_ptr() },
            text_len: text.len(),
        };
        // SAFETY: both checked non-NULL; the caller provides writable pointers.
        unsafe {
            write_out(reply_out, reply);
            write_out(used_out, used);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<(redlock_reply, usize), redlock_result> {
        let mut reply = redlock_reply {
            kind: 0,
            integer: 0,
            text: std::ptr::null(),
            text_len: 0,
        };
        let mut used = 0;
        match unsafe { redlock_resp_parse(bytes.as_ptr(), bytes.len(), &mut reply, &mut used) } {
            redlock_result::Ok => Ok((reply, used)),
            e => Err(e),
        }
    }

    #[test]
    fn parses_the_replies_redlock_needs() {
        let (r, used) = parse(b"+OK\r\n:1\r\n").unwrap();
        assert_eq!((r.kind, used), (redlock_reply_kind::Ok as u32, 5));
        let (r, _) = parse(b":-3\r\n").unwrap();
        assert_eq!(
            (r.kind, r.integer),
            (redlock_reply_kind::Integer as u32, -3)
        );
        let (r, _) = parse(b"$-1\r\n").unwrap();
        assert_eq!(r.kind, redlock_reply_kind::Nil as u32);
        let (r, _) = parse(b"-NOSCRIPT x\r\n").unwrap();
        assert_eq!(r.kind, redlock_reply_kind::Error as u32);
        let text = unsafe { std::slice::from_raw_parts(r.text, r.text_len) };
        assert_eq!(text, b"NOSCRIPT x");
        let (r, _) = parse(b"$2\r\nhi\r\n").unwrap();
        assert_eq!(r.kind, redlock_reply_kind::Other as u32);
    }

    #[test]
    fn incomplete_and_garbage_are_told_apart() {
        assert_eq!(parse(b"+O").unwrap_err(), redlock_result::Incomplete);
        assert_eq!(parse(b"").unwrap_err(), redlock_result::Incomplete);
        assert_eq!(
            parse(b"?what\r\n").unwrap_err(),
            redlock_result::ProtocolError
        );
    }
}
