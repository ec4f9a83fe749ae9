//! Peer connections: multiplexing, bounds, the drop switch, core handoff.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use net::peer::*;

/// Answers `KIND_REPLY` with "<core>:<body>", after sleeping `body` ms if it parses.
struct Echo(u16);

impl PeerHandler for Echo {
    fn handle(&self, _from: Hello, frame: Frame) -> LocalBoxFuture<'static, Frame> {
        let core = self.0;
        Box::pin(async move {
            if let Some(ms) = std::str::from_utf8(&frame.body).ok().and_then(|s| s.parse::<u64>().ok()) {
                monoio::time::sleep(Duration::from_millis(ms)).await;
            }
            if frame.kind == KIND_FORWARD {
                let f = Forward::decode(&frame.body).unwrap();
                return Frame::new(
                    KIND_FORWARD_REPLY,
                    0,
                    0,
                    Bytes::from(format!("{}|{}", f.traceparent, String::from_utf8_lossy(&f.request))),
                );
            }
            Frame::new(KIND_REPLY, 0, frame.group, Bytes::from(format!("{core}:{}", String::from_utf8_lossy(&frame.body))))
        })
    }
}

fn rt() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap()
}

fn hello(target_core: u16) -> Hello {
    Hello { node: 1, core: 0, target_core }
}

#[test]
fn many_requests_share_one_connection_and_answer_out_of_order() {
    rt().block_on(async {
        let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        monoio::spawn(accept_loop(l, 0, Rc::new(Echo(0)), None, PeerLimits::default(), DropSwitch::new()));
        let c = PeerClient::connect(addr, hello(0), PeerLimits::default(), DropSwitch::new()).await.unwrap();
        // the slow one is sent first and answered last
        let slow = {
            let c = c.clone();
            monoio::spawn(async move { c.request(1, 7, Bytes::from_static(b"200"), Duration::from_secs(5)).await })
        };
        let mut fast = Vec::new();
        for i in 0..100 {
            let c = c.clone();
            fast.push(monoio::spawn(async move { c.request(2, i, Bytes::from(format!("x{i}")), Duration::from_secs(5)).await }));
        }
        for (i, f) in fast.into_iter().enumerate() {
            let r = f.await.unwrap();
            assert_eq!(r.kind, KIND_REPLY);
            assert_eq!(r.group, i as u32);
            assert_eq!(&r.body[..], format!("0:x{i}").as_bytes());
        }
        assert_eq!(&slow.await.unwrap().body[..], b"0:200");
        let fwd = Forward {
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            request: Bytes::from_static(b"GET /a"),
        };
        let r = c.request(KIND_FORWARD, 0, fwd.encode(), Duration::from_secs(5)).await.unwrap();
        assert_eq!(r.kind, KIND_FORWARD_REPLY);
        assert_eq!(&r.body[..], b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01|GET /a");
    });
}

#[test]
fn in_flight_and_frame_size_are_bounded() {
    rt().block_on(async {
        let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        monoio::spawn(accept_loop(l, 0, Rc::new(Echo(0)), None, PeerLimits::default(), DropSwitch::new()));
        let limits = PeerLimits { max_in_flight: 2, max_frame: 4096, ..PeerLimits::default() };
        let c = PeerClient::connect(addr, hello(0), limits, DropSwitch::new()).await.unwrap();
        let a = {
            let c = c.clone();
            monoio::spawn(async move { c.request(1, 0, Bytes::from_static(b"100"), Duration::from_secs(5)).await })
        };
        let b = {
            let c = c.clone();
            monoio::spawn(async move { c.request(1, 0, Bytes::from_static(b"100"), Duration::from_secs(5)).await })
        };
        monoio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(c.request(1, 0, Bytes::from_static(b"x"), Duration::from_secs(1)).await, Err(PeerError::Busy(2)));
        assert!(a.await.is_ok() && b.await.is_ok());
        assert!(matches!(
            c.request(1, 0, Bytes::from(vec![b'y'; 5000]), Duration::from_secs(1)).await,
            Err(PeerError::Frame(FrameError::TooLarge { .. }))
        ));
        assert!(c.request(1, 0, Bytes::from_static(b"ok"), Duration::from_secs(1)).await.is_ok());
        // a timeout is a typed error, and the connection stays usable
        assert_eq!(
            c.request(1, 0, Bytes::from_static(b"300"), Duration::from_millis(50)).await,
            Err(PeerError::Timeout(Duration::from_millis(50)))
        );
        assert!(c.request(1, 0, Bytes::from_static(b"ok"), Duration::from_secs(1)).await.is_ok());
    });
}

#[test]
fn a_server_refuses_garbage_and_oversized_frames() {
    rt().block_on(async {
        use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
        let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let limits = PeerLimits { max_frame: 1024, ..PeerLimits::default() };
        monoio::spawn(accept_loop(l, 0, Rc::new(Echo(0)), None, limits, DropSwitch::new()));
        for garbage in [b"GET / HTTP/1.1\r\n\r\n".to_vec(), Frame::new(1, 1, 1, Bytes::new()).encode(), {
            let mut v = Frame::new(KIND_HELLO, 0, 0, hello(0).encode()).encode();
            v.extend_from_slice(&(1_000_000u32).to_le_bytes());
            v.extend_from_slice(&[1, 1]);
            v
        }] {
            let mut s = monoio::net::TcpStream::connect(addr).await.unwrap();
            let (r, _) = s.write_all(garbage).await;
            r.unwrap();
            let (n, _) = monoio::time::timeout(Duration::from_secs(5), s.read(vec![0u8; 64])).await.expect("closed, not hung");
            assert_eq!(n.unwrap_or(0), 0, "connection closed without an answer");
        }
    });
}

#[test]
fn the_drop_switch_cuts_both_directions() {
    rt().block_on(async {
        let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server_switch = DropSwitch::new();
        monoio::spawn(accept_loop(l, 0, Rc::new(Echo(0)), None, PeerLimits::default(), server_switch.clone()));
        let client_switch = DropSwitch::new();
        let c = PeerClient::connect(addr, hello(0), PeerLimits::default(), client_switch.clone()).await.unwrap();
        assert!(c.request(1, 0, Bytes::from_static(b"a"), Duration::from_secs(1)).await.is_ok());
        client_switch.set(true);
        assert_eq!(c.request(1, 0, Bytes::from_static(b"a"), Duration::from_secs(1)).await, Err(PeerError::Cut));
        client_switch.set(false);
        server_switch.set(true);
        assert!(matches!(c.request(1, 0, Bytes::from_static(b"a"), Duration::from_millis(200)).await, Err(PeerError::Timeout(_))));
        server_switch.set(false);
        assert!(c.request(1, 0, Bytes::from_static(b"a"), Duration::from_secs(1)).await.is_ok());
    });
}

#[test]
fn a_connection_for_another_core_is_handed_over_to_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx1, rx1) = flume::unbounded::<Handoff>();
    let (tx0, _rx0) = flume::unbounded::<Handoff>();
    // core 1: serves handed-over connections only
    let core1 = std::thread::spawn(move || {
        rt().block_on(async move {
            monoio::spawn(handoff_loop(rx1, Rc::new(Echo(1)), PeerLimits::default(), DropSwitch::new()));
            monoio::time::sleep(Duration::from_secs(3)).await;
        })
    });
    rt().block_on(async move {
        listener.set_nonblocking(true).unwrap();
        let l = monoio::net::TcpListener::from_std(listener).unwrap();
        monoio::spawn(accept_loop(l, 0, Rc::new(Echo(0)), Some(vec![tx0, tx1]), PeerLimits::default(), DropSwitch::new()));
        let to0 = PeerClient::connect(addr, hello(0), PeerLimits::default(), DropSwitch::new()).await.unwrap();
        let to1 = PeerClient::connect(addr, hello(1), PeerLimits::default(), DropSwitch::new()).await.unwrap();
        for i in 0..20 {
            let a = to0.request(1, 0, Bytes::from(format!("{i}")), Duration::from_secs(2)).await.unwrap();
            let b = to1.request(1, 0, Bytes::from(format!("{i}")), Duration::from_secs(2)).await.unwrap();
            assert_eq!(&a.body[..], format!("0:{i}").as_bytes());
            assert_eq!(&b.body[..], format!("1:{i}").as_bytes(), "answered by core 1");
        }
    });
    core1.join().unwrap();
}
