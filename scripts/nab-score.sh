#!/usr/bin/env bash
# Scores the agent's anomaly detector on a NAB corpus.
#
# Usage: scripts/nab-score.sh [NAB_DIR] [OUTDIR]
#   NAB_DIR  holds data/<category>/<name>.csv, labels.json and nab_score.py
#            (default: ../shared/nab relative to the repository root)
#   OUTDIR   where the per-file results go (default: a fresh temporary directory)
#
# Every file is run through `vigil-agent detect`, the detector code the agent runs live, with
# its one default parameter set (streaming, labels never read by the detector); the scorer
# then sweeps the threshold across the corpus and prints the standard, reward_low_FP and
# reward_low_FN scores.
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
cargo build --quiet --release -p vigil-agent --bin vigil-agent
for input in "$nab"/data/*/*.csv; do
    category="$(basename "$(dirname "$input")")"
    mkdir -p "$out/$category"
    ./target/release/vigil-agent detect --input "$input" --output "$out/$category/vigil_$(basename "$input")" >>"$out/detect.log"
done
python3 "$nab/nab_score.py" --labels "$nab/labels.json" --results "$out"
echo "results in $out"
