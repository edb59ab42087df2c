//! Reliability on the real binaries: `kill -9` of the collector and of the agent, a 60 s
//! collector outage, and packet loss plus a partition through a fault-injecting UDP proxy.
//! A scrape target whose counter increments on every scrape lets each test check that
//! every collected sample arrived exactly once.
#![allow(clippy::disallowed_methods)]

mod util;

use std::sync::atomic::Ordering;
use std::time::Duration;
use util::*;

/// Stops the target from serving counter values, waits for the last scrape to settle, and
/// returns every value it served.
fn freeze(target: &CounterTarget) -> Vec<u64> {
    target.paused.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(800));
    target.served()
}

fn wait_all_stored(
    c: &Collector,
    host: &str,
    served: &[u64],
    may_miss: usize,
    timeout: Duration,
) -> Vec<u64> {
    let need = served.len() - may_miss;
    let mut stored = Vec::new();
    wait_for(
        timeout,
        || {
            stored = stored_counter_values(c, host);
            served.iter().filter(|v| stored.contains(v)).count() >= need
        },
        "every served sample to be stored",
    );
    // Anything still in flight would show up as a duplicate now, not later.
    std::thread::sleep(Duration::from_secs(2));
    stored_counter_values(c, host)
}

#[test]
fn kill_9_collector_while_shipping_loses_and_duplicates_nothing() {
    let dir = Scratch::new("kill-collector");
    let certs = make_certs(&dir, &["a1", "a2"]);
    let mut c = Collector::start(&dir.path("collector"), &certs, 0, 0);
    let t1 = CounterTarget::start();
    let t2 = CounterTarget::start();
    let _a1 = Agent::start(
        &dir,
        "a1",
        &c.quic.to_string(),
        &["--interval", "100ms", "--scrape", &t1.url()],
    );
    let _a2 = Agent::start(
        &dir,
        "a2",
        &c.quic.to_string(),
        &["--interval", "100ms", "--scrape", &t2.url()],
    );
    wait_for(
        Duration::from_secs(30),
        || stored_counter_values(&c, "a1").len() >= 10,
        "first samples",
    );
    for _ in 0..3 {
        c.kill9();
        std::thread::sleep(Duration::from_millis(1500));
        c.restart();
        std::thread::sleep(Duration::from_secs(2));
    }
    let served1 = freeze(&t1);
    let served2 = freeze(&t2);
    assert!(served1.len() > 40, "only {} scrapes", served1.len());
    let stored1 = wait_all_stored(&c, "a1", &served1, 0, Duration::from_secs(60));
    let stored2 = wait_all_stored(&c, "a2", &served2, 0, Duration::from_secs(60));
    assert_exactly_once(&served1, &stored1, 0);
    assert_exactly_once(&served2, &stored2, 0);
}

#[test]
fn kill_9_agent_loses_at_most_the_in_flight_cycle_and_duplicates_nothing() {
    let dir = Scratch::new("kill-agent");
    let certs = make_certs(&dir, &["a1"]);
    let c = Collector::start(&dir.path("collector"), &certs, 0, 0);
    let t = CounterTarget::start();
    let mut a = Agent::start(
        &dir,
        "a1",
        &c.quic.to_string(),
        &["--interval", "100ms", "--scrape", &t.url()],
    );
    let kills = 4;
    for _ in 0..kills {
        std::thread::sleep(Duration::from_secs(2));
        a.kill9();
        std::thread::sleep(Duration::from_millis(300));
        a.restart();
    }
    std::thread::sleep(Duration::from_secs(2));
    let served = freeze(&t);
    let stored = wait_all_stored(&c, "a1", &served, kills, Duration::from_secs(60));
    assert_exactly_once(&served, &stored, kills);
}

#[test]
fn collector_down_for_60s_agent_buffers_then_drains_everything() {
    let dir = Scratch::new("outage");
    let certs = make_certs(&dir, &["a1"]);
    let mut c = Collector::start(&dir.path("collector"), &certs, 0, 0);
    let t = CounterTarget::start();
    let a = Agent::start(
        &dir,
        "a1",
        &c.quic.to_string(),
        &["--interval", "250ms", "--scrape", &t.url()],
    );
    wait_for(
        Duration::from_secs(30),
        || stored_counter_values(&c, "a1").len() >= 5,
        "first samples",
    );
    c.kill9();
    std::thread::sleep(Duration::from_secs(60));
    let (code, st) = a.status();
    assert_eq!(st["collector"]["connected"], false, "{st}");
    assert!(st["buffer"]["batches"].as_u64().unwrap() >= 200, "{st}");
    assert!(
        st["oldest_unsent_age_seconds"].as_f64().unwrap() >= 55.0,
        "{st}"
    );
    assert_eq!(
        code, 0,
        "a 60 s outage is within the default 2m liveness threshold"
    );
    c.restart();
    std::thread::sleep(Duration::from_secs(1));
    let served = freeze(&t);
    let stored = wait_all_stored(&c, "a1", &served, 0, Duration::from_secs(60));
    assert_exactly_once(&served, &stored, 0);
    wait_for(
        Duration::from_secs(10),
        || a.status().1["buffer"]["batches"].as_u64() == Some(0),
        "buffer drained",
    );
}

#[test]
fn packet_loss_and_a_partition_lose_and_duplicate_nothing() {
    let dir = Scratch::new("faults");
    let certs = make_certs(&dir, &["a1"]);
    let c = Collector::start(&dir.path("collector"), &certs, 0, 0);
    let proxy = FaultyProxy::start(c.quic);
    let t = CounterTarget::start();
    // The proxy listens on 127.0.0.1, which the collector certificate names.
    let _a = Agent::start(
        &dir,
        "a1",
        &proxy.addr.to_string(),
        &["--interval", "100ms", "--scrape", &t.url()],
    );
    wait_for(
        Duration::from_secs(30),
        || stored_counter_values(&c, "a1").len() >= 5,
        "first samples",
    );
    proxy.loss_percent.store(20, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(15));
    proxy.loss_percent.store(0, Ordering::SeqCst);
    proxy.partitioned.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(15));
    proxy.partitioned.store(false, Ordering::SeqCst);
    proxy.loss_percent.store(5, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(5));
    let served = freeze(&t);
    let stored = wait_all_stored(&c, "a1", &served, 0, Duration::from_secs(90));
    assert_exactly_once(&served, &stored, 0);
    assert!(
        proxy.dropped.load(Ordering::SeqCst) > 100,
        "the proxy should have dropped packets"
    );
}
