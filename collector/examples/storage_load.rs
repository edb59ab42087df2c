//! Loader for `scripts/bench-storage`: feeds a dataset written by
//! `scripts/bench-storage-gen.py` (Prometheus text with millisecond timestamps, a `# page`
//! comment before every scrape) to Vigil's storage or to any remote_write receiver.
//!
//! ```text
//! storage_load load FILE DATA_DIR
//!     append every page to a fresh store in DATA_DIR, force compaction (the data must be
//!     older than one block duration), close, and print samples and on-disk bytes
//! storage_load push HOST:PORT PATH FILE SHIFT_MS [TENANT]
//!     POST every page as a remote_write request, timestamps shifted by SHIFT_MS
//! storage_load sled FILE DIR
//!     the alternative considered for samples: one sled key per sample
//!     (series id u32 BE, timestamp i64 BE) -> value bits, a batch per page; prints
//!     samples/s and on-disk bytes per sample after a flush
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vigil_collector::api::remote_write;
use vigil_collector::storage::{Storage, StorageOptions};
use vigil_shared::exposition;
use vigil_shared::model::Series;

/// Reads the dataset page by page.
fn pages(file: &Path, mut each: impl FnMut(Vec<Series>) -> Result<()>) -> Result<()> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut page = String::new();
    let mut flush = |page: &mut String| -> Result<()> {
        if page.is_empty() {
            return Ok(());
        }
        let parsed = exposition::parse(page, 0).context("parsing a page of the dataset")?;
        page.clear();
        each(parsed.series)
    };
    for line in BufReader::with_capacity(1 << 20, f).lines() {
        let line = line?;
        if line == "# page" {
            flush(&mut page)?;
        } else {
            page.push_str(&line);
            page.push('\n');
        }
    }
    flush(&mut page)
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn load(file: &Path, dir: &Path) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let storage = rt
        .block_on(async {
            Storage::open(
                dir,
                StorageOptions {
                    retention: Duration::ZERO,
                    ..Default::default()
                },
            )
        })
        .context("opening the store")?;
    let started = Instant::now();
    let mut samples = 0u64;
    let mut pending: Vec<Series> = Vec::new();
    pages(file, |series| {
        samples += series.len() as u64;
        pending.extend(series);
        if pending.len() >= 20_000 {
            rt.block_on(storage.append_series(std::mem::take(&mut pending)))
                .context("appending")?;
        }
        Ok(())
    })?;
    rt.block_on(storage.append_series(pending))
        .context("appending")?;
    let ingest = started.elapsed();
    let started = Instant::now();
    rt.block_on(storage.compact()).context("compacting")?;
    let compact = started.elapsed();
    rt.block_on(storage.close()).context("closing")?;
    let blocks = dir_bytes(&dir.join("blocks"));
    println!(
        "samples={samples} block_bytes={blocks} bytes_per_sample={:.3} ingest_s={:.1} compact_s={:.1}",
        blocks as f64 / samples.max(1) as f64,
        ingest.as_secs_f64(),
        compact.as_secs_f64()
    );
    Ok(())
}

fn sled_load(file: &Path, dir: &Path) -> Result<()> {
    let db = sled::open(dir).context("opening sled")?;
    let mut ids: std::collections::HashMap<vigil_shared::model::Labels, u32> = Default::default();
    let started = Instant::now();
    let mut samples = 0u64;
    pages(file, |series| {
        let mut batch = sled::Batch::default();
        for s in series {
            let n = ids.len() as u32;
            let id = *ids.entry(s.labels).or_insert(n);
            for p in s.points {
                let mut key = [0u8; 12];
                key[..4].copy_from_slice(&id.to_be_bytes());
                key[4..].copy_from_slice(&p.timestamp_ms.to_be_bytes());
                batch.insert(&key[..], &p.value.to_bits().to_le_bytes()[..]);
                samples += 1;
            }
        }
        db.apply_batch(batch).context("sled batch")?;
        Ok(())
    })?;
    db.flush().context("sled flush")?;
    let secs = started.elapsed().as_secs_f64();
    drop(db);
    let bytes = dir_bytes(dir);
    println!(
        "samples={samples} bytes={bytes} bytes_per_sample={:.3} samples_per_second={:.0}",
        bytes as f64 / samples.max(1) as f64,
        samples as f64 / secs
    );
    Ok(())
}

fn post(addr: &str, path: &str, body: &[u8], tenant: Option<&str>) -> Result<()> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    let tenant = tenant
        .map(|t| format!("X-Scope-OrgID: {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\n{tenant}\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp.split(' ').nth(1).unwrap_or("");
    if !status.starts_with('2') {
        bail!(
            "POST {path} answered: {}",
            resp.lines().last().unwrap_or("")
        );
    }
    Ok(())
}

fn push(addr: &str, path: &str, file: &Path, shift: i64, tenant: Option<&str>) -> Result<()> {
    let mut series_per_page = 0;
    let mut requests = 0u64;
    let mut pending: Vec<Series> = Vec::new();
    pages(file, |mut series| {
        series_per_page = series_per_page.max(series.len());
        for s in &mut series {
            for p in &mut s.points {
                p.timestamp_ms += shift;
            }
        }
        pending.extend(series);
        if pending.len() >= 5_000 {
            post(addr, path, &remote_write::encode(&pending), tenant)?;
            pending.clear();
            requests += 1;
        }
        Ok(())
    })?;
    if !pending.is_empty() {
        post(addr, path, &remote_write::encode(&pending), tenant)?;
        requests += 1;
    }
    println!("requests={requests}");
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["load", file, dir] => load(Path::new(file), Path::new(dir)),
        ["sled", file, dir] => sled_load(Path::new(file), Path::new(dir)),
        ["push", addr, path, file, shift] | ["push", addr, path, file, shift, _] => push(
            addr,
            path,
            Path::new(file),
            shift.parse().context("SHIFT_MS")?,
            args.get(5).map(String::as_str),
        ),
        _ => bail!(
            "usage: storage_load load FILE DATA_DIR | storage_load sled FILE DIR | storage_load push HOST:PORT PATH FILE SHIFT_MS [TENANT]"
        ),
    }
}
