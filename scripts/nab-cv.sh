#!/usr/bin/env bash
# Two-fold cross-validation of the anomaly detector on a NAB corpus (the protocol is in
# BENCHMARKS.md, "Anomaly detector on NAB").
#
# Usage: scripts/nab-cv.sh [NAB_DIR] [OUTDIR]
#   Same arguments and environment (NAB_PROFILE, NAB_JOBS) as scripts/nab-score.sh, which it
#   runs first to produce the per-file results and the whole-corpus scores.
#
# Folds: within each NAB category directory the files are ordered by the SHA-256 of their
# file name, and files are dealt alternately to folds A and B, continuing the alternation
# across categories (categories in name order). So each category is split as evenly as it can
# be, the split does not depend on the labels or the data, and adding files elsewhere does not
# reshuffle a category.
#
# Printed per fold and profile: the score with the threshold swept on that fold (NAB's own
# method, via nab_score.py on the fold's labels) and the score at the threshold swept on the
# other fold (a strictly held-out number: nothing about the scored fold was chosen on it).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
nab="$(cd "${1:-$root/../shared/nab}" && pwd)"
out="${2:-$(mktemp -d -t vigil-nab-cv.XXXXXX)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

echo "== whole corpus"
"$root/scripts/nab-score.sh" "$nab" "$out"

python3 - "$nab" "$out" <<'PY'
import hashlib, importlib.util, json, os, subprocess, sys

nab, out = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("nab_score", os.path.join(nab, "nab_score.py"))
ns = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ns)

labels = json.load(open(os.path.join(nab, "labels.json")))
by_cat = {}
for key in labels:
    cat, name = key.split("/")
    by_cat.setdefault(cat, []).append(name)
fold_of, i = {}, 0
for cat in sorted(by_cat):
    for name in sorted(by_cat[cat], key=lambda n: hashlib.sha256(n.encode()).hexdigest()):
        fold_of[f"{cat}/{name}"] = "AB"[i % 2]
        i += 1

def load(keys):
    rows = {}
    for key in keys:
        cat, name = key.split("/")
        path = os.path.join(out, cat, "vigil_" + name)
        ts, sc = [], []
        with open(path) as f:
            for row in ns.csv.DictReader(f):
                ts.append(ns.parse_ts(row["timestamp"]))
                sc.append(float(row["anomaly_score"]))
        rows[key] = (ts, sc)
    return rows

def score(keys, fixed=None):
    """Per profile: (normalised score, threshold) with the threshold swept, or at `fixed`."""
    rows = load(keys)
    res = {}
    for prof, (tp_w, fn_w, fp_w) in ns.PROFILES.items():
        allp, allw = [], []
        for key, (ts, sc) in rows.items():
            wins = [(ns.parse_ts(s), ns.parse_ts(e)) for s, e in labels[key]]
            pts = ns.points(ts, sc, wins, key, tp_w, fp_w)
            allp += pts
            allw += sorted(set(p[2] for p in pts if p[2] is not None))
        wset = set(allw)
        if fixed is None:
            raw, thr = ns.best(allp, wset, fn_w)
        else:
            thr = fixed[prof][1]
            parts = {w: -fn_w for w in wset}
            fp = 0.0
            for s, v, w in allp:
                if s >= thr:
                    if w is None:
                        fp += v
                    elif w in parts:
                        parts[w] = max(parts[w], v)
            raw = sum(parts.values()) + fp
        null, perfect = -fn_w * len(wset), tp_w * len(wset)
        res[prof] = (100 * (raw - null) / (perfect - null), thr)
    return res

folds = {f: sorted(k for k in labels if fold_of[k] == f) for f in "AB"}
for f in "AB":
    print(f"== fold {f}: {len(folds[f])} files: " + ", ".join(k.split('/')[1] for k in folds[f]))
    # nab_score.py itself on the fold's labels, as a check of this script's own sweep.
    sub = {k: labels[k] for k in folds[f]}
    lab = os.path.join(out, f"labels_fold_{f}.json")
    json.dump(sub, open(lab, "w"), indent=1)
    ref = subprocess.run([sys.executable, os.path.join(nab, "nab_score.py"), "--labels", lab,
                          "--results", out], check=True, capture_output=True, text=True).stdout
    print("nab_score.py: " + ref.strip().replace("\n", "; "))
swept = {f: score(folds[f]) for f in "AB"}
print("fold  profile             swept(thr)          at other fold's thr")
for f, other in (("A", "B"), ("B", "A")):
    held = score(folds[f], fixed=swept[other])
    for prof in ns.PROFILES:
        s, t = swept[f][prof]
        h, ht = held[prof]
        print(f"{f}     {prof:18}  {s:6.2f} ({t:.5f})   {h:6.2f} ({ht:.5f})")
PY
