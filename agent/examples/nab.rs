//! Runs the anomaly detector over a NAB-style corpus: every `DATA/<category>/<name>.csv`
//! becomes `OUT/<category>/vigil_<name>.csv`, scored by `run_nab_file` with the default
//! parameters. Used by `scripts/nab-score.sh` until `vigil-agent detect` is wired.
//!
//! Usage: `cargo run -p vigil-agent --release --example nab -- DATA OUT`

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use vigil_agent::checks::anomaly::DetectorParams;
use vigil_agent::checks::nab::run_nab_file;

fn sorted_entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        out.push(
            entry
                .with_context(|| format!("listing {}", dir.display()))?
                .path(),
        );
    }
    out.sort();
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, out] = args.as_slice() else {
        bail!("usage: nab DATA_DIR OUT_DIR");
    };
    let params = DetectorParams::default();
    let mut files = 0;
    for category in sorted_entries(Path::new(data))? {
        if !category.is_dir() {
            continue;
        }
        let name = category.file_name().context("category name")?;
        let out_dir = Path::new(out).join(name);
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("creating {}", out_dir.display()))?;
        for input in sorted_entries(&category)? {
            if input.extension().and_then(|e| e.to_str()) != Some("csv") {
                continue;
            }
            let file = input.file_name().context("file name")?.to_string_lossy();
            let output = out_dir.join(format!("vigil_{file}"));
            let summary = run_nab_file(&input, &output, &params)?;
            println!(
                "{}: {} rows, {} alarms",
                input.display(),
                summary.rows,
                summary.alarms
            );
            files += 1;
        }
    }
    println!("scored {files} files into {out}");
    Ok(())
}
