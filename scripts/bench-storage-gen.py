#!/usr/bin/env python3
"""Builds the node_exporter-like dataset of scripts/bench-storage from real scrapes.

Scrapes a running node_exporter SCRAPES times, SCRAPE_GAP seconds apart, and lays the
scrapes out at a 15 s interval for HOSTS simulated hosts (instance="host-N:9100",
job="node"):

- gauges (and untyped series, and summary quantiles) take the real scraped values in order;
  host N starts 7*N scrapes further into the sequence, wrapping around;
- counters (counter families, histogram/summary _sum/_count/_bucket, node_time_seconds)
  advance by the real increase between consecutive scrapes scaled by 15 s over the measured
  time between them, so they grow at their real 15 s rate; the arithmetic is decimal and
  rounded to the decimal places the exporter printed for that series;
- a series missing from some scrape keeps its last value.

Writes OUT.prom (text format, millisecond timestamps, a `# page` comment before every
host's scrape; for VictoriaMetrics' /api/v1/import/prometheus and Vigil's loader) and OUT.om
(OpenMetrics, second timestamps, for `promtool tsdb create-blocks-from openmetrics`).

usage: bench-storage-gen.py URL SCRAPES SCRAPE_GAP HOSTS START_MS OUT
"""

import sys
import time
import urllib.request
from decimal import Decimal, InvalidOperation

STEP_MS = 15_000


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def parse(text):
    """Returns ({series_key: value_text}, {family: type}) for one page."""
    types = {}
    values = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, fam, typ = line.split(" ", 3)
            types[fam] = typ
            continue
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        values[key] = value
    return values, types


def is_counter(name, types):
    if name == "node_time_seconds":
        return True
    if types.get(name) == "counter":
        return True
    for suffix in ("_sum", "_count", "_bucket"):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) in ("histogram", "summary"):
            return True
    return False


def dec(text):
    try:
        d = Decimal(text)
        return d if d.is_finite() else None
    except InvalidOperation:
        return None


def fmt(d):
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s or "0"


def with_instance(key, host):
    extra = f'instance="host-{host}:9100",job="node"'
    if key.endswith("}"):
        name, rest = key.split("{", 1)
        inner = rest[:-1]
        return f"{name}{{{inner + ',' if inner else ''}{extra}}}"
    return f"{key}{{{extra}}}"


def main():
    url, scrapes, gap, hosts, start_ms, out = sys.argv[1:7]
    scrapes, gap, hosts, start_ms = int(scrapes), float(gap), int(hosts), int(start_ms)
    pages = []
    times = []
    types = {}
    t0 = time.monotonic()
    for i in range(scrapes):
        times.append(time.monotonic())
        values, ty = parse(scrape(url))
        types.update(ty)
        pages.append(values)
        next_at = t0 + (i + 1) * gap
        time.sleep(max(0.0, next_at - time.monotonic()))
    # Scale every increase by 15 s over the real time between the two scrapes.
    scales = [Decimal(15) / Decimal(f"{max(b - a, 0.001):.3f}") for a, b in zip(times, times[1:])]
    keys = []
    seen = set()
    for p in pages:
        for k in p:
            if k not in seen:
                seen.add(k)
                keys.append(k)
    # Per series: the real value of every scrape (carrying the last one forward).
    series = []
    for k in keys:
        name = k.split("{", 1)[0]
        last = None
        vals = []
        for p in pages:
            last = p.get(k, last)
            vals.append(last)
        first = next(v for v in vals if v is not None)
        vals = [v if v is not None else first for v in vals]
        counter = is_counter(name, types) and all(dec(v) is not None for v in vals)
        if counter:
            ds = [dec(v) for v in vals]
            # Keep the digits the exporter prints for this series.
            places = max(max(-d.as_tuple().exponent, 0) for d in ds)
            q = Decimal(1).scaleb(-places)
            deltas = [
                (max(Decimal(0), b - a) * sc).quantize(q)
                for a, b, sc in zip(ds, ds[1:], scales)
            ] or [Decimal(0)]
            series.append((k, True, ds[0], deltas))
        else:
            series.append((k, False, vals, None))
    steps = scrapes
    n_samples = 0
    with open(out + ".prom", "w") as prom, open(out + ".om", "w") as om:
        state = []
        for h in range(hosts):
            row = []
            for k, counter, a, deltas in series:
                lab = with_instance(k, h)
                if counter:
                    # Host h has been up a little longer than host 0.
                    base = a + sum(deltas[: (7 * h) % len(deltas)], Decimal(0))
                    row.append([lab, True, base, deltas])
                else:
                    row.append([lab, False, a, None])
            state.append(row)
        for step in range(steps):
            ts = start_ms + step * STEP_MS
            ts_s = f"{ts // 1000}.{ts % 1000:03d}"
            for h in range(hosts):
                prom.write("# page\n")
                for entry in state[h]:
                    lab, counter, a, deltas = entry
                    if counter:
                        if step > 0:
                            entry[2] = a + deltas[(step - 1 + 7 * h) % len(deltas)]
                        v = fmt(entry[2])
                    else:
                        v = a[(step + 7 * h) % len(a)]
                    prom.write(f"{lab} {v} {ts}\n")
                    om.write(f"{lab} {v} {ts_s}\n")
                    n_samples += 1
        om.write("# EOF\n")
    print(f"series={len(series) * hosts} samples={n_samples} steps={steps} hosts={hosts}")


if __name__ == "__main__":
    main()
