//! The HTTP client over real sockets: against our own server (plain), a
//! canned raw server (chunked, gzip passthrough, stale keep-alive), and a
//! local rustls server with a self-signed certificate.

mod common;

use common::*;
use net::{ClientConfig, ClientError, HttpClient};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

fn block_on<F: Future>(f: F) -> F::Output {
    if net::server::force_epoll() {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().expect("runtime").block_on(f)
    } else {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build().expect("runtime").block_on(f)
    }
}

fn client(base_url: String) -> HttpClient {
    HttpClient::new(config(base_url)).expect("client")
}

fn config(base_url: String) -> ClientConfig {
    ClientConfig {
        base_url,
        timeout: Duration::from_secs(5),
        max_body_bytes: 64 * 1024,
        max_idle_per_host: 4,
        default_headers: vec![("x-nxopen-api-key".into(), "test-key".into())],
    }
}

/// Serves each accepted connection with `respond(request_head) -> bytes`,
/// answering requests until the peer closes (or once if `close_after_one`).
fn raw_server<F>(close_after_one: bool, respond: F) -> SocketAddr
where
    F: Fn(&str) -> Vec<u8> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let respond = Arc::new(respond);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let respond = respond.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end);
                    if s.write_all(&respond(&head)).is_err() || close_after_one {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn get_against_our_server_reuses_the_connection() {
    let srv = TestServer::start(1, test_limits());
    let c = client(format!("http://{}", srv.addr));
    block_on(async {
        for i in 0..3 {
            let r = c.get(&format!("/echo?i={i}"), &[("accept", "application/json")]).await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-query"), Some(format!("i={i}").as_bytes()));
            assert_eq!(r.header("x-method"), Some(&b"GET"[..]));
        }
        assert_eq!(c.idle_connections(), 1);
        let r = c.get("/nope", &[]).await.unwrap();
        assert_eq!(r.status, 404);
    });
    let stats = srv.stop();
    assert_eq!(stats.total().connections_accepted, 1, "keep-alive: one connection for four requests");
}

#[test]
fn body_over_limit_is_an_error() {
    let srv = TestServer::start(1, test_limits());
    let c = HttpClient::new(ClientConfig { max_body_bytes: 1000, ..config(format!("http://{}", srv.addr)) }).unwrap();
    block_on(async {
        assert_eq!(c.get("/big?n=1000", &[]).await.unwrap().body.len(), 1000);
        match c.get("/big?n=1001", &[]).await {
            Err(ClientError::BodyTooLarge(1000)) => {}
            other => panic!("expected BodyTooLarge, got {other:?}"),
        }
        // The failed connection was not pooled; the next call works.
        assert_eq!(c.get("/hello", &[]).await.unwrap().body, "hello");
    });
}

#[test]
fn whole_request_timeout() {
    let srv = TestServer::start(1, test_limits());
    let c = HttpClient::new(ClientConfig { timeout: Duration::from_millis(200), ..config(format!("http://{}", srv.addr)) }).unwrap();
    block_on(async {
        match c.get("/slow?ms=2000", &[]).await {
            Err(ClientError::Timeout(_)) => {}
            other => panic!("expected Timeout, got {other:?}"),
        }
        assert_eq!(c.idle_connections(), 0, "a timed-out connection is never reused");
    });
}

#[test]
fn chunked_response_and_gzip_passthrough() {
    let addr = raw_server(false, |head| {
        assert!(head.starts_with("GET /prefix/chunked HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("x-nxopen-api-key: test-key\r\n"));
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n\
          4\r\n\x1f\x8b\x08\x00\r\n3;x=y\r\nabc\r\n0\r\nTrailer: 1\r\n\r\n"
            .to_vec()
    });
    let c = client(format!("http://{addr}/prefix"));
    block_on(async {
        for _ in 0..2 {
            let r = c.get("/chunked", &[]).await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.body.as_ref(), b"\x1f\x8b\x08\x00abc", "body kept as received (still gzip)");
            assert_eq!(r.header("content-encoding"), Some(&b"gzip"[..]));
        }
        assert_eq!(c.idle_connections(), 1);
    });
}

#[test]
fn chunked_response_over_limit_is_an_error() {
    let addr = raw_server(false, |_| {
        let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..3 {
            r.extend_from_slice(b"8000\r\n");
            r.extend_from_slice(&[b'a'; 0x8000]);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"0\r\n\r\n");
        r
    });
    let c = client(format!("http://{addr}"));
    block_on(async {
        assert!(matches!(c.get("/", &[]).await, Err(ClientError::BodyTooLarge(_))));
    });
}

#[test]
fn body_until_close_and_stale_pooled_connection_retry() {
    // Server answers one request per connection, with Content-Length but
    // without `Connection: close`: the pooled connection is dead on reuse.
    let addr = raw_server(true, |_| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec());
    let c = client(format!("http://{addr}"));
    block_on(async {
        for _ in 0..3 {
            assert_eq!(c.get("/", &[]).await.unwrap().body, "ok");
        }
    });
    let addr = raw_server(true, |_| b"HTTP/1.0 200 OK\r\n\r\nuntil close".to_vec());
    let c = client(format!("http://{addr}"));
    block_on(async {
        assert_eq!(c.get("/", &[]).await.unwrap().body, "until close");
        assert_eq!(c.idle_connections(), 0);
    });
}

#[test]
fn malformed_response_and_refused_connect_are_errors() {
    let addr = raw_server(true, |_| b"HTTP/1.1 abc\r\n\r\n".to_vec());
    let c = client(format!("http://{addr}"));
    block_on(async {
        assert!(matches!(c.get("/", &[]).await, Err(ClientError::Malformed(_))));
    });
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let c = client(format!("http://127.0.0.1:{port}"));
    block_on(async {
        assert!(matches!(c.get("/", &[]).await, Err(ClientError::Connect(_))));
    });
    assert!(matches!(HttpClient::new(config("ftp://x".into())), Err(ClientError::InvalidUrl(_))));
}

#[test]
fn https_against_local_rustls_server() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_der = ck.cert.der().clone();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert_der.clone()], key_der)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(tcp) = stream else { return };
            let cfg = server_cfg.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end);
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    let body = format!("secure {path}");
                    let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    if tls.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let base = format!("https://localhost:{port}");
    let c = HttpClient::with_roots(config(base.clone()), roots).unwrap();
    block_on(async {
        for i in 0..2 {
            let r = c.get(&format!("/tls/{i}"), &[]).await.unwrap();
            assert_eq!((r.status, r.body.as_ref()), (200, format!("secure /tls/{i}").as_bytes()));
        }
        assert_eq!(c.idle_connections(), 1, "TLS connection kept alive");
    });
    // The default client (webpki roots) must refuse the self-signed cert.
    let c = client(base);
    block_on(async {
        match c.get("/", &[]).await {
            Err(ClientError::Tls(_)) => {}
            other => panic!("expected a TLS error, got {other:?}"),
        }
    });
}

#[test]
fn fusion_driver_starts_with_timers() {
    // io_uring when the kernel/seccomp allow it, epoll otherwise; both must work.
    let legacy = block_on(async {
        monoio::time::sleep(Duration::from_millis(1)).await;
        monoio::utils::is_legacy()
    });
    eprintln!("monoio driver: {}", if legacy { "legacy (epoll)" } else { "io_uring" });
}
