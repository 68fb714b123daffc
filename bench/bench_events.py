"""Benchmark of ``EventTable`` (features/engine/events.py) against an earlier version of the same file.

    python bench/bench_events.py [--events 1000000] [--keys 2000 200000] [--repeat 3] [--baseline REV]

The earlier version is read with ``git show REV:features/engine/events.py`` into a temporary module, so both
run in the same process, interleaved (old, new, old, new, ...), on the same fabricated events: keys
drawn from ``--keys`` distinct values (provider-like and patient-like tables), 13 columns (11 counts
and 2 dollar amounts up to $100,000, as the provider table holds), or the 11 counts alone (integer
tables, stored as int32). Figures (min and median over ``--repeat`` runs, printed):

- ``build``: ``EventTable.build`` from unsorted events;
- ``batch``: one ``query`` of as many (key, T) pairs as events (the training table);
- ``batch_cols``: the same with ``columns=`` (2 columns);
- ``online``: p50 of one ``query`` of 1 key and of 20 keys (the service), in microseconds;
- ``values``: ``payloads_before(values=True)`` for 10,000 queries (every event of the key before T);
- ``prefix_mb``: memory of the running-sum matrix (int32 when every sum is an integer below 2**31).

``--delta`` instead measures what the service does when it records claims: one key (a table's global
key gets every recorded claim) collects events in the delta one at a time, and after 500, 3,000 and
19,000 of them the p50 of one online query of that key (1 key, as one claim asks), in microseconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BASELINE = "2fbae71"  # main before per-key running sums


def load_old(rev: str):
    """features/engine/events.py of ``rev`` as a module of its own."""
    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:features/engine/events.py"], capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "events_old.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("events_old", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["events_old"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def fabricate(n: int, n_keys: int, money: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    keys = np.array([f"K{i}" for i in range(n_keys)], dtype=object)[rng.integers(0, n_keys, n)]
    times = rng.integers(0, 1 << 40, n).astype(np.int64)
    counts = (rng.random((n, 11)) < 0.3).astype(np.float64)
    counts[:, 0] = 1.0
    if money:
        amounts = np.round(rng.random((n, 2)) * 100_000, 2)
        vals = np.hstack([counts, amounts])
    else:
        vals = counts
    return keys, times, vals


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_once(mod, keys, times, vals, rng) -> dict:
    cols = [f"c{j}" for j in range(vals.shape[1])]
    fig: dict = {}
    tab = None

    def build():
        nonlocal tab
        tab = mod.EventTable.build(cols, keys, times, vals)

    fig["build"] = _time(build)
    n = len(keys)
    qk = keys[rng.permutation(n)]
    qt = rng.integers(0, 1 << 40, n).astype(np.int64)
    tab.query(qk[:1000], qt[:1000])  # builds the search index once (not part of either figure)
    fig["batch"] = _time(lambda: tab.query(qk, qt))
    fig["batch_cols"] = _time(lambda: tab.query(qk, qt, columns=[0, vals.shape[1] - 1]))
    for m in (1, 20):
        ts = []
        for i in range(300):
            s = (i * m) % (n - m)
            ts.append(_time(lambda: tab.query(qk[s : s + m], qt[s : s + m])))
        fig[f"online_{m}_us"] = float(np.median(ts) * 1e6)
    fig["values"] = _time(lambda: tab.payloads_before(qk[:10_000], qt[:10_000], values=True))
    fig["prefix_mb"] = tab.prefix.nbytes / 1e6
    return fig


def run_delta(mod, marks=(500, 3000, 19_000), width: int = 13, seed: int = 0) -> dict:
    """p50 (us) of a one-key query against a key with ``mark`` delta events (appended one at a time)."""
    rng = np.random.default_rng(seed)
    cols = [f"c{j}" for j in range(width)]
    tab = mod.EventTable.build(cols, np.array(["ALL", "OTHER"], dtype=object), np.array([1, 2]), np.ones((2, width)))
    key = np.array(["ALL"], dtype=object)
    out, t = {}, 10
    for mark in marks:
        while tab.n_delta < mark:
            t += 1
            tab.append(key, np.array([t]), rng.random((1, width)))
        ts = [_time(lambda: tab.query(key, np.array([t + 1]))) for _ in range(200)]
        out[f"delta_{mark}_us"] = float(np.median(ts) * 1e6)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, nargs="+", default=[2000, 200_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the 'before' events.py")
    ap.add_argument("--delta", action="store_true", help="only the delta figures (recorded claims)")
    args = ap.parse_args(argv)
    import features.engine.events as new

    versions = {"before": load_old(args.baseline), "after": new}
    if args.delta:
        runs = {name: [] for name in versions}
        for r in range(args.repeat):
            for name, mod in versions.items():
                runs[name].append(run_delta(mod, seed=r))
        for name, figs in runs.items():
            print(
                name,
                json.dumps(
                    {k: [round(min(f[k] for f in figs), 1), round(max(f[k] for f in figs), 1)] for k in figs[0]}
                ),
                flush=True,
            )
        return 0
    results: dict = {}
    for n_keys in args.keys:
        for money in (True, False):
            case = f"{args.events} events, {n_keys} keys, {'13 columns (2 money)' if money else '11 counts'}"
            keys, times, vals = fabricate(args.events, n_keys, money)
            runs: dict = {v: [] for v in versions}
            for r in range(args.repeat):
                for name, mod in versions.items():
                    runs[name].append(run_once(mod, keys, times, vals, np.random.default_rng(r)))
            results[case] = {}
            for name, figs in runs.items():
                results[case][name] = {
                    k: (round(min(f[k] for f in figs), 4), round(float(np.median([f[k] for f in figs])), 4))
                    for k in figs[0]
                }
            print(case, json.dumps(results[case]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
