#!/usr/bin/env bash
# Scores the agent's anomaly detector on a NAB corpus.
#
# Usage: scripts/nab-score.sh [NAB_DIR] [OUTDIR]
#   NAB_DIR  holds data/<category>/<name>.csv, labels.json and nab_score.py
#            (default: ../shared/nab relative to the repository root)
#   OUTDIR   where the per-file results go (default: a fresh temporary directory)
# Environment:
#   NAB_PROFILE  cargo profile to build and run (default: release; `quick` builds without LTO
#                in a fraction of the time and scores identically)
#   NAB_JOBS     files run in parallel (default: 2)
#
# Every file is run through `vigil-agent detect`, the detector code the agent runs live, with
# its one default parameter set (streaming, labels never read by the detector); the scorer
# then sweeps the threshold across the corpus and prints the standard, reward_low_FP and
# reward_low_FN scores. `scripts/nab-cv.sh` scores the two cross-validation folds.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
nab="${1:-$root/../shared/nab}"
out="${2:-$(mktemp -d -t vigil-nab.XXXXXX)}"
profile="${NAB_PROFILE:-release}"
jobs="${NAB_JOBS:-2}"

for need in "$nab/data" "$nab/labels.json" "$nab/nab_score.py"; do
    if [ ! -e "$need" ]; then
        echo "nab-score: missing $need (pass the NAB directory as the first argument)" >&2
        exit 2
    fi
done

mkdir -p "$out"
out="$(cd "$out" && pwd)"
cd "$root"
cargo build --quiet --profile "$profile" -p vigil-agent --bin vigil-agent
# cargo puts the `dev` profile under debug/, every other profile under its own name.
dir="$profile"
[ "$profile" = dev ] && dir=debug
agent="${CARGO_TARGET_DIR:-$root/target}/$dir/vigil-agent"
if [ ! -x "$agent" ]; then
    echo "nab-score: built, but $agent is missing" >&2
    exit 2
fi
for input in "$nab"/data/*/*.csv; do
    mkdir -p "$out/$(basename "$(dirname "$input")")"
    printf '%s\0' "$input"
done | xargs -0 -P "$jobs" -I{} sh -c \
    'in="$1"; cat="$(basename "$(dirname "$in")")"; "$2" detect --input "$in" --output "$3/$cat/vigil_$(basename "$in")"' \
    sh {} "$agent" "$out" >>"$out/detect.log"
python3 "$nab/nab_score.py" --labels "$nab/labels.json" --results "$out"
echo "results in $out"
