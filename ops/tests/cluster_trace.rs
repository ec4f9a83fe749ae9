//! A forwarded request keeps its `traceparent` in both nodes' logs (issue
//! 11, P1-11): the forwarding node logs "forwarding a request to the
//! leader" and the serving node "serving a forwarded request" (debug, target
//! `maple::http::peer`), both with the client's valid `traceparent`; a
//! request without one, or with a malformed one, gets a fresh valid one
//! that both lines share. The reservation step of a keyed toggle (a forward
//! to the leader of the user's partition) carries the request's too.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::cluster::{send_until_served, Cluster, SECRET};
use common::enc;

const FORWARDING: &str = "forwarding a request to the leader";
const SERVING: &str = "serving a forwarded request";
const SERVING_RESERVATION: &str = "serving a forwarded reservation";

fn token(user: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    net::jwt::sign(SECRET.as_bytes(), user, now + 3600)
}

fn partition_of(key: &str) -> usize {
    replication::SlotMap::new(16, 1).partition_of(replication::slot_of(key)) as usize
}

/// `00-<32 hex>-<16 hex>-<2 hex>`, lower-case, ids not all zeros (W3C, version 00).
fn is_valid_traceparent(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

/// The `traceparent=` field of a log line.
fn traceparent_field(line: &str) -> Option<&str> {
    let rest = line.split("traceparent=").nth(1)?;
    Some(rest.split_whitespace().next()?.trim_matches('"'))
}

/// Lines of node `id`'s log containing `message` and `needle`, waited for
/// (bounded): the test reads the child's stderr on another thread.
fn wait_lines(c: &mut Cluster, id: u64, message: &str, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines: Vec<String> = c.node(id).log_lines(message).into_iter().filter(|l| l.contains(needle)).collect();
        if !lines.is_empty() {
            return lines;
        }
        assert!(Instant::now() < deadline, "node {id} logged no {message:?} line with {needle:?} (logs follow)");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first line of node `id`'s log containing `message` after the
/// `before` ones there were, waited for (bounded).
fn wait_line_after(c: &mut Cluster, id: u64, message: &str, before: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(line) = c.node(id).log_lines(message).into_iter().nth(before) {
            return line;
        }
        assert!(Instant::now() < deadline, "node {id} logged no new {message:?} line (logs follow)");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send a like status read through `via` until another node served it
/// (a leadership move may make `via` the leader meanwhile: then no forward);
/// the serving node's id.
fn forwarded_read(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Option<u64> {
    let r = send_until_served(addr, "GET", path, headers);
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    r.header("x-maple-node").map(|n| n.parse().expect("x-maple-node is a node id"))
}

#[test]
fn a_forwarded_request_keeps_its_traceparent_in_both_nodes_logs() {
    let mut c = Cluster::start_with_env("cl-trace", 3, &[], &[("RUST_LOG", "info,openraft=error,maple::http::peer=debug")]);
    // Leadership settles on the preferred replicas (moved every 2 s).
    std::thread::sleep(Duration::from_secs(3));
    let leaders = c.wait_leaders(Duration::from_secs(60));
    let character = "tracechar";
    let a = leaders[partition_of(character)];
    let b = a % 3 + 1;
    let auth = format!("Bearer {}", token("trace-user"));
    let status = format!("/api/v2/characters/{}/like/status", enc(character));

    // 1. A client's valid traceparent, as sent, on both nodes.
    for attempt in 0.. {
        let tp = format!("00-{:032x}-00f067aa0ba902b7-01", 0x7ace_0000_u128 + attempt);
        let Some(served_by) = forwarded_read(c.addr(b), &status, &[("Authorization", &auth), ("traceparent", &tp)]) else {
            assert!(attempt < 5, "node {b} kept serving {character} itself (log follows)");
            continue;
        };
        assert_ne!(served_by, b);
        wait_lines(&mut c, b, FORWARDING, &tp);
        wait_lines(&mut c, served_by, SERVING, &tp);
        break;
    }

    // 2. None, or a malformed one: the forwarding node makes a fresh valid
    //    one, and the serving node logs the same.
    for sent in [None, Some("00-1-2-01")] {
        for attempt in 0.. {
            let before = c.node(b).log_lines(FORWARDING).len();
            let mut headers = vec![("Authorization", auth.as_str())];
            headers.extend(sent.map(|tp| ("traceparent", tp)));
            let Some(served_by) = forwarded_read(c.addr(b), &status, &headers) else {
                assert!(attempt < 5, "node {b} kept serving {character} itself (log follows)");
                continue;
            };
            let line = wait_line_after(&mut c, b, FORWARDING, before);
            let tp = traceparent_field(&line).unwrap_or_else(|| panic!("no traceparent in {line:?}")).to_owned();
            assert!(is_valid_traceparent(&tp), "sent {sent:?}, forwarded with {tp:?}");
            assert_ne!(Some(tp.as_str()), sent);
            wait_lines(&mut c, served_by, SERVING, &tp);
            break;
        }
    }

    // 3. A keyed toggle at the character's leader whose user's partition is
    //    led elsewhere: the reservation forward carries the request's traceparent.
    let leaders = c.wait_leaders(Duration::from_secs(60));
    let a = leaders[partition_of(character)];
    let user = (0..).map(|i| format!("trace-user-{i}")).find(|u| leaders[partition_of(u)] != a).unwrap();
    let home = leaders[partition_of(&user)];
    let auth = format!("Bearer {}", token(&user));
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let like = format!("/api/v2/characters/{}/like", enc(character));
    let r = send_until_served(c.addr(a), "POST", &like, &[("Authorization", &auth), ("Idempotency-Key", "trace-1"), ("traceparent", tp)]);
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    wait_lines(&mut c, a, FORWARDING, tp);
    wait_lines(&mut c, home, SERVING_RESERVATION, tp);
}
