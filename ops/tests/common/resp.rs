//! A std-only RESP client for the node tests: commands as multibulks,
//! replies (RESP2 and RESP3) parsed into [`Value`], every read bounded by a
//! timeout (a hang fails the test instead of blocking it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Longest a test waits for one reply.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// One reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Null,
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Bool(bool),
    Double(String),
    Verbatim(String),
}

impl Value {
    /// The text of a simple, bulk or verbatim string (panics otherwise).
    pub fn text(&self) -> String {
        match self {
            Value::Simple(s) | Value::Verbatim(s) => s.clone(),
            Value::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("not a string reply: {other:?}"),
        }
    }

    pub fn int(&self) -> i64 {
        match self {
            Value::Int(n) => *n,
            other => panic!("not an integer reply: {other:?}"),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Value::Bulk(b) => b,
            other => panic!("not a bulk reply: {other:?}"),
        }
    }

    /// The message of an error reply (panics otherwise).
    pub fn err(&self) -> &str {
        match self {
            Value::Error(e) => e,
            other => panic!("not an error reply: {other:?}"),
        }
    }

    /// `[liked, likeCount]` of a RESP2 like reply.
    pub fn like(&self) -> (bool, u64) {
        match self {
            Value::Array(v) if v.len() == 2 => (v[0].int() == 1, v[1].int() as u64),
            other => panic!("not a like reply: {other:?}"),
        }
    }

    /// The value of `key` in a RESP3 map.
    pub fn get(&self, key: &str) -> &Value {
        match self {
            Value::Map(kv) => kv.iter().find(|(k, _)| k.text() == key).map(|(_, v)| v).unwrap_or_else(|| panic!("no {key} in {self:?}")),
            other => panic!("not a map: {other:?}"),
        }
    }
}

pub struct RespConn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl RespConn {
    pub fn open(addr: SocketAddr) -> std::io::Result<RespConn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(RespConn { r: BufReader::new(s.try_clone()?), w: s })
    }

    pub fn encode(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.w.write_all(bytes)
    }

    /// Send one command (not waiting for its reply: pipelining).
    pub fn send(&mut self, args: &[&str]) -> std::io::Result<()> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send_raw(&Self::encode(&args))
    }

    /// One command, its reply.
    pub fn cmd(&mut self, args: &[&str]) -> std::io::Result<Value> {
        self.send(args)?;
        self.read()
    }

    /// `cmd`, panicking on an I/O error.
    pub fn call(&mut self, args: &[&str]) -> Value {
        self.cmd(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// The next reply.
    pub fn read(&mut self) -> std::io::Result<Value> {
        let line = self.line()?;
        let (kind, rest) = line.split_at(1);
        let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {line:?}"));
        let num = |s: &str| s.parse::<i64>().map_err(|_| bad("bad number"));
        Ok(match kind {
            "+" => Value::Simple(rest.to_owned()),
            "-" | "!" => {
                if kind == "!" {
                    let b = self.bulk(num(rest)?)?;
                    Value::Error(String::from_utf8_lossy(&b).into_owned())
                } else {
                    Value::Error(rest.to_owned())
                }
            }
            ":" => Value::Int(num(rest)?),
            "$" => match num(rest)? {
                -1 => Value::Null,
                n => Value::Bulk(self.bulk(n)?),
            },
            "=" => {
                let b = self.bulk(num(rest)?)?;
                Value::Verbatim(String::from_utf8_lossy(&b[4.min(b.len())..]).into_owned())
            }
            "*" | "~" | ">" => match num(rest)? {
                -1 => Value::Null,
                n => Value::Array((0..n).map(|_| self.read()).collect::<Result<_, _>>()?),
            },
            "%" => Value::Map((0..num(rest)?).map(|_| Ok((self.read()?, self.read()?))).collect::<std::io::Result<_>>()?),
            "_" => Value::Null,
            "#" => Value::Bool(rest == "t"),
            "," | "(" => Value::Double(rest.to_owned()),
            _ => return Err(bad("unknown reply type")),
        })
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut line = Vec::new();
        let n = self.r.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        if !line.ends_with(b"\r\n") {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("line without CRLF: {line:?}")));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    fn bulk(&mut self, n: i64) -> std::io::Result<Vec<u8>> {
        let mut b = vec![0; n as usize + 2];
        self.r.read_exact(&mut b)?;
        b.truncate(n as usize);
        Ok(b)
    }

    /// True when the server closed the connection (EOF before any byte).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.r.read(&mut b) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    }
}
