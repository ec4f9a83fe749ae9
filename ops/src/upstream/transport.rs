//! How upstream bytes are fetched: over HTTP(S) with the net client, or by
//! calling the simulator in-process (`maple serve` with no key).

use std::sync::Arc;

use bytes::Bytes;
use engine::owner::upstream::{UpstreamError, MAX_UPSTREAM_BODY};
use futures::future::LocalBoxFuture;

use crate::sim::Simulator;

pub enum Transport {
    Sim(Arc<Simulator>),
    /// One keep-alive client per core. A client that could not be built
    /// (bad URL) fails every call with that reason instead of panicking.
    Http(Box<Result<net::HttpClient, String>>),
    /// Every call fails with this reason (a wiring error, logged once).
    Broken(String),
}

impl engine::owner::Transport for Transport {
    fn get(&self, path_and_query: &str) -> LocalBoxFuture<'_, Result<(u16, Bytes), UpstreamError>> {
        let path = path_and_query.to_owned();
        Box::pin(async move { Transport::get(self, &path).await })
    }
}

impl Transport {
    pub fn http(base_url: &str, api_key: Option<&str>, timeout: std::time::Duration) -> Transport {
        let cfg = net::ClientConfig {
            base_url: base_url.to_owned(),
            timeout,
            max_body_bytes: MAX_UPSTREAM_BODY,
            max_idle_per_host: 64,
            default_headers: api_key.map(|k| vec![("x-nxopen-api-key".to_owned(), k.to_owned())]).unwrap_or_default(),
        };
        let client = net::HttpClient::new(cfg).map_err(|e| e.to_string());
        if let Err(e) = &client {
            tracing::error!(base_url, error = %e, "upstream client cannot be built: every upstream call will fail");
        }
        Transport::Http(Box::new(client))
    }

    /// `GET path_and_query` → (status, body).
    pub async fn get(&self, path_and_query: &str) -> Result<(u16, Bytes), UpstreamError> {
        match self {
            Transport::Sim(sim) => {
                let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
                let reply = sim.call(path, query).await;
                Ok((reply.status, reply.body))
            }
            Transport::Broken(why) => Err(UpstreamError::Transport(why.clone())),
            Transport::Http(client) => match client.as_ref() {
                Err(e) => Err(UpstreamError::Transport(e.clone())),
                Ok(client) => match client.get(path_and_query, &[("accept", "application/json")]).await {
                    Ok(resp) => Ok((resp.status, resp.body)),
                    Err(net::ClientError::Timeout(_)) => Err(UpstreamError::Timeout),
                    Err(net::ClientError::BodyTooLarge(n)) => Err(UpstreamError::BadBody(format!("body over {n} bytes"))),
                    Err(e) => Err(UpstreamError::Transport(e.to_string())),
                },
            },
        }
    }
}
