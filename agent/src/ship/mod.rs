//! Shipping: drains the buffer to a collector over QUIC with mutual TLS. Each batch travels
//! on its own bidirectional stream and is removed from the buffer only when the collector
//! acknowledges it as durable. Up to `max_in_flight` batches are outstanding at once. Newly
//! collected ("live") batches, and priority batches before them, go ahead of the backlog;
//! the backlog drains oldest first. Connection failures rotate through the configured
//! collector addresses with exponential backoff and jitter. The collector may open streams
//! of its own on the connection to ask for an allow-listed action ([`remote`]).

pub mod remote;

use crate::buffer::{Buffer, BufferedBatch};
use crate::telemetry::AgentMetrics;
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use vigil_shared::codec::{self, AgentMessage, CollectorMessage, RejectReason};

/// Errors from one send or connection attempt.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// The address did not resolve.
    #[error("resolving {0}: {1}")]
    Resolve(String, String),
    /// The QUIC handshake failed (includes certificate rejection).
    #[error("connecting to {0}: {1}")]
    Connect(String, String),
    /// The connection broke while sending.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Writing the stream failed.
    #[error("writing batch: {0}")]
    Write(#[from] quinn::WriteError),
    /// Reading the acknowledgement failed.
    #[error("reading acknowledgement: {0}")]
    Read(#[from] quinn::ReadToEndError),
    /// The stream was closed before it could be finished.
    #[error("finishing stream: {0}")]
    Closed(#[from] quinn::ClosedStream),
    /// The acknowledgement did not arrive in time.
    #[error("no acknowledgement within {0:?}")]
    AckTimeout(Duration),
    /// The reply was not a valid message.
    #[error("bad reply: {0}")]
    Codec(#[from] codec::CodecError),
    /// The reply did not answer the batch that was sent.
    #[error("reply {0:?} does not answer the batch")]
    Mismatch(Box<CollectorMessage>),
}

/// Shipping settings.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// Collector addresses (`host:port`), tried in order with failover.
    pub collectors: Vec<String>,
    /// TLS server name to verify; defaults to each address's host part.
    pub server_name: Option<String>,
    pub tls: Arc<rustls::ClientConfig>,
    pub max_in_flight: usize,
    pub ack_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// What `status` shows about the collector connection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectionStatus {
    pub connected: bool,
    pub collector: Option<String>,
    pub connected_since_ms: Option<i64>,
    pub last_ack_ms: Option<i64>,
    pub acked_batches: u64,
    pub in_flight: usize,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
}

/// A notice that a batch was just buffered and should go ahead of the backlog.
#[derive(Debug, Clone, Copy)]
pub struct LiveBatch {
    pub seq: u64,
    pub priority: bool,
}

/// Capacity of the live-batch channel. When it is full the notice is dropped and the batch
/// is shipped from the backlog instead: nothing is lost, it only loses its place in line.
pub const LIVE_CHANNEL_CAPACITY: usize = 256;

/// Drives shipping until cancelled.
pub struct Shipper {
    pub cfg: ShipConfig,
    pub buffer: Arc<Buffer>,
    pub metrics: AgentMetrics,
    pub status: Arc<Mutex<ConnectionStatus>>,
    pub live: mpsc::Receiver<LiveBatch>,
    pub now_ms: fn() -> i64,
    /// Serves the collector's remote action requests; None refuses them all (the streams
    /// are never accepted).
    pub remote: Option<remote::RemoteActions>,
    /// Tracks the tasks the shipper spawns (the remote-request acceptor of each
    /// connection), so shutdown waits for them.
    pub tracker: TaskTracker,
}

/// The backoff before attempt `failures` (1-based): exponential, capped, with full jitter
/// in the upper half so that many agents do not reconnect in lockstep.
pub fn backoff(failures: u32, min: Duration, max: Duration) -> Duration {
    let exp = min.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let capped = exp.min(max);
    let half = capped / 2;
    half + half.mul_f64(rand::random::<f64>())
}

fn split_host(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    }
}

impl Shipper {
    fn set_status(&self, f: impl FnOnce(&mut ConnectionStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Runs until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) {
        let endpoint = match quinn::Endpoint::client(SocketAddr::from(([0, 0, 0, 0], 0))) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "cannot bind a UDP socket for QUIC; shipping disabled");
                return;
            }
        };
        let client = match quinn::crypto::rustls::QuicClientConfig::try_from(self.cfg.tls.clone()) {
            Ok(c) => {
                let mut cc = quinn::ClientConfig::new(Arc::new(c));
                let mut transport = quinn::TransportConfig::default();
                transport.keep_alive_interval(Some(Duration::from_secs(2)));
                transport
                    .max_idle_timeout(Some(Duration::from_secs(10).try_into().expect("small")));
                transport.max_concurrent_bidi_streams(1024u32.into());
                cc.transport_config(Arc::new(transport));
                cc
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS config unusable for QUIC; shipping disabled");
                return;
            }
        };
        let mut failures: u32 = 0;
        let mut next_addr = 0usize;
        while !cancel.is_cancelled() {
            let addr = self.cfg.collectors[next_addr % self.cfg.collectors.len()].clone();
            self.set_status(|s| s.collector = Some(addr.clone()));
            match self.connect(&endpoint, &client, &addr).await {
                Ok(conn) => {
                    self.metrics.connects.with_label_values(&["ok"]).inc();
                    tracing::info!(collector = %addr, "connected to collector");
                    let now = (self.now_ms)();
                    self.set_status(|s| {
                        s.connected = true;
                        s.connected_since_ms = Some(now);
                    });
                    let requests =
                        self.remote.clone().map(|r| {
                            self.tracker.spawn(r.accept(conn.clone()).instrument(
                                tracing::info_span!("remote_requests", collector = %addr),
                            ))
                        });
                    let progressed = self.drive(&conn, &cancel).await;
                    if let Some(h) = requests {
                        h.abort();
                    }
                    conn.close(0u32.into(), b"agent closing connection");
                    self.set_status(|s| {
                        s.connected = false;
                        s.in_flight = 0;
                    });
                    if cancel.is_cancelled() {
                        break;
                    }
                    if progressed {
                        failures = 0;
                    }
                }
                Err(e) => {
                    self.metrics.connects.with_label_values(&["error"]).inc();
                    tracing::warn!(collector = %addr, error = %e, "collector unreachable");
                    self.set_status(|s| s.last_error = Some(e.to_string()));
                    next_addr += 1;
                }
            }
            failures += 1;
            self.set_status(|s| s.consecutive_failures = failures);
            let wait = backoff(failures, self.cfg.backoff_min, self.cfg.backoff_max);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        endpoint.close(0u32.into(), b"agent shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    }

    async fn connect(
        &self,
        endpoint: &quinn::Endpoint,
        client: &quinn::ClientConfig,
        addr: &str,
    ) -> Result<quinn::Connection, ShipError> {
        let sock = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| ShipError::Resolve(addr.into(), e.to_string()))?
            .next()
            .ok_or_else(|| ShipError::Resolve(addr.into(), "no addresses".into()))?;
        let name = self
            .cfg
            .server_name
            .clone()
            .unwrap_or_else(|| split_host(addr).to_string());
        let connecting = endpoint
            .connect_with(client.clone(), sock, &name)
            .map_err(|e| ShipError::Connect(addr.into(), e.to_string()))?;
        match tokio::time::timeout(Duration::from_secs(5), connecting).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(ShipError::Connect(addr.into(), e.to_string())),
            Err(_) => Err(ShipError::Connect(
                addr.into(),
                "handshake timed out".into(),
            )),
        }
    }

    /// Ships over one connection until it fails or shutdown. Returns true when at least one
    /// batch was acknowledged.
    async fn drive(&mut self, conn: &quinn::Connection, cancel: &CancellationToken) -> bool {
        let stream_id = self.buffer.stream_id();
        let mut queue = DrainQueue::default();
        let mut in_flight: HashSet<u64> = HashSet::new();
        let mut tasks: JoinSet<(u64, SendOutcome)> = JoinSet::new();
        let mut progressed = false;
        let mut broken = false;
        loop {
            // Fill the window: priority and live batches first, then the backlog, oldest first.
            while !broken && in_flight.len() < self.cfg.max_in_flight {
                let next = queue.next(&in_flight, |from, n| match self.buffer.seqs_from(from, n) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::error!(error = %e, "reading buffer");
                        Vec::new()
                    }
                });
                let Some(seq) = next else { break };
                let batch = match self.buffer.get(seq) {
                    Ok(Some(b)) => b,
                    Ok(None) => continue, // acknowledged or evicted meanwhile
                    Err(e) => {
                        tracing::error!(error = %e, seq, "reading buffered batch");
                        continue;
                    }
                };
                in_flight.insert(seq);
                let conn = conn.clone();
                let timeout = self.cfg.ack_timeout;
                // Tracked, so shutdown waits for a send the JoinSet has not yet aborted.
                tasks.spawn(
                    self.tracker.track_future(
                        async move { (seq, send_batch(&conn, stream_id, batch, timeout).await) }
                            .instrument(tracing::info_span!("send_batch", seq)),
                    ),
                );
            }
            self.set_status(|s| s.in_flight = in_flight.len());
            if broken && tasks.is_empty() {
                return progressed;
            }
            tokio::select! {
                _ = cancel.cancelled() => {
                    // Give outstanding sends a moment to be acknowledged, then stop.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok((seq, r))) = tasks.join_next().await {
                            self.settle(seq, r);
                        }
                    }).await;
                    return progressed;
                }
                notice = self.live.recv(), if !broken => match notice {
                    Some(l) => queue.notice(l),
                    None => return progressed,
                },
                _ = conn.closed(), if !broken => {
                    broken = true;
                }
                Some(joined) = tasks.join_next() => {
                    let Ok((seq, result)) = joined else { continue };
                    in_flight.remove(&seq);
                    match self.settle(seq, result) {
                        Settled::Acked => progressed = true,
                        Settled::Retry => {
                            queue.retry(seq);
                            broken = true;
                        }
                        Settled::Dropped => {}
                    }
                }
            }
        }
    }

    fn settle(&self, seq: u64, result: SendOutcome) -> Settled {
        match result {
            Ok((CollectorMessage::Ack { duplicate, .. }, took, bytes)) => {
                if let Err(e) = self.buffer.ack(seq) {
                    tracing::error!(error = %e, seq, "removing acknowledged batch");
                }
                self.metrics.batches_acked.inc();
                if duplicate {
                    self.metrics.batches_duplicate.inc();
                }
                self.metrics.bytes_shipped.inc_by(bytes as u64);
                self.metrics.ack_seconds.observe(took.as_secs_f64());
                let now = (self.now_ms)();
                self.set_status(|s| {
                    s.last_ack_ms = Some(now);
                    s.acked_batches += 1;
                    s.consecutive_failures = 0;
                });
                Settled::Acked
            }
            Ok((
                CollectorMessage::Reject {
                    reason: RejectReason::Malformed(why),
                    ..
                },
                _,
                _,
            )) => {
                tracing::error!(seq, reason = %why, "collector refused batch as malformed; dropping it");
                self.metrics.batches_rejected.inc();
                let _ = self.buffer.ack(seq);
                Settled::Dropped
            }
            Ok((other, _, _)) => {
                tracing::warn!(seq, reply = ?other, "collector could not store batch; will retry");
                self.metrics.ship_retries.inc();
                self.set_status(|s| s.last_error = Some(format!("{other:?}")));
                Settled::Retry
            }
            Err(e) => {
                tracing::warn!(seq, error = %e, "sending batch failed; will retry");
                self.metrics.ship_retries.inc();
                self.set_status(|s| s.last_error = Some(e.to_string()));
                Settled::Retry
            }
        }
    }
}

/// The order in which buffered batches are sent on one connection: priority notices first,
/// then live notices in arrival order, then the backlog from the oldest sequence up. A
/// batch that failed moves the backlog cursor back so it is retried.
#[derive(Debug, Default)]
pub struct DrainQueue {
    live: VecDeque<u64>,
    cursor: u64,
}

/// How many buffered sequence numbers to read per backlog step.
const BACKLOG_STEP: usize = 64;

impl DrainQueue {
    /// A batch was just buffered: it goes ahead of the backlog (priority ahead of all).
    pub fn notice(&mut self, l: LiveBatch) {
        if l.priority {
            self.live.push_front(l.seq);
        } else {
            self.live.push_back(l.seq);
        }
    }

    /// A send of `seq` failed: the backlog scan will reach it again.
    pub fn retry(&mut self, seq: u64) {
        self.cursor = self.cursor.min(seq);
    }

    /// The next sequence to send, skipping those in flight. `backlog(from, n)` lists up to
    /// `n` buffered sequences at or after `from`, in order.
    pub fn next(
        &mut self,
        in_flight: &HashSet<u64>,
        mut backlog: impl FnMut(u64, usize) -> Vec<u64>,
    ) -> Option<u64> {
        while let Some(seq) = self.live.pop_front() {
            if !in_flight.contains(&seq) {
                return Some(seq);
            }
        }
        loop {
            let seqs = backlog(self.cursor, BACKLOG_STEP);
            let last = *seqs.last()?;
            if let Some(s) = seqs.into_iter().find(|s| !in_flight.contains(s)) {
                self.cursor = s + 1;
                return Some(s);
            }
            self.cursor = last + 1;
        }
    }
}

enum Settled {
    Acked,
    Retry,
    Dropped,
}

/// A reply with its round-trip time and the payload bytes sent, or why the send failed.
type SendOutcome = Result<(CollectorMessage, Duration, usize), ShipError>;

/// Largest acknowledgement frame accepted from the collector.
const MAX_REPLY_BYTES: usize = 64 * 1024;

async fn send_batch(
    conn: &quinn::Connection,
    stream_id: u64,
    b: BufferedBatch,
    timeout: Duration,
) -> SendOutcome {
    let started = Instant::now();
    let seq = b.seq;
    let bytes = b.payload.len();
    let frame = codec::encode_frame(&AgentMessage::Batch {
        stream_id,
        seq,
        priority: b.priority,
        created_ms: b.created_ms,
        payload: b.payload,
    })?;
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(&frame).await?;
        send.finish()?;
        let reply = recv.read_to_end(MAX_REPLY_BYTES).await?;
        let msg: CollectorMessage = codec::decode_frame(&reply)?;
        Ok::<_, ShipError>(msg)
    };
    let msg = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ShipError::AckTimeout(timeout))??;
    match &msg {
        CollectorMessage::Ack {
            stream_id: s,
            seq: q,
            ..
        }
        | CollectorMessage::Reject {
            stream_id: s,
            seq: q,
            ..
        } if *s == stream_id && *q == seq => Ok((msg, started.elapsed(), bytes)),
        _ => Err(ShipError::Mismatch(Box::new(msg))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        for f in 1..40 {
            let d = backoff(f, min, max);
            assert!(d <= max, "attempt {f}: {d:?}");
            assert!(d >= min.saturating_mul(1 << (f - 1).min(16)).min(max) / 2);
        }
    }

    #[test]
    fn live_and_priority_batches_go_ahead_of_the_backlog_and_failures_are_retried() {
        let buffered: Vec<u64> = (0..200).collect();
        let backlog = |from: u64, n: usize| {
            buffered
                .iter()
                .copied()
                .filter(|s| *s >= from)
                .take(n)
                .collect::<Vec<_>>()
        };
        let mut q = DrainQueue::default();
        let mut in_flight = HashSet::new();
        let take = |q: &mut DrainQueue, in_flight: &mut HashSet<u64>| {
            let s = q.next(in_flight, backlog).unwrap();
            in_flight.insert(s);
            s
        };
        assert_eq!(take(&mut q, &mut in_flight), 0);
        assert_eq!(take(&mut q, &mut in_flight), 1);
        q.notice(LiveBatch {
            seq: 199,
            priority: false,
        });
        q.notice(LiveBatch {
            seq: 198,
            priority: true,
        });
        assert_eq!(take(&mut q, &mut in_flight), 198, "priority first");
        assert_eq!(take(&mut q, &mut in_flight), 199, "then live");
        assert_eq!(
            take(&mut q, &mut in_flight),
            2,
            "then the backlog, oldest first"
        );
        in_flight.remove(&1);
        q.retry(1);
        assert_eq!(take(&mut q, &mut in_flight), 1, "a failed batch is retried");
        assert_eq!(take(&mut q, &mut in_flight), 3);
        // Everything in flight: nothing to send, even past a full backlog step.
        let mut all: HashSet<u64> = (0..200).collect();
        let mut q = DrainQueue::default();
        assert_eq!(q.next(&all, backlog), None);
        all.remove(&150);
        let mut q = DrainQueue::default();
        assert_eq!(q.next(&all, backlog), Some(150));
    }

    #[test]
    fn server_name_is_the_host_part() {
        assert_eq!(split_host("collector.example:4433"), "collector.example");
        assert_eq!(split_host("[::1]:4433"), "::1");
        assert_eq!(split_host("127.0.0.1:1"), "127.0.0.1");
    }
}
