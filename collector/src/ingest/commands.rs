//! Remote action requests to connected agents: [`AgentCommands`] is the registry of live
//! agent connections, by identity (the common name of the agent's certificate), each with a
//! bounded command queue. [`AgentCommands::run_action`] is the one entry point; the HTTP
//! endpoint `POST /api/v1/agents/{agent}/actions/{name}` and, later, automation rules call it.
//!
//! **Stream design: one collector-opened bidirectional stream per request.** The collector
//! opens a new stream on the agent's existing connection, writes one
//! `CollectorMessage::RunAction` frame and finishes its side; the agent answers with one
//! `AgentMessage::ActionResult` frame on the same stream. This mirrors how batches travel the
//! other way, and was chosen over a long-lived control stream because:
//! - request and answer are paired by the stream itself (the `request_id` is still checked),
//!   so there is no demultiplexing table to leak or desynchronise;
//! - a request that is slow (an action running for minutes), oversized or garbled affects
//!   only its own stream, never the next request: no head-of-line blocking and no framing
//!   state to recover after an error;
//! - opening a QUIC stream costs no round trip, and there is nothing to re-establish after
//!   a reconnect: the next request simply uses the new connection;
//! - the agent bounds what it serves with ordinary per-stream limits (frame size, read
//!   timeout, a concurrency cap).
//!
//! Flow control: each connection has a queue of [`COMMAND_QUEUE`] requests drained by one
//! task that keeps at most [`MAX_IN_FLIGHT_PER_AGENT`] exchanges open. When the queue is full
//! a request fails at once with [`CommandError::Busy`] (HTTP 429); nothing waits unbounded.
//! Every request has a deadline covering queueing, the run and the answer; past it the
//! caller gets [`CommandError::Timeout`] (HTTP 504) and the stream is dropped (the agent
//! still finishes, audits and reports the run as an event). Refusals are logged as warnings
//! with agent, action and reason; every result is counted in
//! `vigil_collector_remote_actions_total{result}`.

use crate::telemetry::CollectorMetrics;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::Instrument;
use vigil_shared::codec::{self, AgentMessage, CollectorMessage};

/// Requests queued per agent connection before [`CommandError::Busy`].
pub const COMMAND_QUEUE: usize = 16;
/// Requests per agent connection with a stream open at once (the agent itself serves 8).
pub const MAX_IN_FLIGHT_PER_AGENT: usize = 8;
/// Deadline when the caller sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest deadline a caller may set.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// The agent's answer to one request, as the HTTP API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionAnswer {
    pub agent: String,
    pub action: String,
    pub request_id: u64,
    /// True when the action ran (or was a dry run); false when the agent refused it.
    pub accepted: bool,
    /// `ok`, `failed`, `timeout`, `spawn_error`, `dry_run` or `refused`.
    pub outcome: String,
    /// The agent's refusal reason, for refused requests.
    pub reason: Option<String>,
    /// The agent's one-line summary.
    pub detail: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// How long the action ran on the agent.
    pub duration_ms: Option<u64>,
    /// The start of the action's stdout and stderr (the agent's audit log keeps more).
    pub stdout: String,
    pub stderr: String,
    /// Time from the request to the answer, as the collector saw it.
    pub round_trip_ms: u64,
}

/// Why a request got no answer from the agent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    /// The request is malformed (empty or over-long action name, zero or huge timeout).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// No agent with this identity is connected.
    #[error("agent {0:?} is not connected")]
    NotConnected(String),
    /// The agent's request queue is full.
    #[error("agent {0:?} already has {COMMAND_QUEUE} requests queued; try again later")]
    Busy(String),
    /// No answer within the deadline (the action may still be running on the agent).
    #[error(
        "no answer from agent {agent:?} within {timeout:?}; the action may still be running there"
    )]
    Timeout { agent: String, timeout: Duration },
    /// The stream or the connection failed before the answer arrived.
    #[error("agent {agent:?}: {detail}")]
    Transport { agent: String, detail: String },
    /// The agent answered with something that is not the answer to this request.
    #[error("agent {agent:?} sent an invalid answer: {detail}")]
    Protocol { agent: String, detail: String },
}

impl CommandError {
    /// The `result` label of `vigil_collector_remote_actions_total`.
    pub fn result_label(&self) -> &'static str {
        match self {
            CommandError::BadRequest(_) => "bad_request",
            CommandError::NotConnected(_) => "not_connected",
            CommandError::Busy(_) => "busy",
            CommandError::Timeout { .. } => "no_answer",
            CommandError::Transport { .. } | CommandError::Protocol { .. } => "error",
        }
    }
}

struct Command {
    request_id: u64,
    action: String,
    deadline: tokio::time::Instant,
    timeout: Duration,
    reply: oneshot::Sender<Exchange>,
}

struct Live {
    conn_id: u64,
    tx: mpsc::Sender<Command>,
}

struct Inner {
    live: Mutex<HashMap<String, Live>>,
    next_request: AtomicU64,
    next_conn: AtomicU64,
    metrics: CollectorMetrics,
}

/// The live agent connections that can take requests. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct AgentCommands {
    inner: Arc<Inner>,
}

/// Keeps an agent connection registered; dropping it unregisters the connection (unless a
/// newer connection of the same agent has replaced it) and stops its command task.
pub struct Registration {
    commands: AgentCommands,
    agent: String,
    conn_id: u64,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut live = self
            .commands
            .inner
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if live
            .get(&self.agent)
            .is_some_and(|l| l.conn_id == self.conn_id)
        {
            live.remove(&self.agent);
        }
        self.task.abort();
    }
}

impl AgentCommands {
    pub fn new(metrics: CollectorMetrics) -> AgentCommands {
        AgentCommands {
            inner: Arc::new(Inner {
                live: Mutex::new(HashMap::new()),
                // Request ids start at the wall clock's milliseconds, so ids from a
                // restarted collector do not repeat those in the agents' logs.
                next_request: AtomicU64::new(crate::clock::now_ms().max(0) as u64 * 1000),
                next_conn: AtomicU64::new(0),
                metrics,
            }),
        }
    }

    /// The metrics the requests are counted in.
    pub fn metrics(&self) -> &CollectorMetrics {
        &self.inner.metrics
    }

    /// Identities of the agents that can take requests now, sorted.
    pub fn connected(&self) -> Vec<String> {
        let live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<String> = live.keys().cloned().collect();
        v.sort();
        v
    }

    /// Registers `conn` as the way to reach `agent` (replacing an older connection of the
    /// same agent) and starts the task that sends it requests. Keep the [`Registration`]
    /// for as long as the connection serves.
    pub fn register(&self, agent: &str, conn: quinn::Connection) -> Registration {
        let conn_id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let task = tokio::spawn(
            serve_connection(agent.to_string(), conn, rx)
                .instrument(tracing::info_span!("agent_commands", %agent)),
        );
        self.inner
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent.to_string(), Live { conn_id, tx });
        Registration {
            commands: self.clone(),
            agent: agent.to_string(),
            conn_id,
            task,
        }
    }

    /// Asks `agent` to run its locally configured action `action` and waits up to `timeout`
    /// (default [`DEFAULT_TIMEOUT`]) for the answer. A refusal is an `Ok` answer with
    /// `accepted: false`; errors mean the agent gave no answer.
    pub async fn run_action(
        &self,
        agent: &str,
        action: &str,
        timeout: Option<Duration>,
    ) -> Result<ActionAnswer, CommandError> {
        let m = &self.inner.metrics;
        m.remote_actions_in_flight.inc();
        let started = Instant::now();
        let r = self.request(agent, action, timeout, started).await;
        m.remote_actions_in_flight.dec();
        m.remote_action_seconds
            .observe(started.elapsed().as_secs_f64());
        match &r {
            Ok(a) => {
                m.remote_actions.with_label_values(&[&a.outcome]).inc();
                if a.accepted {
                    tracing::info!(%agent, %action, request_id = a.request_id, outcome = %a.outcome,
                        exit_code = ?a.exit_code, duration_ms = ?a.duration_ms, "remote action ran");
                } else {
                    tracing::warn!(%agent, %action, request_id = a.request_id,
                        reason = a.reason.as_deref().unwrap_or(""), "remote action refused by the agent");
                }
            }
            Err(e) => {
                m.remote_actions
                    .with_label_values(&[e.result_label()])
                    .inc();
                tracing::warn!(%agent, %action, reason = %e, "remote action request failed");
            }
        }
        r
    }

    async fn request(
        &self,
        agent: &str,
        action: &str,
        timeout: Option<Duration>,
        started: Instant,
    ) -> Result<ActionAnswer, CommandError> {
        if action.is_empty() {
            return Err(CommandError::BadRequest("the action name is empty".into()));
        }
        if action.len() > codec::MAX_ACTION_NAME_BYTES {
            return Err(CommandError::BadRequest(format!(
                "the action name is {} bytes long; the limit is {}",
                action.len(),
                codec::MAX_ACTION_NAME_BYTES
            )));
        }
        let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(CommandError::BadRequest(format!(
                "timeout must be above 0 and at most {}",
                vigil_shared::duration::format(MAX_TIMEOUT)
            )));
        }
        let tx = {
            let live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
            match live.get(agent) {
                Some(l) => l.tx.clone(),
                None => return Err(CommandError::NotConnected(agent.to_string())),
            }
        };
        let request_id = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let cmd = Command {
            request_id,
            action: action.to_string(),
            deadline: tokio::time::Instant::now() + timeout,
            timeout,
            reply,
        };
        match tx.try_send(cmd) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(CommandError::Busy(agent.to_string()))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(CommandError::NotConnected(agent.to_string()))
            }
        }
        let msg = match tokio::time::timeout(timeout, answer).await {
            Err(_) => {
                return Err(CommandError::Timeout {
                    agent: agent.to_string(),
                    timeout,
                })
            }
            Ok(Err(_)) => {
                return Err(CommandError::Transport {
                    agent: agent.to_string(),
                    detail: "the connection closed before the request was sent".into(),
                })
            }
            Ok(Ok(r)) => r?,
        };
        let AgentMessage::ActionResult {
            request_id: answered,
            accepted,
            detail,
            outcome,
            exit_code,
            signal,
            duration_ms,
            stdout,
            stderr,
        } = msg
        else {
            return Err(CommandError::Protocol {
                agent: agent.to_string(),
                detail: "expected an ActionResult, got a batch".into(),
            });
        };
        if answered != request_id {
            return Err(CommandError::Protocol {
                agent: agent.to_string(),
                detail: format!("answer to request {answered}, expected {request_id}"),
            });
        }
        let reason = (!accepted).then(|| {
            // The agent's refusal reads "<action>: refused: <reason>".
            detail
                .split_once(": refused: ")
                .map(|(_, r)| r.to_string())
                .unwrap_or_else(|| detail.clone())
        });
        Ok(ActionAnswer {
            agent: agent.to_string(),
            action: action.to_string(),
            request_id,
            accepted,
            outcome,
            reason,
            detail,
            exit_code,
            signal,
            duration_ms,
            stdout,
            stderr,
            round_trip_ms: started.elapsed().as_millis() as u64,
        })
    }
}

/// The raw answer on the wire, or why there is none.
type Exchange = Result<AgentMessage, CommandError>;

/// Sends queued requests to one agent connection, at most [`MAX_IN_FLIGHT_PER_AGENT`] at once,
/// until the connection closes or the registration is dropped.
async fn serve_connection(agent: String, conn: quinn::Connection, mut rx: mpsc::Receiver<Command>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_AGENT));
    loop {
        // A slot first, then a request: while all slots are busy, requests wait in the
        // queue, where they count against its capacity.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let cmd = tokio::select! {
            _ = conn.closed() => return,
            c = rx.recv() => match c { Some(c) => c, None => return },
        };
        let (conn, agent) = (conn.clone(), agent.clone());
        tokio::spawn(
            async move {
                let Command {
                    request_id,
                    action,
                    deadline,
                    timeout,
                    reply,
                } = cmd;
                let r = match tokio::time::timeout_at(
                    deadline,
                    exchange(&conn, &agent, request_id, &action),
                )
                .await
                {
                    Ok(r) => r,
                    // The caller's own timer fires at the same deadline; whichever it sees
                    // first, the answer is the same.
                    Err(_) => Err(CommandError::Timeout { agent, timeout }),
                };
                drop(permit);
                let _ = reply.send(r);
            }
            .instrument(tracing::debug_span!("remote_action")),
        );
    }
}

/// One request on its own stream: the RunAction frame out, one bounded answer frame back.
async fn exchange(
    conn: &quinn::Connection,
    agent: &str,
    request_id: u64,
    action: &str,
) -> Exchange {
    let transport = |detail: String| CommandError::Transport {
        agent: agent.to_string(),
        detail,
    };
    let frame = codec::encode_frame(&CollectorMessage::RunAction {
        request_id,
        action: action.to_string(),
    })
    .map_err(|e| transport(format!("encoding the request: {e}")))?;
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| transport(format!("opening a stream: {e}")))?;
    send.write_all(&frame)
        .await
        .map_err(|e| transport(format!("sending the request: {e}")))?;
    let _ = send.finish();
    let answer = recv
        .read_to_end(codec::HEADER_BYTES + codec::MAX_COMMAND_BYTES)
        .await
        .map_err(|e| match e {
            quinn::ReadToEndError::TooLong => CommandError::Protocol {
                agent: agent.to_string(),
                detail: format!(
                    "answer exceeds the limit of {} bytes",
                    codec::MAX_COMMAND_BYTES
                ),
            },
            quinn::ReadToEndError::Read(quinn::ReadError::Reset(_)) => {
                transport("the agent refused the request stream (see its log)".into())
            }
            e => transport(format!("reading the answer: {e}")),
        })?;
    codec::decode_frame(&answer).map_err(|e| CommandError::Protocol {
        agent: agent.to_string(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    /// A collector-side connection to an in-process stand-in agent (mutual TLS over
    /// 127.0.0.1) that answers `ok` correctly, `liar` with the wrong request id, and holds
    /// `sleepy` for 5 s.
    async fn fake_agent() -> (quinn::Endpoint, quinn::Endpoint, quinn::Connection) {
        use vigil_shared::certs::{self, Role};
        let ca = certs::generate_ca("test CA").unwrap();
        let server = certs::issue(&ca, Role::Collector, "localhost", &[]).unwrap();
        let client = certs::issue(&ca, Role::Agent, "web-01", &[]).unwrap();
        let scfg = certs::server_config(
            ca.cert_pem.as_bytes(),
            server.cert_pem.as_bytes(),
            server.key_pem.as_bytes(),
        )
        .unwrap();
        let ccfg = certs::client_config(
            ca.cert_pem.as_bytes(),
            client.cert_pem.as_bytes(),
            client.key_pem.as_bytes(),
        )
        .unwrap();
        let server_ep =
            crate::ingest::endpoint(SocketAddr::from(([127, 0, 0, 1], 0)), scfg).unwrap();
        let addr = server_ep.local_addr().unwrap();
        let mut agent_ep = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let ccfg = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(ccfg)).unwrap();
        let mut cc = quinn::ClientConfig::new(Arc::new(ccfg));
        let mut transport = quinn::TransportConfig::default();
        transport.max_concurrent_bidi_streams(1024u32.into());
        cc.transport_config(Arc::new(transport));
        agent_ep.set_default_client_config(cc);
        let (agent_conn, collector_conn) = tokio::join!(
            async { agent_ep.connect(addr, "localhost").unwrap().await.unwrap() },
            async { server_ep.accept().await.unwrap().await.unwrap() }
        );
        tokio::spawn(async move {
            while let Ok((mut send, mut recv)) = agent_conn.accept_bi().await {
                tokio::spawn(async move {
                    let req = recv.read_to_end(codec::MAX_COMMAND_BYTES).await.unwrap();
                    let CollectorMessage::RunAction { request_id, action } =
                        codec::decode_frame(&req).unwrap()
                    else {
                        panic!("not a request")
                    };
                    let request_id = match action.as_str() {
                        "liar" => request_id + 1,
                        "sleepy" => {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            request_id
                        }
                        _ => request_id,
                    };
                    let answer = codec::encode_frame(&AgentMessage::ActionResult {
                        request_id,
                        accepted: true,
                        detail: "ok, exit code 0, 1 ms".into(),
                        outcome: "ok".into(),
                        exit_code: Some(0),
                        signal: None,
                        duration_ms: Some(1),
                        stdout: "hi\n".into(),
                        stderr: String::new(),
                    })
                    .unwrap();
                    let _ = send.write_all(&answer).await;
                    let _ = send.finish();
                    let _ = send.stopped().await;
                });
            }
        });
        (server_ep, agent_ep, collector_conn)
    }

    #[tokio::test]
    async fn answers_are_paired_by_request_id_and_queues_and_deadlines_are_bounded() {
        let (_s, _a, conn) = fake_agent().await;
        let metrics = CollectorMetrics::default();
        let c = AgentCommands::new(metrics.clone());
        let registration = c.register("web-01", conn);
        assert_eq!(c.connected(), vec!["web-01".to_string()]);
        let a = c.run_action("web-01", "ok", None).await.unwrap();
        assert!(a.accepted);
        assert_eq!((a.outcome.as_str(), a.exit_code), ("ok", Some(0)));
        assert_eq!(a.stdout, "hi\n");
        assert_eq!(a.reason, None);
        let e = c.run_action("web-01", "liar", None).await.unwrap_err();
        assert!(
            matches!(&e, CommandError::Protocol { detail, .. } if detail.contains("expected")),
            "{e}"
        );
        let e = c
            .run_action("web-01", "sleepy", Some(Duration::from_millis(200)))
            .await
            .unwrap_err();
        assert!(matches!(e, CommandError::Timeout { .. }), "{e}");
        // 8 requests in flight plus 16 queued fill this agent's share; the next is refused
        // at once instead of waiting.
        let mut waiting = Vec::new();
        for _ in 0..MAX_IN_FLIGHT_PER_AGENT + COMMAND_QUEUE {
            let c = c.clone();
            waiting.push(tokio::spawn(async move {
                c.run_action("web-01", "sleepy", Some(Duration::from_secs(2)))
                    .await
            }));
            // Let the connection's task take what it has slots for before the next one.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            c.run_action("web-01", "ok", None).await,
            Err(CommandError::Busy("web-01".into()))
        );
        for w in waiting {
            assert!(matches!(
                w.await.unwrap(),
                Err(CommandError::Timeout { .. })
            ));
        }
        assert_eq!(metrics.remote_actions.with_label_values(&["busy"]).get(), 1);
        assert_eq!(metrics.remote_actions.with_label_values(&["ok"]).get(), 1);
        assert_eq!(metrics.remote_actions_in_flight.get(), 0);
        drop(registration);
        assert_eq!(
            c.run_action("web-01", "ok", None).await,
            Err(CommandError::NotConnected("web-01".into()))
        );
    }

    #[tokio::test]
    async fn requests_to_unknown_agents_and_bad_names_fail_clearly() {
        let metrics = CollectorMetrics::default();
        let c = AgentCommands::new(metrics.clone());
        assert_eq!(
            c.run_action("web-01", "clean_tmp", None).await,
            Err(CommandError::NotConnected("web-01".into()))
        );
        assert!(matches!(
            c.run_action("web-01", "", None).await,
            Err(CommandError::BadRequest(_))
        ));
        let long = "x".repeat(codec::MAX_ACTION_NAME_BYTES + 1);
        assert!(matches!(
            c.run_action("web-01", &long, None).await,
            Err(CommandError::BadRequest(m)) if m.contains("257 bytes")
        ));
        assert!(matches!(
            c.run_action("web-01", "a", Some(Duration::ZERO)).await,
            Err(CommandError::BadRequest(_))
        ));
        assert_eq!(
            metrics
                .remote_actions
                .with_label_values(&["not_connected"])
                .get(),
            1
        );
        assert_eq!(
            metrics
                .remote_actions
                .with_label_values(&["bad_request"])
                .get(),
            3
        );
        assert_eq!(metrics.remote_actions_in_flight.get(), 0);
    }
}
