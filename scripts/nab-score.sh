#!/usr/bin/env bash
# Scores the agent's anomaly detector on a NAB corpus.
#
# Usage: scripts/nab-score.sh [NAB_DIR] [OUTDIR]
#   NAB_DIR  holds data/<category>/<name>.csv, labels.json and nab_score.py
#            (default: ../shared/nab relative to the repository root)
#   OUTDIR   where the per-file results go (default: a fresh temporary directory)
#
# Every file is run through `run_nab_file` with DetectorParams::default() (one parameter set
# for all files, streaming, labels never read by the detector); the scorer then sweeps the
# threshold across the corpus and prints the standard, reward_low_FP and reward_low_FN scores.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
nab="${1:-$root/../shared/nab}"
out="${2:-$(mktemp -d -t vigil-nab.XXXXXX)}"

for need in "$nab/data" "$nab/labels.json" "$nab/nab_score.py"; do
    if [ ! -e "$need" ]; then
        echo "nab-score: missing $need (pass the NAB directory as the first argument)" >&2
        exit 2
    fi
done

mkdir -p "$out"
cd "$root"
cargo run --quiet -p vigil-agent --release --example nab -- "$nab/data" "$out" >"$out/detect.log"
python3 "$nab/nab_score.py" --labels "$nab/labels.json" --results "$out"
echo "results in $out"
