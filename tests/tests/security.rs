//! What the collector refuses: an agent whose certificate comes from another CA, garbage
//! bytes on a QUIC stream, and an oversized frame. Each is refused with a logged reason,
//! the collector keeps running, and an honest agent beside them is unaffected.
#![allow(clippy::disallowed_methods)]

mod util;

use std::sync::Arc;
use std::time::Duration;
use util::*;
use vigil_shared::certs::{self, files};

fn quic_client(agent_dir: &std::path::Path) -> (quinn::Endpoint, quinn::ClientConfig) {
    let read = |f: &str| std::fs::read(agent_dir.join(f)).unwrap();
    let tls = certs::client_config(
        &read(files::CA_CERT),
        &read(files::AGENT_CERT),
        &read(files::AGENT_KEY),
    )
    .unwrap();
    let cfg = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    ));
    (
        quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap(),
        cfg,
    )
}

#[test]
fn foreign_certificates_garbage_and_oversized_frames_are_refused_without_harm() {
    let dir = Scratch::new("security");
    let certs_dir = make_certs(&dir, &["honest", "fuzzer"]);
    let c = Collector::start(&dir.path("collector"), &certs_dir, 0, 0);
    let t = CounterTarget::start();
    let _honest = Agent::start(
        &dir,
        "honest",
        &c.quic.to_string(),
        &["--interval", "200ms", "--scrape", &t.url()],
    );
    wait_for(
        Duration::from_secs(30),
        || stored_counter_values(&c, "honest").len() >= 3,
        "honest agent shipping",
    );

    // 1. An agent with a certificate from another CA.
    let other = Scratch::new("other-ca");
    let other_certs = other.path("certs");
    let (code, _, err) = run(std::process::Command::new(bin("vigil-collector"))
        .args(["certs", "init", "--dir"])
        .arg(&other_certs));
    assert_eq!(code, 0, "{err}");
    let rogue_dir = dir.path("agent-rogue");
    let (code, _, err) = run(std::process::Command::new(bin("vigil-collector"))
        .args(["certs", "issue-agent", "--dir"])
        .arg(&other_certs)
        .args(["--name", "rogue", "--out"])
        .arg(&rogue_dir));
    assert_eq!(code, 0, "{err}");
    // The rogue agent trusts our collector's CA (so the failure is the collector's refusal).
    std::fs::copy(
        certs_dir.join(files::CA_CERT),
        rogue_dir.join(files::CA_CERT),
    )
    .unwrap();
    let rogue = Agent::start(&dir, "rogue", &c.quic.to_string(), &["--interval", "200ms"]);
    wait_for(
        Duration::from_secs(15),
        || c.log.contains("refused agent connection"),
        "collector to log the refusal",
    );
    let (_, st) = rogue.status();
    assert_eq!(st["collector"]["connected"], false, "{st}");
    assert!(stored_counter_values(&c, "rogue").is_empty());
    assert!(
        c.export("node_load1{host=\"rogue\"}").is_empty(),
        "rogue data must not be stored"
    );

    // 2 and 3. A client with a valid certificate sends garbage, then an oversized frame.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (endpoint, cfg) = quic_client(&dir.path("agent-fuzzer"));
        let conn = endpoint
            .connect_with(cfg, c.quic, "localhost")
            .unwrap()
            .await
            .expect("fuzzer connects");

        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let mut garbage = 64u32.to_be_bytes().to_vec();
        garbage.extend((0..64).map(|i| (i * 37 % 251) as u8));
        send.write_all(&garbage).await.unwrap();
        send.finish().unwrap();
        assert!(
            recv.read_to_end(1 << 16).await.is_err(),
            "garbage must not be acknowledged"
        );

        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
        let _ = send.write_all(&[0u8; 1024]).await;
        let _ = send.finish();
        assert!(
            recv.read_to_end(1 << 16).await.is_err(),
            "an oversized frame must not be acknowledged"
        );

        // The connection itself survives: a valid empty batch is acknowledged.
        let payload = vigil_shared::codec::encode_batch(&Default::default()).unwrap();
        let frame = vigil_shared::codec::encode_frame(&vigil_shared::codec::AgentMessage::Batch {
            stream_id: 1,
            seq: 0,
            priority: false,
            created_ms: 0,
            payload,
        })
        .unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&frame).await.unwrap();
        send.finish().unwrap();
        let reply: vigil_shared::codec::CollectorMessage =
            vigil_shared::codec::decode_frame(&recv.read_to_end(1 << 16).await.unwrap()).unwrap();
        assert!(
            matches!(
                reply,
                vigil_shared::codec::CollectorMessage::Ack { seq: 0, .. }
            ),
            "{reply:?}"
        );
        conn.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
    });
    wait_for(
        Duration::from_secs(5),
        || c.log.contains("oversized"),
        "collector to log the oversized frame",
    );
    assert!(
        c.log.contains("malformed"),
        "collector should log the malformed frame:\n{}",
        c.log.text()
    );

    // The honest agent keeps shipping and the collector is alive.
    let before = stored_counter_values(&c, "honest").len();
    wait_for(
        Duration::from_secs(15),
        || stored_counter_values(&c, "honest").len() >= before + 5,
        "honest agent still shipping",
    );
    let (_, body) = c.get("/metrics");
    assert!(
        body.contains("vigil_collector_frames_rejected_total{reason=\"oversized\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("vigil_collector_quic_connections_total{result=\"refused\"}"),
        "{body}"
    );
}
