//! QUIC ingest: accepts agent connections with mandatory client certificates, takes the
//! agent's identity from its certificate, and answers every batch stream with an
//! acknowledgement sent only after the storage has made the batch durable (or recognised it
//! as a duplicate). Oversized, malformed or slow frames are refused with a logged reason and
//! affect only their own stream. Each connection is also registered in [`AgentCommands`], so
//! the collector can ask the agent to run an allow-listed action ([`commands`]).

pub mod commands;

pub use commands::AgentCommands;

use crate::signals::SamplesArrived;
use crate::storage::{AppendOutcome, Storage};
use crate::telemetry::CollectorMetrics;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use vigil_shared::codec::{self, AgentMessage, CollectorMessage, RejectReason};

/// How long an agent may take to deliver one whole frame.
const FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent batch streams one agent connection may have open.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// What `/api/v1/agents` reports for one agent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentInfo {
    pub agent: String,
    pub connected: bool,
    pub remote_addr: Option<String>,
    pub connected_since_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    /// Receive time of the last stored batch minus the time the agent collected it.
    pub lag_seconds: Option<f64>,
    pub batches: u64,
    pub duplicates: u64,
    pub samples: u64,
}

/// Agents seen since start, by identity.
#[derive(Debug, Clone, Default)]
pub struct AgentRegistry(Arc<Mutex<BTreeMap<String, AgentInfo>>>);

impl AgentRegistry {
    fn update(&self, agent: &str, f: impl FnOnce(&mut AgentInfo)) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(agent.to_string()).or_insert_with(|| AgentInfo {
            agent: agent.to_string(),
            ..Default::default()
        });
        f(entry);
    }

    /// A snapshot of every agent.
    pub fn list(&self) -> Vec<AgentInfo> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// Builds the QUIC server endpoint from the collector's TLS files.
pub fn endpoint(addr: SocketAddr, tls: rustls::ServerConfig) -> anyhow::Result<quinn::Endpoint> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(Arc::new(tls))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(MAX_STREAMS_PER_CONNECTION.into());
    transport.max_concurrent_uni_streams(16u32.into());
    transport.max_idle_timeout(Some(Duration::from_secs(30).try_into()?));
    server.transport_config(Arc::new(transport));
    Ok(quinn::Endpoint::server(server, addr)?)
}

/// Everything a connection handler needs.
#[derive(Clone)]
pub struct Ingest {
    pub storage: Storage,
    pub agents: AgentRegistry,
    pub metrics: CollectorMetrics,
    pub now_ms: fn() -> i64,
    /// Raised after every stored batch, so alerting rules see new samples at once.
    pub samples_arrived: SamplesArrived,
    /// Where connections register to take remote action requests.
    pub commands: AgentCommands,
}

impl Ingest {
    /// Accepts connections until cancelled, then closes the endpoint so agents learn at once.
    pub async fn serve(
        self,
        endpoint: quinn::Endpoint,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) {
        loop {
            let incoming = tokio::select! {
                _ = cancel.cancelled() => break,
                i = endpoint.accept() => match i { Some(i) => i, None => break },
            };
            let remote = incoming.remote_address();
            let this = self.clone();
            let cancel = cancel.clone();
            tracker.spawn(
                async move { this.connection(incoming, cancel).await }
                    .instrument(tracing::info_span!("agent_connection", %remote)),
            );
        }
        endpoint.close(0u32.into(), b"collector shutting down");
        // Let the close frames go out, so agents learn at once that the connection is gone.
        endpoint.wait_idle().await;
    }

    async fn connection(self, incoming: quinn::Incoming, cancel: CancellationToken) {
        let remote = incoming.remote_address();
        let conn = match incoming.await {
            Ok(c) => c,
            Err(e) => {
                self.metrics
                    .connections
                    .with_label_values(&["refused"])
                    .inc();
                tracing::warn!(%remote, reason = %e, "refused agent connection");
                return;
            }
        };
        let agent = match peer_identity(&conn) {
            Ok(a) => a,
            Err(why) => {
                self.metrics
                    .connections
                    .with_label_values(&["refused"])
                    .inc();
                tracing::warn!(%remote, reason = %why, "refused agent connection");
                conn.close(1u32.into(), b"no usable client certificate");
                return;
            }
        };
        self.metrics
            .connections
            .with_label_values(&["accepted"])
            .inc();
        self.metrics.connected_agents.inc();
        let now = (self.now_ms)();
        self.agents.update(&agent, |a| {
            a.connected = true;
            a.remote_addr = Some(remote.to_string());
            a.connected_since_ms = Some(now);
            a.last_seen_ms = Some(now);
        });
        tracing::info!(%agent, %remote, "agent connected");
        let registration = self.commands.register(&agent, conn.clone());
        let streams = TaskTracker::new();
        loop {
            let stream = tokio::select! {
                _ = cancel.cancelled() => break,
                s = conn.accept_bi() => s,
            };
            match stream {
                Ok((send, recv)) => {
                    let this = self.clone();
                    let agent = agent.clone();
                    streams.spawn(async move { this.batch_stream(&agent, send, recv).await });
                }
                Err(e) => {
                    tracing::info!(%agent, reason = %e, "agent connection ended");
                    break;
                }
            }
        }
        drop(registration);
        streams.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), streams.wait()).await;
        self.metrics.connected_agents.dec();
        self.agents.update(&agent, |a| a.connected = false);
    }

    async fn batch_stream(
        &self,
        agent: &str,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) {
        let started = Instant::now();
        let msg = match tokio::time::timeout(FRAME_TIMEOUT, read_frame(&mut recv)).await {
            Err(_) => Err((
                "timeout",
                format!("no complete frame within {FRAME_TIMEOUT:?}"),
            )),
            Ok(r) => r,
        };
        let msg = match msg {
            Ok(m) => m,
            Err((reason, detail)) => {
                self.metrics
                    .frames_rejected
                    .with_label_values(&[reason])
                    .inc();
                tracing::warn!(%agent, reason, %detail, "refused frame");
                let _ = recv.stop(2u32.into());
                let _ = send.reset(2u32.into());
                return;
            }
        };
        let reply = match msg {
            AgentMessage::Batch {
                stream_id,
                seq,
                payload,
                created_ms,
                ..
            } => {
                let bytes = payload.len() as u64;
                let reply = match self
                    .storage
                    .append_agent_batch(agent, stream_id, seq, payload)
                    .await
                {
                    Ok(AppendOutcome::Stored { samples }) => {
                        self.samples_arrived.raise();
                        self.metrics.batches.with_label_values(&["stored"]).inc();
                        self.metrics.samples_ingested.inc_by(samples as u64);
                        self.metrics.ingest_bytes.inc_by(bytes);
                        let now = (self.now_ms)();
                        self.agents.update(agent, |a| {
                            a.last_seen_ms = Some(now);
                            a.batches += 1;
                            a.samples += samples as u64;
                            a.lag_seconds = Some((now - created_ms).max(0) as f64 / 1000.0);
                        });
                        CollectorMessage::Ack {
                            stream_id,
                            seq,
                            duplicate: false,
                        }
                    }
                    Ok(AppendOutcome::Duplicate) => {
                        self.metrics.batches.with_label_values(&["duplicate"]).inc();
                        let now = (self.now_ms)();
                        self.agents.update(agent, |a| {
                            a.last_seen_ms = Some(now);
                            a.duplicates += 1;
                        });
                        CollectorMessage::Ack {
                            stream_id,
                            seq,
                            duplicate: true,
                        }
                    }
                    Err(e) if e.is_client_error() => {
                        self.metrics.batches.with_label_values(&["malformed"]).inc();
                        tracing::warn!(%agent, seq, reason = %e, "refused malformed batch");
                        CollectorMessage::Reject {
                            stream_id,
                            seq,
                            reason: RejectReason::Malformed(e.to_string()),
                        }
                    }
                    Err(e) => {
                        self.metrics.batches.with_label_values(&["failed"]).inc();
                        tracing::error!(%agent, seq, error = %e, "could not store batch");
                        CollectorMessage::Reject {
                            stream_id,
                            seq,
                            reason: RejectReason::Unavailable(e.to_string()),
                        }
                    }
                };
                self.metrics
                    .ingest_seconds
                    .observe(started.elapsed().as_secs_f64());
                reply
            }
            AgentMessage::ActionResult {
                request_id,
                accepted,
                detail,
                ..
            } => {
                // Answers travel on the collector's request stream ([`commands`]); one on a
                // stream of the agent's own answers nothing.
                tracing::warn!(%agent, request_id, accepted, %detail, "unsolicited action result");
                let _ = send.finish();
                return;
            }
        };
        match codec::encode_frame(&reply) {
            Ok(frame) => {
                if let Err(e) = send.write_all(&frame).await {
                    tracing::debug!(%agent, error = %e, "agent went away before the acknowledgement");
                }
                let _ = send.finish();
            }
            Err(e) => tracing::error!(error = %e, "encoding acknowledgement"),
        }
    }
}

/// Reads one length-prefixed frame, refusing oversized lengths before reading the body.
async fn read_frame(recv: &mut quinn::RecvStream) -> Result<AgentMessage, (&'static str, String)> {
    let mut header = [0u8; codec::HEADER_BYTES];
    recv.read_exact(&mut header)
        .await
        .map_err(|e| ("malformed", format!("reading frame header: {e}")))?;
    let len = codec::frame_len(header).map_err(|e| ("oversized", e.to_string()))?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| ("malformed", format!("reading {len}-byte frame body: {e}")))?;
    codec::decode_body(&body).map_err(|e| ("malformed", e.to_string()))
}

/// The agent identity: the common name of the verified client certificate.
fn peer_identity(conn: &quinn::Connection) -> Result<String, String> {
    let id = conn
        .peer_identity()
        .ok_or("no client certificate presented")?;
    let certs = id
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .map_err(|_| "unexpected peer identity type".to_string())?;
    let leaf = certs.first().ok_or("empty client certificate chain")?;
    vigil_shared::certs::identity_from_der(leaf).map_err(|e| e.to_string())
}
