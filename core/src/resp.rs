//! A RESP2/RESP3 reply parser for hosts that only have a socket.
//!
//! [`parse`] looks at the start of a receive buffer and returns either one complete frame and
//! the number of bytes it used, `Ok(None)` when more bytes are needed, or an error when the
//! bytes cannot be RESP (the connection should then be closed: its stream is out of sync).
//! Frames borrow from the buffer; nothing is copied or allocated.
//!
//! ```
//! use redlock_core::resp::{parse, Frame};
//!
//! let buf = b"+OK\r\n:1\r\n$-1\r\n";
//! let (frame, used) = parse(buf)?.unwrap();
//! assert_eq!(frame, Frame::Simple(b"OK"));
//! let (frame, _) = parse(&buf[used..])?.unwrap();
//! assert_eq!(frame, Frame::Integer(1));
//! assert_eq!(parse(b"$5\r\nhel")?, None); // incomplete: read more
//! # Ok::<(), redlock_core::resp::ParseError>(())
//! ```

use core::fmt;

/// The deepest nesting of aggregates the parser accepts.
pub const MAX_DEPTH: usize = 16;
/// The longest simple line (status, error, number) the parser waits for.
pub const MAX_LINE: usize = 64 * 1024;
/// The largest bulk string the parser accepts (Redis's own limit).
pub const MAX_BULK: usize = 512 * 1024 * 1024;
/// The most elements an aggregate may announce.
pub const MAX_ELEMENTS: usize = 1 << 24;

/// One RESP value, borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Frame<'a> {
    /// `+…`: a status such as `OK`.
    Simple(&'a [u8]),
    /// `-…`: an error reply, e.g. `NOSCRIPT No matching script`.
    Error(&'a [u8]),
    /// `:…`: an integer.
    Integer(i64),
    /// `$…`: a bulk string.
    Bulk(&'a [u8]),
    /// `$-1`, `*-1` (RESP2) or `_` (RESP3): no value.
    Null,
    /// `#t` / `#f` (RESP3).
    Boolean(bool),
    /// `,…` (RESP3): a double, as its text.
    Double(&'a [u8]),
    /// `(…` (RESP3): a big number, as its text.
    BigNumber(&'a [u8]),
    /// `!…` (RESP3): an error as a bulk string.
    BlobError(&'a [u8]),
    /// `=…` (RESP3): verbatim text, the `txt:` prefix included.
    Verbatim(&'a [u8]),
    /// `*…`: an array.
    Array(Aggregate<'a>),
    /// `%…` (RESP3): a map; its elements alternate key, value.
    Map(Aggregate<'a>),
    /// `~…` (RESP3): a set.
    Set(Aggregate<'a>),
    /// `>…` (RESP3): an out-of-band push (pub/sub message, invalidation).
    Push(Aggregate<'a>),
}

/// The elements of an array, map, set or push, parsed lazily from the validated bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Aggregate<'a> {
    body: &'a [u8],
    len: usize,
}

impl<'a> Aggregate<'a> {
    /// The number of elements (for a map: twice the number of pairs).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements in order.
    pub fn iter(&self) -> Elements<'a> {
        Elements {
            rest: self.body,
            left: self.len,
        }
    }
}

impl fmt::Debug for Aggregate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over an aggregate's elements.
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        if self.left == 0 {
            return None;
        }
        // The body was validated when the aggregate was parsed, so this always succeeds.
        let (frame, used) = parse_at(self.rest, 1).ok()??;
        self.rest = self.rest.get(used..)?;
        self.left -= 1;
        Some(frame)
    }
}

/// Bytes that cannot be RESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The first byte is not a RESP type marker.
    UnknownType(u8),
    /// A length or integer is not a valid number.
    BadNumber,
    /// A line or bulk string is not terminated by CRLF.
    MissingCrlf,
    /// A length is negative (other than the -1 of a RESP2 null) or above the limits.
    BadLength,
    /// Aggregates nest deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A line is longer than [`MAX_LINE`] without a CRLF.
    LineTooLong,
    /// A boolean is neither `t` nor `f`.
    BadBoolean,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownType(b) => write!(f, "unknown resp type byte 0x{b:02x}"),
            Self::BadNumber => f.write_str("malformed number in resp"),
            Self::MissingCrlf => f.write_str("resp line not terminated by crlf"),
            Self::BadLength => f.write_str("invalid resp length"),
            Self::TooDeep => f.write_str("resp aggregates nested too deeply"),
            Self::LineTooLong => f.write_str("resp line too long"),
            Self::BadBoolean => f.write_str("malformed resp boolean"),
        }
    }
}

impl core::error::Error for ParseError {}

/// Parses one frame from the start of `buf`: `Ok(Some((frame, bytes_used)))`, `Ok(None)` when
/// the buffer holds only part of a frame, or an error for bytes that are not RESP.
///
/// RESP3 attributes (`|`) are skipped: the frame they annotate is returned, and the bytes used
/// include the attribute.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, ParseError> {
    parse_at(buf, 0)
}

type Parsed<'a> = Result<Option<(Frame<'a>, usize)>, ParseError>;

fn parse_at(buf: &[u8], depth: usize) -> Parsed<'_> {
    if depth > MAX_DEPTH {
        return Err(ParseError::TooDeep);
    }
    let Some((&marker, _)) = buf.split_first() else {
        return Ok(None);
    };
    let Some((line, after_line)) = line(buf)? else {
        return Ok(None);
    };
    let frame = match marker {
        b'+' => Frame::Simple(line),
        b'-' => Frame::Error(line),
        b':' => Frame::Integer(integer(line)?),
        b'_' => {
            if !line.is_empty() {
                return Err(ParseError::BadLength);
            }
            Frame::Null
        }
        b'#' => match line {
            b"t" => Frame::Boolean(true),
            b"f" => Frame::Boolean(false),
            _ => return Err(ParseError::BadBoolean),
        },
        b',' => Frame::Double(line),
        b'(' => Frame::BigNumber(line),
        b'$' | b'!' | b'=' => {
            let len = integer(line)?;
            if len == -1 && marker == b'$' {
                return Ok(Some((Frame::Null, after_line)));
            }
            let len = usize::try_from(len).map_err(|_| ParseError::BadLength)?;
            if len > MAX_BULK {
                return Err(ParseError::BadLength);
            }
            let end = after_line + len;
            let Some(tail) = buf.get(end..end + 2) else {
                return Ok(None);
            };
            if tail != b"\r\n" {
                return Err(ParseError::MissingCrlf);
            }
            let data = buf.get(after_line..end).ok_or(ParseError::BadLength)?;
            let frame = match marker {
                b'$' => Frame::Bulk(data),
                b'!' => Frame::BlobError(data),
                _ => Frame::Verbatim(data),
            };
            return Ok(Some((frame, end + 2)));
        }
        b'*' | b'%' | b'~' | b'>' | b'|' => {
            let count = integer(line)?;
            if count == -1 && marker == b'*' {
                return Ok(Some((Frame::Null, after_line)));
            }
            let count = usize::try_from(count).map_err(|_| ParseError::BadLength)?;
            let elements = if matches!(marker, b'%' | b'|') {
                count.checked_mul(2).ok_or(ParseError::BadLength)?
            } else {
                count
            };
            if elements > MAX_ELEMENTS {
                return Err(ParseError::BadLength);
            }
            let mut pos = after_line;
            for _ in 0..elements {
                let rest = buf.get(pos..).unwrap_or_default();
                let Some((_, used)) = parse_at(rest, depth + 1)? else {
                    return Ok(None);
                };
                pos += used;
            }
            let agg = Aggregate {
                body: buf.get(after_line..pos).unwrap_or_default(),
                len: elements,
            };
            let frame = match marker {
                b'*' => Frame::Array(agg),
                b'%' => Frame::Map(agg),
                b'~' => Frame::Set(agg),
                b'>' => Frame::Push(agg),
                _ => {
                    // An attribute annotates the next frame: skip it and return that frame.
                    let rest = buf.get(pos..).unwrap_or_default();
                    let Some((frame, used)) = parse_at(rest, depth + 1)? else {
                        return Ok(None);
                    };
                    return Ok(Some((frame, pos + used)));
                }
            };
            return Ok(Some((frame, pos)));
        }
        other => return Err(ParseError::UnknownType(other)),
    };
    Ok(Some((frame, after_line)))
}

/// The first line after the type byte, and the offset just past its CRLF.
fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, ParseError> {
    let body = buf.get(1..).unwrap_or_default();
    match body.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            let line = body.get(..nl).unwrap_or_default();
            let Some(line) = line.strip_suffix(b"\r") else {
                return Err(ParseError::MissingCrlf);
            };
            if line.len() > MAX_LINE {
                return Err(ParseError::LineTooLong);
            }
            Ok(Some((line, 1 + nl + 1)))
        }
        None if body.len() > MAX_LINE => Err(ParseError::LineTooLong),
        None => Ok(None),
    }
}

fn integer(text: &[u8]) -> Result<i64, ParseError> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(ParseError::BadNumber);
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(ParseError::BadNumber);
        }
        let digit = i64::from(d - b'0');
        v = v
            .checked_mul(10)
            .and_then(|v| {
                if negative {
                    v.checked_sub(digit)
                } else {
                    v.checked_add(digit)
                }
            })
            .ok_or(ParseError::BadNumber)?;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(buf: &[u8]) -> Frame<'_> {
        let (f, used) = parse(buf).unwrap().unwrap();
        assert_eq!(used, buf.len(), "whole buffer consumed");
        f
    }

    #[test]
    fn scalars() {
        assert_eq!(one(b"+OK\r\n"), Frame::Simple(b"OK"));
        assert_eq!(one(b"-ERR x\r\n"), Frame::Error(b"ERR x"));
        assert_eq!(one(b":-42\r\n"), Frame::Integer(-42));
        assert_eq!(one(b":9223372036854775807\r\n"), Frame::Integer(i64::MAX));
        assert_eq!(one(b":-9223372036854775808\r\n"), Frame::Integer(i64::MIN));
        assert_eq!(one(b"$3\r\nfoo\r\n"), Frame::Bulk(b"foo"));
        assert_eq!(one(b"$0\r\n\r\n"), Frame::Bulk(b""));
        assert_eq!(one(b"$-1\r\n"), Frame::Null);
        assert_eq!(one(b"*-1\r\n"), Frame::Null);
        assert_eq!(one(b"_\r\n"), Frame::Null);
        assert_eq!(one(b"#t\r\n"), Frame::Boolean(true));
        assert_eq!(one(b",1.5\r\n"), Frame::Double(b"1.5"));
        assert_eq!(one(b"(123\r\n"), Frame::BigNumber(b"123"));
        assert_eq!(one(b"!3\r\nERR\r\n"), Frame::BlobError(b"ERR"));
        assert_eq!(one(b"=8\r\ntxt:abcd\r\n"), Frame::Verbatim(b"txt:abcd"));
    }

    #[test]
    fn binary_bulk_may_contain_crlf() {
        assert_eq!(one(b"$4\r\n\r\n\r\n\r\n"), Frame::Bulk(b"\r\n\r\n"));
    }

    #[test]
    fn aggregates_and_attributes() {
        let Frame::Array(a) = one(b"*3\r\n:1\r\n*1\r\n+x\r\n$-1\r\n") else {
            panic!("array expected")
        };
        let items: heapless::Vec<Frame<'_>, 4> = a.iter().collect();
        assert_eq!(items[0], Frame::Integer(1));
        assert!(matches!(items[1], Frame::Array(inner) if inner.len() == 1));
        assert_eq!(items[2], Frame::Null);
        let Frame::Map(m) = one(b"%1\r\n+k\r\n:2\r\n") else {
            panic!("map expected")
        };
        assert_eq!(m.len(), 2);
        assert_eq!(one(b"|1\r\n+ttl\r\n:3\r\n:7\r\n"), Frame::Integer(7));
        assert!(matches!(one(b">2\r\n+a\r\n+b\r\n"), Frame::Push(p) if p.len() == 2));
        assert!(matches!(one(b"~0\r\n"), Frame::Set(s) if s.is_empty()));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let full = b"*2\r\n$5\r\nhello\r\n%1\r\n+a\r\n:1\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(None), "prefix of {cut} bytes");
        }
        assert!(parse(full).unwrap().is_some());
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(parse(b"?x\r\n"), Err(ParseError::UnknownType(b'?')));
        assert_eq!(parse(b":12a\r\n"), Err(ParseError::BadNumber));
        assert_eq!(parse(b":\r\n"), Err(ParseError::BadNumber));
        assert_eq!(
            parse(b":99999999999999999999\r\n"),
            Err(ParseError::BadNumber)
        );
        assert_eq!(parse(b"+OK\n"), Err(ParseError::MissingCrlf));
        assert_eq!(parse(b"$3\r\nfooXY"), Err(ParseError::MissingCrlf));
        assert_eq!(parse(b"$-2\r\n"), Err(ParseError::BadLength));
        assert_eq!(parse(b"*-2\r\n"), Err(ParseError::BadLength));
        assert_eq!(parse(b"#x\r\n"), Err(ParseError::BadBoolean));
        assert_eq!(parse(b"_x\r\n"), Err(ParseError::BadLength));
        assert_eq!(parse(b"$999999999999\r\n"), Err(ParseError::BadLength));
    }

    #[test]
    fn nesting_is_bounded() {
        let mut deep = [0u8; 4 * (MAX_DEPTH + 2) + 4];
        let mut i = 0;
        for _ in 0..MAX_DEPTH + 2 {
            deep[i..i + 4].copy_from_slice(b"*1\r\n");
            i += 4;
        }
        deep[i..i + 4].copy_from_slice(b":1\r\n");
        assert_eq!(parse(&deep), Err(ParseError::TooDeep));
    }

    #[test]
    fn overlong_line_is_refused() {
        let mut buf = [b'a'; MAX_LINE + 3];
        buf[0] = b'+';
        assert_eq!(parse(&buf), Err(ParseError::LineTooLong));
    }
}
