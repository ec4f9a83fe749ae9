//! The request/response shapes every server-side handler works with.

use bytes::Bytes;
use std::future::Future;

/// A parsed request. Header names are lower-cased; the path is still
/// percent-encoded (routing decodes the segments it needs).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path without the query, e.g. `/api/v4/characters/%EC%95%84%EB%8D%B8/expectation`.
    pub path: String,
    /// Raw query string without `?`, empty when absent.
    pub query: String,
    pub headers: Vec<(String, Bytes)>,
    pub body: Bytes,
}

impl Request {
    /// First header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_ref())
    }
}

/// A response to write. `Content-Length` and `Connection` are added by the server.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response { status, headers: Vec::new(), body: Bytes::new() }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// A JSON body with `Content-Type: application/json`.
    pub fn json(status: u16, body: impl Into<Bytes>) -> Self {
        Response::new(status).header("content-type", "application/json").body(body)
    }
}

/// One instance per core (built by a factory on that core's thread), so it
/// may hold `Rc`/`RefCell` state and needs no `Send`.
pub trait Service: 'static {
    fn call(&self, req: Request) -> impl Future<Output = Response>;

    /// Called once on the core's runtime at the end of a graceful shutdown,
    /// after every connection of every core is done: finish background work
    /// that must not outlive the runtime (e.g. writes still waiting to be
    /// durable). monoio leaks tasks still pending when its runtime ends, and
    /// a leaked task whose waker another thread still holds is dropped on
    /// that thread when it is woken. Bounded by the server.
    fn drain(&self) -> impl Future<Output = ()> {
        std::future::ready(())
    }
}
