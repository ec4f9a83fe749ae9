//! Peer protocol between maple nodes: length-prefixed, versioned binary
//! frames over TCP, one connection per (node, core) pair shared by every
//! Raft group of that core. Carries Raft RPCs (opaque bodies encoded by
//! `replication`), forwarded client requests with their `traceparent`, and
//! their answers. Bounded per connection: frame size and requests in flight.

pub mod conn;
pub mod frame;

pub use conn::{accept_loop, handoff_loop, serve_conn, DropSwitch, Handoff, PeerClient, PeerError, PeerHandler, PeerLimits};
pub use frame::{
    decode_frame, Forward, Frame, FrameDecoder, FrameError, Hello, DEFAULT_MAX_FRAME, HEADER_LEN, KIND_ERROR, KIND_FORWARD,
    KIND_FORWARD_REPLY, KIND_HELLO, KIND_INFO, KIND_REPLY, MAX_TRACEPARENT, VERSION,
};
