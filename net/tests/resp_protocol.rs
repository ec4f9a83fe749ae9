//! RESP server over raw sockets: connection commands, RESP2/RESP3
//! encoding, pipelining, inline commands, errors, auth, concurrency.

mod resp_common;

use net::resp::RespLimits;
use resp_common::{Client, TestServer, TOKEN};
use std::time::{Duration, Instant};

#[test]
fn ping_echo_and_binary_safe_bulk() {
    let srv = TestServer::start(1, RespLimits::default());
    let mut c = srv.client();
    assert_eq!(c.cmd(&["PING"]), "+PONG");
    assert_eq!(c.cmd(&["ping", "hi there"]), "\"hi there\"");
    assert_eq!(c.cmd(&["PING", "a", "b"]), "-ERR wrong number of arguments for 'ping' command");
    assert_eq!(c.cmd(&["ECHO", "x\r\ny"]), "\"x\\r\\ny\"");
    // Binary payload (NUL, CR LF, 0xff) comes back byte for byte.
    let payload: &[u8] = &[0, b'\r', b'\n', 0xff, b'$', b'*'];
    c.send(&Client::encode(&[b"ECHO", payload]));
    let mut expect = b"$6\r\n".to_vec();
    expect.extend_from_slice(payload);
    expect.extend_from_slice(b"\r\n");
    let mut got = vec![0u8; expect.len()];
    std::io::Read::read_exact(&mut c.s, &mut got).unwrap();
    assert_eq!(got, expect);
    let stats = srv.stop().total();
    assert_eq!(stats.commands, 5);
    assert_eq!(stats.err_arity, 1);
}

#[test]
fn pipelining_answers_everything_in_order() {
    let srv = TestServer::start(1, RespLimits::default());
    let mut c = srv.client();
    let mut batch = Vec::new();
    for i in 0..500 {
        batch.extend_from_slice(&Client::encode(&[b"ECHO", format!("m{i}").as_bytes()]));
        batch.extend_from_slice(&Client::encode(&[b"INCR.LOCAL", b"k"]));
    }
    batch.extend_from_slice(b"PING\r\n");
    c.send(&batch);
    for i in 0..500 {
        assert_eq!(c.read_reply(), format!("\"m{i}\""));
        assert_eq!(c.read_reply(), format!(":{}", i + 1));
    }
    assert_eq!(c.read_reply(), "+PONG");
}

#[test]
fn inline_commands_for_telnet() {
    let srv = TestServer::start(1, RespLimits::default());
    let mut c = srv.client();
    c.send(b"PING\r\nECHO \"hello world\"\nincr.local 'k 1'\r\n\r\n   \r\nPING \"a\\x41\"\r\n");
    assert_eq!(c.read_reply(), "+PONG");
    assert_eq!(c.read_reply(), "\"hello world\"");
    assert_eq!(c.read_reply(), ":1");
    assert_eq!(c.read_reply(), "\"aA\"");
    // Unbalanced quotes: a protocol error, then close.
    c.send(b"ECHO \"oops\r\n");
    assert_eq!(c.read_reply(), "-ERR Protocol error: unbalanced quotes in request");
    assert!(c.closed());
}

#[test]
fn unknown_command_and_arity_errors_keep_the_connection() {
    let srv = TestServer::start(1, RespLimits::default());
    let mut c = srv.client();
    assert_eq!(c.cmd(&["NOPE", "a", "b"]), "-ERR unknown command 'NOPE', with args beginning with: 'a' 'b' ");
    assert_eq!(c.cmd(&["incr.local"]), "-ERR wrong number of arguments for 'incr.local' command");
    assert_eq!(c.cmd(&["ECHO"]), "-ERR wrong number of arguments for 'echo' command");
    assert_eq!(c.cmd(&["CLIENT", "NOPE"]), "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.");
    assert_eq!(c.cmd(&["CLIENT", "SETNAME"]), "-ERR wrong number of arguments for 'client|setname' command");
    assert_eq!(c.cmd(&["SELECT", "0"]), "+OK");
    assert_eq!(c.cmd(&["SELECT", "1"]), "-ERR DB index is out of range");
    assert_eq!(c.cmd(&["SELECT", "x"]), "-ERR value is not an integer or out of range");
    // A name with CR LF is quoted back without breaking the error line.
    c.send(b"*1\r\n$5\r\nA\r\nB!\r\n");
    assert_eq!(c.read_reply(), "-ERR unknown command 'A  B!', with args beginning with: ");
    assert_eq!(c.cmd(&["FAIL"]), "-STORAGE the disk is on fire");
    assert_eq!(c.cmd(&["BOOM"]), "-ERR internal error");
    assert_eq!(c.cmd(&["PING"]), "+PONG");
    let s = srv.stop().total();
    assert_eq!(s.err_unknown_command, 3);
    assert_eq!(s.err_arity, 3);
    assert_eq!(s.service_panics, 1);
    assert_eq!(s.err_service, 1);
}

#[test]
fn hello_3_switches_to_resp3_and_maps() {
    let srv = TestServer::start(1, RespLimits::default());
    let mut c = srv.client();
    // RESP2: the map is a flat array, booleans are integers, null is $-1.
    let r2 = c.cmd(&["SHAPES"]);
    assert!(r2.starts_with("[\"bool\", :1, \"double\", \"2.5\", \"null\", nil, \"set\", [:1], \"nested\", [\"n\", :-1], \"verbatim\", \"hi\", \"big\", \"123456789012345678901234567890\"]"), "{r2}");
    let hello = c.cmd(&["HELLO", "3"]);
    assert!(hello.starts_with("{\"id\": :"), "{hello}");
    for part in
        ["\"mode\": \"standalone\"", "\"modules\": []", "\"proto\": :3", "\"role\": \"master\"", "\"server\": \"maple\"", "\"version\": "]
    {
        assert!(hello.contains(part), "{part} in {hello}");
    }
    assert_eq!(
        c.cmd(&["SHAPES"]),
        "{\"big\": (123456789012345678901234567890, \"bool\": #t, \"double\": ,2.5, \"nested\": {\"n\": :-1}, \"null\": nil, \"set\": ~[:1], \"verbatim\": =Text:hi}"
    );
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), "nil");
    // Back to 2 with the same command; unsupported versions refused.
    assert_eq!(c.cmd(&["HELLO", "4"]), "-NOPROTO unsupported protocol version");
    assert!(c.cmd(&["HELLO", "2"]).starts_with('['));
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), "nil");
    assert_eq!(c.cmd(&["HELLO", "x"]), "-ERR Protocol version is not an integer or out of range");
    assert_eq!(c.cmd(&["HELLO", "3", "BOGUS"]), "-ERR Syntax error in HELLO option 'BOGUS'");
}

#[test]
fn auth_hello_auth_and_noauth() {
    let srv = TestServer::start(1, RespLimits::default());
    let mut c = srv.client();
    assert_eq!(c.cmd(&["WHOAMI"]), "-NOAUTH Authentication required.");
    assert_eq!(c.cmd(&["AUTH", "wrong"]), "-WRONGPASS invalid username-password pair or user is disabled.");
    assert_eq!(c.cmd(&["AUTH", "a", "b", "c"]), "-ERR syntax error");
    assert_eq!(c.cmd(&["AUTH", TOKEN]), "+OK");
    assert_eq!(c.cmd(&["WHOAMI"]), "\"alice\"");
    assert_eq!(c.cmd(&["RESET"]), "+RESET");
    assert_eq!(c.cmd(&["WHOAMI"]), "-NOAUTH Authentication required.");
    // HELLO with AUTH and SETNAME in one go.
    let h = c.cmd(&["HELLO", "3", "AUTH", "alice", TOKEN, "SETNAME", "worker-1"]);
    assert!(h.contains("\"proto\": :3"), "{h}");
    assert_eq!(c.cmd(&["WHOAMI"]), "\"alice\"");
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), "\"worker-1\"");
    // A failed HELLO AUTH changes nothing (still RESP3, still alice).
    assert_eq!(c.cmd(&["HELLO", "2", "AUTH", "alice", "nope"]), "-WRONGPASS invalid username-password pair or user is disabled.");
    c.resp3 = true;
    assert_eq!(c.cmd(&["WHOAMI"]), "\"alice\"");
    // An expired identity counts as none.
    assert_eq!(c.cmd(&["AUTH", "expired-token"]), "+OK");
    assert_eq!(c.cmd(&["WHOAMI"]), "-NOAUTH Authentication required.");
    let s = srv.stop().total();
    assert_eq!(s.err_noauth, 3);
    assert_eq!(s.err_auth_failed, 2);
}

#[test]
fn client_subcommands() {
    let srv = TestServer::start(1, RespLimits::default());
    let mut c = srv.client();
    let id = c.cmd(&["CLIENT", "ID"]);
    assert!(id.starts_with(':'));
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", "bad name"]), "-ERR Client names cannot contain spaces, newlines or special characters.");
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", "me"]), "+OK");
    assert_eq!(c.cmd(&["client", "getname"]), "\"me\"");
    assert_eq!(c.cmd(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]), "+OK");
    assert_eq!(c.cmd(&["CLIENT", "SETINFO", "LIB-VER", "5.0.1"]), "+OK");
    assert_eq!(c.cmd(&["CLIENT", "SETINFO", "COLOR", "red"]), "-ERR Unrecognized option 'COLOR'");
    let info = c.cmd(&["CLIENT", "INFO"]);
    let id_num = id.trim_start_matches(':');
    assert!(info.starts_with(&format!("\"id={id_num} addr=127.0.0.1:")), "{info}");
    assert!(info.contains(" name=me ") && info.contains("lib-name=redis-py lib-ver=5.0.1 resp=2"), "{info}");
    // Ids differ per connection.
    let mut d = srv.client();
    assert_ne!(d.cmd(&["CLIENT", "ID"]), id);
    // QUIT answers +OK and closes.
    assert_eq!(c.cmd(&["QUIT"]), "+OK");
    assert!(c.closed());
}

#[test]
fn command_count_info_docs_config() {
    let srv = TestServer::start(1, RespLimits::default());
    let mut c = srv.client();
    let count: usize = c.cmd(&["COMMAND", "COUNT"]).trim_start_matches(':').parse().unwrap();
    assert_eq!(count, 10 + 8, "connection commands + the test service's");
    let all = c.cmd(&["COMMAND"]);
    assert!(all.contains("[\"incr.local\", :2, [+write, +fast], :1, :1, :1, [+@write, +@fast], [], [], []]"), "{all}");
    assert_eq!(c.cmd(&["COMMAND", "INFO", "DELAY", "nosuch"]), "[[\"delay\", :3, [+readonly], :0, :0, :0, [+@read], [], [], []], nil]");
    let docs = c.cmd(&["COMMAND", "DOCS", "incr.local"]);
    assert!(
        docs.starts_with("[\"incr.local\", [\"summary\", \"Increments a per-core counter.\", \"since\", \"1.0.0\", \"group\", \"generic\""),
        "{docs}"
    );
    c.cmd(&["HELLO", "3"]);
    let docs3 = c.cmd(&["COMMAND", "DOCS", "client"]);
    assert!(docs3.contains("\"subcommands\": {") && docs3.contains("\"client|setname\""), "{docs3}");
    assert_eq!(c.cmd(&["CONFIG", "GET", "appendonly"]), "{\"appendonly\": \"no\"}");
    assert_eq!(c.cmd(&["CONFIG", "SET", "x", "y"]), "-ERR unknown subcommand 'SET'. Try CONFIG HELP.");
    let list = c.cmd(&["COMMAND", "LIST"]);
    assert!(list.contains("\"hello\"") && list.contains("\"whoami\""), "{list}");
}

#[test]
fn concurrent_commands_overlap_but_answer_in_order() {
    let srv = TestServer::start(1, RespLimits::default());
    let mut c = srv.client();
    let mut batch = Vec::new();
    for (ms, tag) in [("300", "a"), ("10", "b"), ("150", "c"), ("1", "d")] {
        batch.extend_from_slice(&Client::encode(&[b"DELAY", ms.as_bytes(), tag.as_bytes()]));
    }
    // A non-concurrent command is a barrier: it waits for the four above.
    batch.extend_from_slice(&Client::encode(&[b"MAXCONC"]));
    let t = Instant::now();
    c.send(&batch);
    for tag in ["a", "b", "c", "d"] {
        assert_eq!(c.read_reply(), format!("\"{tag}\""));
    }
    assert_eq!(c.read_reply(), ":4", "the four DELAYs ran at once");
    let took = t.elapsed();
    assert!(took < Duration::from_millis(450) + Duration::from_secs(2), "{took:?}");
    // One at a time without pipelining.
    assert_eq!(c.cmd(&["DELAY", "1", "x"]), "\"x\"");
    assert_eq!(c.cmd(&["MAXCONC"]), ":1");
}

#[test]
fn many_clients_on_several_cores() {
    let srv = TestServer::start(2, RespLimits::default());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let addr = srv.addr;
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for j in 0..200 {
                    assert_eq!(c.cmd(&["ECHO", &format!("{i}-{j}")]), format!("\"{i}-{j}\""));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = srv.stop();
    assert_eq!(s.total().commands, 1600);
    assert_eq!(s.total().connections_accepted, 8);
    assert_eq!(s.total().connections_active, 0);
}

#[test]
fn shutdown_closes_idle_connections() {
    let srv = TestServer::start(1, RespLimits::default());
    let mut c = srv.client();
    assert_eq!(c.cmd(&["PING"]), "+PONG");
    let t = Instant::now();
    let stats = srv.stop();
    assert!(t.elapsed() < Duration::from_secs(3), "idle connection did not hold up the drain");
    assert!(c.closed());
    assert_eq!(stats.total().connections_active, 0);
}
