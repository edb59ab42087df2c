//! The running agent. Every interval it collects host metrics and scrapes its targets,
//! stamps every sample with the host identity, writes the batch to the durable buffer, and
//! tells the shipper a live batch is ready. The shipper, the status socket and the optional
//! `/metrics` listener run beside it. SIGINT/SIGTERM stop collection, give the shipper a
//! moment to finish in-flight sends, and flush the buffer.

use crate::buffer::{Buffer, OpenOutcome};
use crate::checks::export;
use crate::checks::threshold::{ActiveCheck, CheckKind, ThresholdChecks};
use crate::clock::now_ms;
use crate::collect::{self, HostCollector};
use crate::config::Settings;
use crate::remediate::Remediator;
use crate::ship::{ConnectionStatus, LiveBatch, ShipConfig, Shipper, LIVE_CHANNEL_CAPACITY};
use crate::status::{self, AgentStatus, TargetHealth};
use crate::telemetry::AgentMetrics;
use anyhow::Context;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use vigil_shared::certs::{self, files};
use vigil_shared::codec;
use vigil_shared::model::{Batch, Event, Series};

/// Events kept for `vigil-agent status`.
const RECENT_EVENTS: usize = 20;
/// Active checks (firing, or a recent anomaly) listed by `vigil-agent status`.
const ACTIVE_CHECKS: usize = 50;

fn read(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Loads the agent's TLS client configuration from its certificates directory.
pub fn tls(settings: &Settings) -> anyhow::Result<rustls::ClientConfig> {
    let d = &settings.certs_dir;
    certs::client_config(
        &read(&d.join(files::CA_CERT))?,
        &read(&d.join(files::AGENT_CERT))?,
        &read(&d.join(files::AGENT_KEY))?,
    )
    .with_context(|| format!("building TLS configuration from {}", d.display()))
}

/// Adds the agent's identity to a series: `host` always, `instance` when the source set none
/// (host metrics), and `pod` in Kubernetes.
fn stamp(series: &mut [Series], host: &str, pod: Option<&str>) {
    for s in series {
        s.labels.set_if_absent("instance", host);
        s.labels.set("host", host);
        if let Some(p) = pod {
            s.labels.set_if_absent("pod", p);
        }
    }
}

/// Runs the agent until a shutdown signal arrives.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let started_ms = now_ms();
    let tls = Arc::new(tls(&settings)?);
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    let buffer_path = settings.data_dir.join("buffer");
    let (buffer, outcome) = Buffer::open(&buffer_path, settings.buffer_max_bytes, started_ms)
        .with_context(|| format!("opening buffer {}", buffer_path.display()))?;
    match &outcome {
        OpenOutcome::RecoveredFromCorruption { moved_to, error } => {
            tracing::error!(moved_to = %moved_to.display(), %error, "buffer was corrupt: moved aside, its unsent data is lost; starting a new stream")
        }
        other => {
            tracing::info!(path = %buffer_path.display(), outcome = ?other, stream_id = buffer.stream_id(), "buffer open")
        }
    }
    let buffer = Arc::new(buffer);
    let metrics = AgentMetrics::default();
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let conn_status = Arc::new(Mutex::new(ConnectionStatus::default()));
    let targets: Arc<Mutex<Vec<TargetHealth>>> = Arc::new(Mutex::new(
        settings
            .scrapes
            .iter()
            .map(|(t, _)| TargetHealth {
                url: t.url.clone(),
                job: t.job.clone(),
                instance: t.instance.clone(),
                ..Default::default()
            })
            .collect(),
    ));
    let last_collection: Arc<Mutex<Option<i64>>> = Arc::default();
    let recent_events: Arc<Mutex<VecDeque<Event>>> = Arc::default();
    let active_checks: Arc<Mutex<Vec<ActiveCheck>>> = Arc::default();
    let mut checks = ThresholdChecks::new(&settings.checks).context("setting up checks")?;
    let remediator = Remediator::new(
        settings.remediation.clone(),
        settings.actions.clone(),
        &settings.data_dir,
    )
    .context("setting up remediation")?;

    // Status socket.
    if let Some(dir) = settings.status_socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if settings.status_socket.exists() {
        match tokio::net::UnixStream::connect(&settings.status_socket).await {
            Ok(_) => anyhow::bail!(
                "another agent is already serving status on {}",
                settings.status_socket.display()
            ),
            Err(_) => std::fs::remove_file(&settings.status_socket).with_context(|| {
                format!("removing stale socket {}", settings.status_socket.display())
            })?,
        }
    }
    let listener = tokio::net::UnixListener::bind(&settings.status_socket)
        .with_context(|| format!("binding status socket {}", settings.status_socket.display()))?;
    tracing::info!(path = %settings.status_socket.display(), "status socket listening");
    {
        let (buffer, conn_status, targets, last_collection, recent_events) = (
            buffer.clone(),
            conn_status.clone(),
            targets.clone(),
            last_collection.clone(),
            recent_events.clone(),
        );
        let active_checks = active_checks.clone();
        let host = settings.host.clone();
        let snapshot = move || {
            let now = now_ms();
            let b = buffer.stats();
            AgentStatus {
                version: env!("CARGO_PKG_VERSION").into(),
                host: host.clone(),
                pid: std::process::id(),
                started_ms,
                now_ms: now,
                last_collection_ms: *last_collection.lock().unwrap_or_else(|p| p.into_inner()),
                collector: conn_status
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
                oldest_unsent_age_seconds: b
                    .oldest_created_ms
                    .map(|t| (now - t).max(0) as f64 / 1000.0),
                buffer: b,
                targets: targets.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                recent_events: recent_events
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .cloned()
                    .collect(),
                active_checks: active_checks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
            }
        };
        tracker.spawn(
            status::serve(listener, snapshot, cancel.clone())
                .instrument(tracing::info_span!("status_socket")),
        );
    }

    // Own metrics.
    if let Some(addr) = settings.metrics_listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding metrics listener {addr}"))?;
        tracing::info!(addr = %l.local_addr()?, "metrics listening");
        let m = metrics.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let m = m.clone();
                async move { m.render() }
            }),
        );
        let c = cancel.clone();
        tracker.spawn(
            async move {
                if let Err(e) = axum::serve(l, app)
                    .with_graceful_shutdown(async move { c.cancelled().await })
                    .await
                {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            }
            .instrument(tracing::info_span!("metrics_http")),
        );
    }

    // Shipper.
    let (live_tx, live_rx) = mpsc::channel(LIVE_CHANNEL_CAPACITY);
    let shipper = Shipper {
        cfg: ShipConfig {
            collectors: settings.collectors.clone(),
            server_name: settings.server_name.clone(),
            tls,
            max_in_flight: settings.max_in_flight,
            ack_timeout: Duration::from_secs(15),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
        },
        buffer: buffer.clone(),
        metrics: metrics.clone(),
        status: conn_status.clone(),
        live: live_rx,
        now_ms,
        remote: Some(crate::ship::remote::RemoteActions::new(
            remediator.clone(),
            metrics.clone(),
            tracker.clone(),
        )),
        tracker: tracker.clone(),
    };
    let ship_cancel = CancellationToken::new();
    tracker.spawn(
        shipper
            .run(ship_cancel.clone())
            .instrument(tracing::info_span!("shipper")),
    );

    // Collection loop.
    let mut host = HostCollector::new(collect::HostOptions {
        procfs_root: settings.procfs.clone(),
        sysfs_root: settings.sysfs.clone(),
        rootfs_root: settings.rootfs.clone(),
        ..Default::default()
    })
    .context("setting up the host collector")?;
    let client = Arc::new(collect::ScrapeClient::new(collect::ScrapeOptions::default()));
    let mut metadata = collect::MetadataTracker::default();
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let signal = vigil_cli::runtime::shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = ticker.tick() => {}
        }
        let cycle = Instant::now();
        let now = now_ms();
        // Host collection blocks on /proc, /sys and statfs: run it off the runtime thread,
        // beside the scrapes.
        let host_job = tokio::task::spawn_blocking(move || {
            let series = host.collect(now);
            (host, series)
        });
        let mut jobs = tokio::task::JoinSet::new();
        for (i, (t, timeout)) in settings.scrapes.iter().enumerate() {
            let (client, t, timeout) = (client.clone(), t.clone(), *timeout);
            jobs.spawn(async move { (i, collect::scrape(&client, &t, timeout, now).await) });
        }
        let (returned, mut series) = host_job.await.context("host collection task panicked")?;
        host = returned;
        // TYPE/HELP travel as metadata events, each family once per change (see
        // collect::metadata); they do not make a batch priority.
        let mut meta_events = {
            let mut families: Vec<&str> = series.iter().map(|s| s.labels.name()).collect();
            families.sort_unstable();
            families.dedup();
            let metas: Vec<_> = families
                .into_iter()
                .filter_map(collect::host_metadata)
                .collect();
            metadata.events(&metas, &[], now)
        };
        let mut results: Vec<_> = settings.scrapes.iter().map(|_| None).collect();
        while let Some(Ok((i, r))) = jobs.join_next().await {
            results[i] = Some(r);
        }
        {
            let mut health = targets.lock().unwrap_or_else(|p| p.into_inner());
            for (i, r) in results.into_iter().enumerate() {
                let Some(r) = r else { continue };
                if let Some(e) = &r.error {
                    metrics
                        .scrape_errors
                        .with_label_values(&[&settings.scrapes[i].0.job])
                        .inc();
                    tracing::debug!(target = %settings.scrapes[i].0.url, error = %e, "scrape failed");
                }
                if let Some(h) = health.get_mut(i) {
                    h.up = r.up;
                    h.last_scrape_ms = Some(now);
                    h.last_duration_seconds = r.duration.as_secs_f64();
                    h.samples = r.samples_scraped;
                    h.last_error = r.error.as_ref().map(|e| e.to_string());
                }
                let target = &settings.scrapes[i].0;
                meta_events.extend(metadata.events(
                    &r.metadata,
                    &[("instance", &target.instance), ("job", &target.job)],
                    now,
                ));
                series.extend(r.series);
            }
        }
        stamp(&mut series, &settings.host, settings.pod.as_deref());
        // Local checks see every sample of this cycle; their transitions and the results of
        // the actions they trigger travel as events on the priority path.
        let transitions = checks.observe(&series, now);
        // The checks' per-series state travels as ordinary samples in this same batch and is
        // served on /metrics.
        let dropped_before = metrics.check_series_dropped.get();
        metrics
            .check_series_dropped
            .inc_by(checks.dropped_series.saturating_sub(dropped_before));
        let exported = checks.exported();
        let mut check_series = export::to_series(&exported, &checks.take_retired(), now);
        stamp(&mut check_series, &settings.host, settings.pod.as_deref());
        metrics
            .check_series_tracked
            .set(checks.tracked_series() as i64);
        metrics.check_series_exported.set(exported.len() as i64);
        metrics.check_series.set(exported);
        *active_checks.lock().unwrap_or_else(|p| p.into_inner()) =
            checks.active(now, ACTIVE_CHECKS);
        for t in &transitions {
            let kind = match t.kind {
                CheckKind::Threshold => "threshold",
                CheckKind::Anomaly => "anomaly",
            };
            metrics
                .check_transitions
                .with_label_values(&[&t.check, kind, t.state.as_str()])
                .inc();
        }
        let mut events: Vec<Event> = transitions.iter().map(|t| t.to_event()).collect();
        remediator.spawn_transitions(&transitions, &tracker);
        events.extend(remediator.drain_events());
        if !events.is_empty() {
            let mut recent = recent_events.lock().unwrap_or_else(|p| p.into_inner());
            for e in &events {
                if recent.len() == RECENT_EVENTS {
                    recent.pop_front();
                }
                recent.push_back(e.clone());
            }
        }
        let priority = !events.is_empty();
        series.extend(check_series);
        events.extend(meta_events);
        let batch = Batch { series, events };
        metrics
            .samples_collected
            .inc_by(batch.sample_count() as u64);
        // Encoding and the buffer's fsync run off the runtime thread, so acknowledgements and
        // the status socket are not held up while the batch is made durable.
        let buf = buffer.clone();
        let pushed = tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, u64)> {
            let payload = codec::encode_batch(&batch)?;
            Ok(buf.push(priority, now, &payload)?)
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("buffer task failed: {e}")));
        match pushed {
            Ok((seq, evicted)) => {
                metrics.batches_buffered.inc();
                if evicted > 0 {
                    metrics.buffer_dropped_batches.inc_by(evicted);
                    tracing::warn!(evicted, "buffer full: dropped the oldest batches");
                }
                // A full channel only costs this batch its place ahead of the backlog.
                let _ = live_tx.try_send(LiveBatch { seq, priority });
            }
            Err(e) => {
                metrics.buffer_errors.inc();
                tracing::error!(error = %format!("{e:#}"), "could not buffer batch; it is lost");
            }
        }
        let s = buffer.stats();
        metrics.buffer_batches.set(s.batches as i64);
        metrics.buffer_bytes.set(s.bytes as i64);
        metrics.collections.inc();
        metrics
            .collection_seconds
            .observe(cycle.elapsed().as_secs_f64());
        *last_collection.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
    }

    tracing::info!("shutting down");
    ship_cancel.cancel();
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("tasks still running after the grace period");
    }
    buffer.flush().context("flushing buffer")?;
    let _ = std::fs::remove_file(&settings.status_socket);
    tracing::info!("stopped");
    Ok(())
}
