//! How upstream bytes are fetched: over HTTP(S) with the net client, or by
//! calling the simulator in-process (`maple serve` with no key).

use std::sync::Arc;

use bytes::Bytes;

use super::nexon::UpstreamError;
use crate::sim::Simulator;

pub enum Transport {
    Sim(Arc<Simulator>),
    // TEMP until net::client lands
    Http { base_url: String, api_key: Option<String> },
}

impl Transport {
    pub fn http(base_url: &str, api_key: Option<&str>) -> Transport {
        Transport::Http { base_url: base_url.to_owned(), api_key: api_key.map(str::to_owned) }
    }

    /// `GET path_and_query` → (status, body).
    pub async fn get(&self, path_and_query: &str) -> Result<(u16, Bytes), UpstreamError> {
        match self {
            Transport::Sim(sim) => {
                let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
                let reply = sim.call(path, query).await;
                Ok((reply.status, reply.body))
            }
            Transport::Http { .. } => Err(UpstreamError::Transport("http client not wired yet".into())),
        }
    }
}
