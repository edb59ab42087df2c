//! Remote action requests: the collector opens one bidirectional stream per request on the
//! agent's QUIC connection and sends one `CollectorMessage::RunAction` frame; the agent
//! answers on the same stream with one `AgentMessage::ActionResult` and finishes it. The
//! collector's identity is the common name of its certificate, which the agent verified
//! against its CA during the mutual-TLS handshake; it is recorded as `requested_by`.
//!
//! The request goes through [`Remediator::handle_remote`], so only actions in the agent's
//! local config with `allow_remote = true` can run, under the same cooldown, flap guard and
//! concurrency rules as local triggers, audited and raised as `remediation` events. Before
//! that, the frame is read with a hard size limit (`codec::MAX_COMMAND_BYTES`, checked on the
//! length prefix before anything is allocated) and a time limit; a frame that is oversized,
//! slow, undecodable or not a `RunAction` resets the stream and is logged and counted as
//! `malformed`. At most [`MAX_CONCURRENT_COMMANDS`] requests are served at once; more are
//! refused (and audited) at once rather than queued. A request keeps running when the
//! connection drops; only its answer is lost (the audit log and the event still record it).

use crate::remediate::{action_result_message, RefusalReason, Remediator};
use crate::telemetry::AgentMetrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use vigil_shared::codec::{self, CollectorMessage};

/// Remote requests served at once; more are refused with
/// [`RefusalReason::TooManyRemoteRequests`].
pub const MAX_CONCURRENT_COMMANDS: usize = 8;
/// How long the collector may take to deliver a whole request frame.
pub const COMMAND_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CommandReadError {
    /// The stream failed or ended early.
    #[error("reading the request: {0}")]
    Read(#[from] quinn::ReadExactError),
    /// The length prefix announces more than `MAX_COMMAND_BYTES`.
    #[error(
        "request frame of {len} bytes exceeds the limit of {} bytes",
        codec::MAX_COMMAND_BYTES
    )]
    TooLarge { len: usize },
    /// The body is not a valid message.
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
    /// The whole frame did not arrive in time.
    #[error("no complete request within {COMMAND_READ_TIMEOUT:?}")]
    Timeout,
}

/// Serves the collector's remote action requests. Cheap to clone.
#[derive(Clone)]
pub struct RemoteActions {
    pub remediator: Remediator,
    pub metrics: AgentMetrics,
    /// Runs the request handlers, so shutdown waits for them within its grace period.
    pub tracker: TaskTracker,
    slots: Arc<Semaphore>,
}

impl RemoteActions {
    pub fn new(remediator: Remediator, metrics: AgentMetrics, tracker: TaskTracker) -> Self {
        RemoteActions {
            remediator,
            metrics,
            tracker,
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT_COMMANDS)),
        }
    }

    /// Accepts request streams on `conn` until it closes, each served on its own task.
    pub async fn accept(self, conn: quinn::Connection) {
        let requested_by = collector_identity(&conn);
        loop {
            let (send, recv) = match conn.accept_bi().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(reason = %e, "no more remote requests on this connection");
                    return;
                }
            };
            let this = self.clone();
            let by = requested_by.clone();
            let span = tracing::info_span!("remote_action", requested_by = %by);
            self.tracker
                .spawn(async move { this.serve(&by, send, recv).await }.instrument(span));
        }
    }

    /// Reads one request, runs it through the remediator and answers on the same stream.
    pub async fn serve(
        &self,
        requested_by: &str,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) {
        let msg = match tokio::time::timeout(COMMAND_READ_TIMEOUT, read_command(&mut recv)).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => return self.malformed(&mut send, &mut recv, &e.to_string()),
            Err(_) => {
                return self.malformed(&mut send, &mut recv, &CommandReadError::Timeout.to_string())
            }
        };
        let CollectorMessage::RunAction { request_id, action } = msg else {
            return self.malformed(
                &mut send,
                &mut recv,
                &format!("expected a RunAction request, got {msg:?}"),
            );
        };
        let result = if action.len() > codec::MAX_ACTION_NAME_BYTES {
            Err(self
                .remediator
                .refuse_remote(
                    &action,
                    requested_by,
                    RefusalReason::BadRequest(format!(
                        "action name of {} bytes exceeds the limit of {} bytes",
                        action.len(),
                        codec::MAX_ACTION_NAME_BYTES
                    )),
                )
                .await)
        } else {
            match self.slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    self.metrics.remote_commands_in_progress.inc();
                    let r = self.remediator.handle_remote(&action, requested_by).await;
                    self.metrics.remote_commands_in_progress.dec();
                    drop(permit);
                    r
                }
                Err(_) => Err(self
                    .remediator
                    .refuse_remote(
                        &action,
                        requested_by,
                        RefusalReason::TooManyRemoteRequests(MAX_CONCURRENT_COMMANDS),
                    )
                    .await),
            }
        };
        let answer = action_result_message(request_id, &result);
        match &result {
            Ok(r) => {
                self.metrics
                    .remote_commands
                    .with_label_values(&[r.outcome.as_str()])
                    .inc();
                tracing::info!(request_id, %action, outcome = r.outcome.as_str(), "remote action ran");
            }
            Err(e) => {
                self.metrics
                    .remote_commands
                    .with_label_values(&["refused"])
                    .inc();
                tracing::warn!(request_id, action = %e.action, reason = %e.reason, "remote action refused");
            }
        }
        let frame = match codec::encode_frame(&answer) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(request_id, error = %e, "encoding the action result");
                let _ = send.reset(3u32.into());
                return;
            }
        };
        if let Err(e) = send.write_all(&frame).await {
            tracing::warn!(request_id, error = %e, "the collector went away before the action result");
            return;
        }
        let _ = send.finish();
        // Keep the stream open until the collector has read the answer (or gave up).
        let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
    }

    fn malformed(&self, send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, why: &str) {
        self.metrics
            .remote_commands
            .with_label_values(&["malformed"])
            .inc();
        tracing::warn!(reason = %why, "refused a remote request frame");
        let _ = recv.stop(2u32.into());
        let _ = send.reset(2u32.into());
    }
}

/// Reads one request frame, refusing a length prefix above `MAX_COMMAND_BYTES` before
/// allocating the body.
pub async fn read_command(
    recv: &mut quinn::RecvStream,
) -> Result<CollectorMessage, CommandReadError> {
    let mut header = [0u8; codec::HEADER_BYTES];
    recv.read_exact(&mut header).await?;
    let len = codec::frame_len(header)?;
    if len > codec::MAX_COMMAND_BYTES {
        return Err(CommandReadError::TooLarge { len });
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await?;
    Ok(codec::decode_body(&body)?)
}

/// `collector:<common name>@<address>`, from the certificate the agent verified.
pub fn collector_identity(conn: &quinn::Connection) -> String {
    let cn = conn
        .peer_identity()
        .and_then(|id| {
            id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .and_then(|certs| {
            certs
                .first()
                .and_then(|c| vigil_shared::certs::identity_from_der(c).ok())
        })
        .unwrap_or_else(|| "unknown".into());
    format!("collector:{cn}@{}", conn.remote_address())
}
