//! The agent's side of remote action requests over a real in-process QUIC pair with mutual
//! TLS: a stand-in collector opens request streams on the agent's connection. A valid
//! request runs (or is refused by) the remediator and is answered on its stream; an
//! oversized length prefix, garbage, or a message that is not a request resets only that
//! stream and is counted as `malformed`; an over-long action name is refused and audited;
//! and the connection keeps serving afterwards.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use vigil_agent::remediate::config::{ActionConfig, RemediationSettings};
use vigil_agent::remediate::Remediator;
use vigil_agent::ship::remote::RemoteActions;
use vigil_agent::telemetry::AgentMetrics;
use vigil_shared::certs::{self, Role};
use vigil_shared::codec::{self, AgentMessage, CollectorMessage};

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A QUIC server standing in for the collector, and the agent's connection to it.
async fn pair() -> (quinn::Endpoint, quinn::Connection, quinn::Connection) {
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
    let scfg = quinn::crypto::rustls::QuicServerConfig::try_from(Arc::new(scfg)).unwrap();
    let server_ep = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(scfg)),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .unwrap();
    let addr = server_ep.local_addr().unwrap();
    let mut client_ep = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let ccfg = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(ccfg)).unwrap();
    client_ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(ccfg)));
    let (agent_side, collector_side) = tokio::join!(
        async { client_ep.connect(addr, "localhost").unwrap().await.unwrap() },
        async { server_ep.accept().await.unwrap().await.unwrap() }
    );
    (server_ep, agent_side, collector_side)
}

/// Sends raw bytes on a new stream and returns the agent's answer, or the read error.
async fn exchange(conn: &quinn::Connection, bytes: &[u8]) -> Result<AgentMessage, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    // The agent may reset the stream before reading everything; that is the point.
    let _ = send.write_all(bytes).await;
    let _ = send.finish();
    let reply = tokio::time::timeout(
        Duration::from_secs(20),
        recv.read_to_end(codec::MAX_COMMAND_BYTES),
    )
    .await
    .map_err(|_| "no answer".to_string())?
    .map_err(|e| e.to_string())?;
    codec::decode_frame(&reply).map_err(|e| e.to_string())
}

fn request(id: u64, action: &str) -> Vec<u8> {
    codec::encode_frame(&CollectorMessage::RunAction {
        request_id: id,
        action: action.into(),
    })
    .unwrap()
}

#[tokio::test]
async fn requests_are_answered_and_hostile_frames_reset_only_their_stream() {
    let dir =
        Scratch(std::env::temp_dir().join(format!("vigil-remote-requests-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let script = dir.0.join("hello.sh");
    std::fs::write(&script, "#!/bin/sh\necho hello\nexit 3\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let action: ActionConfig = toml::from_str(&format!(
        "name = \"hello\"\ncommand = {:?}\nallow_remote = true\ncooldown = '0s'",
        script.display().to_string()
    ))
    .unwrap();
    let remediator = Remediator::new(RemediationSettings::default(), vec![action], &dir.0).unwrap();
    let metrics = AgentMetrics::default();
    let tracker = tokio_util::task::TaskTracker::new();
    let (_server, agent_conn, collector) = pair().await;
    let served = tokio::spawn(
        RemoteActions::new(remediator.clone(), metrics.clone(), tracker.clone())
            .accept(agent_conn.clone()),
    );

    // A length prefix above the command limit is refused before the body is read.
    let mut oversized = ((codec::MAX_COMMAND_BYTES + 1) as u32)
        .to_be_bytes()
        .to_vec();
    oversized.extend(std::iter::repeat_n(0u8, 1024));
    let err = exchange(&collector, &oversized).await.unwrap_err();
    assert!(err.contains("reset"), "{err}");
    // Garbage, and a message that is not a request.
    let err = exchange(&collector, &[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap_err();
    assert!(err.contains("reset"), "{err}");
    let ack = codec::encode_frame(&CollectorMessage::Ack {
        stream_id: 1,
        seq: 1,
        duplicate: false,
    })
    .unwrap();
    assert!(exchange(&collector, &ack).await.is_err());
    assert_eq!(
        metrics
            .remote_commands
            .with_label_values(&["malformed"])
            .get(),
        3
    );

    // The connection still serves: a real request runs and the answer carries the details.
    let AgentMessage::ActionResult {
        request_id,
        accepted,
        outcome,
        exit_code,
        stdout,
        duration_ms,
        ..
    } = exchange(&collector, &request(7, "hello")).await.unwrap()
    else {
        panic!("not an action result")
    };
    assert_eq!(
        (request_id, accepted, outcome.as_str(), exit_code),
        (7, true, "failed", Some(3))
    );
    assert_eq!(stdout, "hello\n");
    assert!(duration_ms.is_some());

    // An over-long name is refused and audited (cut to 256 bytes), as is an unknown action.
    let long = "x".repeat(codec::MAX_ACTION_NAME_BYTES + 1);
    let AgentMessage::ActionResult {
        accepted, detail, ..
    } = exchange(&collector, &request(8, &long)).await.unwrap()
    else {
        panic!("not an action result")
    };
    assert!(!accepted);
    assert!(
        detail.contains("exceeds the limit of 256 bytes"),
        "{detail}"
    );
    let AgentMessage::ActionResult {
        accepted,
        outcome,
        detail,
        ..
    } = exchange(&collector, &request(9, "rm_rf")).await.unwrap()
    else {
        panic!("not an action result")
    };
    assert_eq!((accepted, outcome.as_str()), (false, "refused"));
    assert!(detail.ends_with("unknown action"), "{detail}");
    let audit = std::fs::read_to_string(remediator.audit_path()).unwrap();
    let records: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{audit}");
    assert!(records.iter().all(|r| r["trigger"] == "remote"
        && r["requested_by"]
            .as_str()
            .unwrap()
            .starts_with("collector:localhost@127.0.0.1:")));
    assert_eq!(
        records[1]["action"].as_str().unwrap().len(),
        256 + '…'.len_utf8()
    );
    assert_eq!(
        metrics
            .remote_commands
            .with_label_values(&["refused"])
            .get(),
        2
    );
    assert_eq!(metrics.remote_commands_in_progress.get(), 0);
    collector.close(0u32.into(), b"done");
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("accepting stops when the connection closes")
        .unwrap();
}
