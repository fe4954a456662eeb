//! A minimal blocking RESP2 client over [`std::net::TcpStream`].
//!
//! It is meant for test assertions (does a key exist, how many keys are left), not for
//! production use. It speaks RESP2 only and plain TCP only (no TLS).

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::error::{Error, Result};

/// Largest bulk string or array the client accepts (guards against garbage lengths).
const MAX_LEN: i64 = 512 * 1024 * 1024;

/// A RESP2 value.
///
/// A top-level error reply is returned as `Err(Error::Server(..))` by
/// [`RespConn::command`]; errors nested inside an array (e.g. in an `EXEC` reply) are kept
/// as [`Value::Error`].
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// A null bulk string (`$-1`) or null array (`*-1`).
    Nil,
    /// An integer reply (`:n`).
    Int(i64),
    /// A simple string reply (`+OK`, `+PONG`).
    Status(String),
    /// A bulk string reply.
    Bulk(Vec<u8>),
    /// An array reply.
    Array(Vec<Value>),
    /// An error reply nested inside an array.
    Error(String),
}

impl Value {
    /// True for [`Value::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// The integer of a [`Value::Int`].
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The bytes of a [`Value::Bulk`] or [`Value::Status`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Status(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The text of a [`Value::Bulk`] (if valid UTF-8) or [`Value::Status`].
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The elements of a [`Value::Array`].
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// True when this is the simple string `OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Value::Status(s) if s == "OK")
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("Nil"),
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Status(s) => write!(f, "Status({s:?})"),
            Value::Bulk(b) => write!(f, "Bulk({:?})", String::from_utf8_lossy(b)),
            Value::Array(a) => f.debug_tuple("Array").field(a).finish(),
            Value::Error(e) => write!(f, "Error({e:?})"),
        }
    }
}

/// Encode `argv` as a RESP2 array of bulk strings.
pub(crate) fn encode_command(argv: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + argv.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", argv.len()).as_bytes());
    for arg in argv {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn read_line(r: &mut impl BufRead) -> Result<Vec<u8>> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed by peer",
        )));
    }
    if !line.ends_with(b"\r\n") {
        if !line.ends_with(b"\n") {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by peer in the middle of a reply",
            )));
        }
        return Err(Error::Protocol(format!(
            "line not terminated by CRLF: {:?}",
            String::from_utf8_lossy(&line)
        )));
    }
    line.truncate(line.len() - 2);
    if line.is_empty() {
        return Err(Error::Protocol("empty line".into()));
    }
    Ok(line)
}

fn parse_int(bytes: &[u8]) -> Result<i64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Protocol(format!("bad integer {:?}", String::from_utf8_lossy(bytes))))
}

/// Read one RESP2 value (nested errors are kept as [`Value::Error`]).
pub(crate) fn read_value(r: &mut impl BufRead) -> Result<Value> {
    let line = read_line(r)?;
    let body = &line[1..];
    match line[0] {
        b'+' => Ok(Value::Status(String::from_utf8_lossy(body).into_owned())),
        b'-' => Ok(Value::Error(String::from_utf8_lossy(body).into_owned())),
        b':' => Ok(Value::Int(parse_int(body)?)),
        b'$' => {
            let len = parse_int(body)?;
            if len < 0 {
                return Ok(Value::Nil);
            }
            if len > MAX_LEN {
                return Err(Error::Protocol(format!("bulk length {len} too large")));
            }
            let mut buf = vec![0u8; len as usize + 2];
            r.read_exact(&mut buf)?;
            if &buf[len as usize..] != b"\r\n" {
                return Err(Error::Protocol("bulk string not terminated by CRLF".into()));
            }
            buf.truncate(len as usize);
            Ok(Value::Bulk(buf))
        }
        b'*' => {
            let len = parse_int(body)?;
            if len < 0 {
                return Ok(Value::Nil);
            }
            if len > MAX_LEN {
                return Err(Error::Protocol(format!("array length {len} too large")));
            }
            let mut items = Vec::with_capacity(len.min(1024) as usize);
            for _ in 0..len {
                items.push(read_value(r)?);
            }
            Ok(Value::Array(items))
        }
        other => Err(Error::Protocol(format!(
            "unexpected RESP type byte {:?} (only RESP2 is supported)",
            other as char
        ))),
    }
}

/// A blocking RESP2 connection (plain TCP, no TLS).
///
/// After any error (timeout, protocol error) the connection state is unknown: drop it and
/// open a new one.
pub struct RespConn {
    reader: BufReader<TcpStream>,
    peer: SocketAddr,
}

impl fmt::Debug for RespConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RespConn")
            .field("peer", &self.peer)
            .finish()
    }
}

impl RespConn {
    /// Connect to `addr`; `timeout` bounds the connect and every later read and write.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<RespConn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(RespConn {
            reader: BufReader::new(stream),
            peer: addr,
        })
    }

    /// The address this connection was opened to.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Change the read and write timeout of later commands (`None` = block forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        let s = self.reader.get_ref();
        s.set_read_timeout(timeout)?;
        s.set_write_timeout(timeout)?;
        Ok(())
    }

    /// Send `AUTH [user] password`. `user = None` is the `requirepass` form.
    pub fn auth(&mut self, user: Option<&str>, password: &str) -> Result<()> {
        let reply = match user {
            Some(u) => self.command(&[b"AUTH", u.as_bytes(), password.as_bytes()])?,
            None => self.command(&[b"AUTH", password.as_bytes()])?,
        };
        if reply.is_ok() {
            Ok(())
        } else {
            Err(Error::Protocol(format!("unexpected AUTH reply {reply:?}")))
        }
    }

    /// Send one command (`argv[0]` is the command name) and read its reply.
    ///
    /// An error reply is returned as `Err(Error::Server(message))`.
    pub fn command(&mut self, argv: &[&[u8]]) -> Result<Value> {
        self.send(argv)?;
        self.read_reply()
    }

    /// [`RespConn::command`] with string arguments.
    pub fn command_str(&mut self, argv: &[&str]) -> Result<Value> {
        let argv: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        self.command(&argv)
    }

    /// Write one command without reading its reply (for pipelining; pair with
    /// [`RespConn::read_reply`]).
    pub fn send(&mut self, argv: &[&[u8]]) -> Result<()> {
        let buf = encode_command(argv);
        let s = self.reader.get_mut();
        s.write_all(&buf)?;
        s.flush()?;
        Ok(())
    }

    /// Read one reply; a top-level error reply becomes `Err(Error::Server(..))`.
    pub fn read_reply(&mut self) -> Result<Value> {
        match read_value(&mut self.reader)? {
            Value::Error(msg) => Err(Error::Server(msg)),
            v => Ok(v),
        }
    }

    /// `PING`; succeeds when the server answers `PONG`.
    pub fn ping(&mut self) -> Result<()> {
        match self.command(&[b"PING"])? {
            Value::Status(s) if s == "PONG" => Ok(()),
            other => Err(Error::Protocol(format!("unexpected PING reply {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn parse(bytes: &[u8]) -> Result<Value> {
        read_value(&mut Cursor::new(bytes.to_vec()))
    }

    #[test]
    fn encodes() {
        assert_eq!(
            encode_command(&[b"SET", b"k", b""]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn parses() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Value::Status("OK".into()));
        assert_eq!(parse(b":-12\r\n").unwrap(), Value::Int(-12));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Value::Nil);
        assert_eq!(parse(b"*-1\r\n").unwrap(), Value::Nil);
        assert_eq!(
            parse(b"$4\r\na\r\nb\r\n").unwrap(),
            Value::Bulk(b"a\r\nb".to_vec())
        );
        assert_eq!(
            parse(b"*3\r\n$1\r\nx\r\n:1\r\n-ERR no\r\n").unwrap(),
            Value::Array(vec![
                Value::Bulk(b"x".to_vec()),
                Value::Int(1),
                Value::Error("ERR no".into())
            ])
        );
        assert!(matches!(parse(b"%1\r\n"), Err(Error::Protocol(_))));
        assert!(parse(b"").unwrap_err().is_connection_error());
        assert!(parse(b"$5\r\nab").unwrap_err().is_connection_error());
    }
}
