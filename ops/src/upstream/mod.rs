//! How the node reaches the upstream (the Nexon Open API, or the simulator
//! in-process): the byte transports `engine::owner::upstream::Nexon` calls
//! through (the API's paths, the breaker and the timeout are the engine's).

pub mod transport;

pub use transport::Transport;
