"""Two checkouts of this repository back to back: the hot paths of issue #12 ("Figures") before and after.

Usage::

    python bench/bench_redesign.py --old /work/wt/base --new /work/main
        [--reps 3] [--table-reps 1] [--claims-table 1000000] [--equality-claims 200000]
        [--serve-claims 60000] [--singles 300] [--seed 7] [--table-source generate|fabricate]
        [--only online,service,batch,table,equality] [--train once|per-side] [--out bench/results]

    # a quick try (a few minutes): small sizes, two repetitions
    python bench/bench_redesign.py --old /work/wt/base --new /work/main --reps 2 \\
        --claims-table 50000 --equality-claims 20000 --serve-claims 20000 --singles 100

Every measurement runs in a child process of the checkout it measures (cwd and ``PYTHONPATH`` = the
checkout; the child imports by trying the new module paths, then the old ones, and says which checkout
its ``features`` came from), one child at a time (never two sides in parallel: the 1M table takes ~6 GB
per side), old and new interleaved (old, new, old, new, ...) so load from other work hits both sides:

- ``online``: ``compute_features`` (``record=False``) for 1 claim and for a 50-claim request against the
  bundle's state (``HistoryState`` loaded from the bundle, as the service does; the claims are
  ``--singles`` recent claims of the serving history, renamed and moved after its end, typed by
  ``serving.schemas.claims_to_frames`` outside the clock), p50/p99; and ``Scorer.score_claims`` in process
  (1 claim, reasons, ``record=True``, request conversion included), p50/p99;
- ``service``: the real BentoML server of the checkout (``serving.serve.bentoml_command`` /
  ``service_env``: ``bentoml serve serving.service:RecoupService``, 1 worker) on a free loopback port with
  ``RECOUP_BUNDLE_DIR`` = the bundle and a fresh journal folder; ``/score`` with reasons and ``record: true``
  (each claim sent once, one kept-alive connection, bodies encoded before the clock), p50/p99, and the
  time to ready;
- ``batch``: ``recoup score`` (``serving.batch.score_cli``, ``--explain top:1000``) over the serving
  history into a Parquet file: claims/s (whole command: load, features, scores, reasons, output);
- ``table``: ``build_feature_table`` over a ``--claims-table`` history: wall time of the build and peak RSS
  of the child (``ru_maxrss``: the history load included, as in bench/bench_features.py);
- ``equality``: the feature table of an ``--equality-claims`` history built by each side, compared with
  ``pandas.testing.assert_frame_equal`` (X; the hits sorted by every column): identical, or the first
  difference.

The histories are made once, by the OLD checkout (``generate_history(GeneratorConfig(n, seed))``, or with
``--table-source fabricate`` bench/bench_rulebook.py's numpy history for the table, as bench_features.py
uses), written as Parquet and read by both sides. The model: trained once by the old checkout
(``training.train.train_model``, default configuration, on the serving history; bundle + state saved as
the service loads them); if the new checkout cannot score with that bundle (the bundle format changed),
or with ``--train per-side``, each side trains its own on the same data and configuration (noted in the
results: scores then differ only if training does).

Reported per side: min / median / max over the repetitions, and the ratio new/old of the medians
(< 1 faster/smaller for times and memory; claims/s: > 1 faster). Written to ``--out``:
``redesign.json`` and ``redesign.md`` (a markdown table). Telemetry is off (MLflow, BentoML); every store
(RECOUP_HOME, BENTOML_HOME, MLflow's SQLite file, journals, histories, bundles) lives in one temporary
folder removed at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("online", "service", "batch", "table", "equality")
QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "DO_NOT_TRACK": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
}


# ============================================================================================ child side
def _imp(*paths: str) -> Any:
    """The first of ``module:name`` that imports (the new layout first, then the old one)."""
    errors = []
    for p in paths:
        mod, _, name = p.partition(":")
        try:
            m = importlib.import_module(mod)
            return getattr(m, name) if name else m
        except (ImportError, AttributeError) as exc:
            errors.append(f"{p}: {exc}")
    raise ImportError("; ".join(errors))


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB (Linux)


def _load_history(d: str):
    return _imp("features.contract:load_history", "features.contract.load:load_history")(d)


def _claims(spec: dict) -> list[dict]:
    return json.loads(Path(spec["claims_json"]).read_text())


def child_gen(spec: dict) -> dict:
    """A history of ``n`` claims as Parquet in ``out`` (the old checkout makes every history)."""
    write_history = _imp("features.contract:write_history", "features.contract.load:write_history")
    t0 = time.perf_counter()
    out = Path(spec["out"])
    if spec.get("source") == "fabricate":
        sys.path.insert(0, str(Path.cwd() / "bench"))
        from bench_rulebook import fabricate_history  # type: ignore[import-not-found]

        csv = out.with_name(out.name + "_csv")
        fabricate_history(csv, spec["n"], spec["seed"])
        history = _load_history(str(csv))
        write_history(history, out, fmt="parquet")
        shutil.rmtree(csv)
    else:
        GeneratorConfig = _imp(
            "features.sources.synthetic.generate:GeneratorConfig", "features.synthetic:GeneratorConfig"
        )
        generate = _imp("features.sources.synthetic.generate:generate_history", "features.synthetic:generate_history")
        history, _ = generate(GeneratorConfig(n_claims=spec["n"], seed=spec["seed"]))
        write_history(history, out, fmt="parquet")
    res = {"claims": len(history.claims), "lines": len(history.claim_lines), "seconds": time.perf_counter() - t0}
    if spec.get("claims_json"):  # the new claims sent to the online paths and the service
        from tests.helpers.claims import recent_claims

        Path(spec["claims_json"]).write_text(json.dumps(recent_claims(history, spec["n_singles"], "BENCH")))
    return res


def child_train(spec: dict) -> dict:
    """A model trained on the serving history with the default configuration: bundle + state in ``out``."""
    load_config = _imp("training.config:load_config")
    train_model = _imp("training.train:train_model")
    history = _load_history(spec["data"])
    t0 = time.perf_counter()
    result = train_model(history, config=load_config(overrides={}))
    out = Path(spec["out"])
    result.bundle.save(out)
    result.state.save(out / "state")
    return {"seconds": time.perf_counter() - t0, "meta": {k: v for k, v in result.bundle.meta.items() if "trees" in k}}


def _scorer(bundle: str):
    return _imp("serving.scorer:Scorer").from_dir(bundle)


def _frames(claims: list[dict]):
    Claim = _imp("serving.schemas:Claim")
    claims_to_frames = _imp("serving.schemas:claims_to_frames")
    conv = claims_to_frames([Claim.model_validate(c) for c in claims])
    return conv.claims, conv.lines


def child_check(spec: dict) -> dict:
    """Can this checkout score with this bundle? The probabilities of every bench claim (not recorded)."""
    sc = _scorer(spec["bundle"])
    c, l = _frames(_claims(spec))
    out = sc.score_claims(c, l, explain=True, record=False)
    return {"probabilities": [o["recoupment_probability"] for o in out], "reasons": [o["reasons"] for o in out]}


def child_online(spec: dict) -> dict:
    compute_features = _imp("features.pipeline:compute_features")
    claims = _claims(spec)
    sc = _scorer(spec["bundle"])
    state, rb = sc.state, sc.rulebook
    sc.warm_up()
    singles = [_frames([c]) for c in claims]
    k = spec["request"]
    groups = [_frames(claims[i : i + k]) for i in range(0, len(claims) - k + 1, max(1, k // 5))]
    res: dict = {}
    for c, l in singles[:20]:
        compute_features(c, l, state, rb)
    ts = []
    for c, l in singles:
        t = time.perf_counter()
        compute_features(c, l, state, rb)
        ts.append(time.perf_counter() - t)
    res["features_1_p50_ms"], res["features_1_p99_ms"] = _pct(ts, 50) * 1e3, _pct(ts, 99) * 1e3
    for c, l in groups[:3]:
        compute_features(c, l, state, rb)
    ts = []
    for _ in range(spec["group_rounds"]):
        for c, l in groups:
            t = time.perf_counter()
            compute_features(c, l, state, rb)
            ts.append(time.perf_counter() - t)
    res["features_req_p50_ms"], res["features_req_p99_ms"] = _pct(ts, 50) * 1e3, _pct(ts, 99) * 1e3
    # the scorer in process: request conversion included, reasons, recorded (into its own state)
    import gc

    gc.collect()
    gc.freeze()  # as the service does after loading
    Claim = _imp("serving.schemas:Claim")
    claims_to_frames = _imp("serving.schemas:claims_to_frames")

    def score(c: dict) -> None:
        conv = claims_to_frames([Claim.model_validate(c)])
        sc.score_claims(conv.claims, conv.lines, explain=True, record=True)

    for c in claims[:20]:
        score(c)
    ts = []
    for c in claims[20:]:
        t = time.perf_counter()
        score(c)
        ts.append(time.perf_counter() - t)
    res["scorer_1_p50_ms"], res["scorer_1_p99_ms"] = _pct(ts, 50) * 1e3, _pct(ts, 99) * 1e3
    return res


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_service(spec: dict) -> dict:
    """The checkout's real server: start, time /score, stop (its whole process group)."""
    import http.client

    claims = _claims(spec)
    journal = tempfile.mkdtemp(prefix="journal_", dir=spec["tmp"])
    port = _free_port()
    try:
        serve = _imp("serving.serve")
        env, cmd = serve.service_env(), serve.bentoml_command(port, "127.0.0.1")
    except ImportError:  # the command moved: start it as the old code did
        exe = Path(sys.executable).parent / "bentoml"
        cmd = [str(exe), "serve", "serving.service:RecoupService", "--port", str(port), "--host", "127.0.0.1"]
        cmd += ["--working-dir", str(Path.cwd())]
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    env = {**env, "RECOUP_BUNDLE_DIR": spec["bundle"], "RECOUP_SERVICE_WORKERS": "1", "RECOUP_JOURNAL_DIR": journal}
    log = open(Path(journal).with_suffix(".log"), "wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    res: dict = {}
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited with {proc.returncode} (log: {log.name})")
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/readyz")
                ok = c.getresponse().status == 200
                c.close()
                if ok:
                    break
            except OSError:
                pass
            if time.perf_counter() - t0 > 180:
                raise RuntimeError("the service did not get ready in 180 s")
            time.sleep(0.1)
        res["service_ready_s"] = time.perf_counter() - t0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        bodies = [json.dumps({"claim": c, "record": True}).encode() for c in claims]
        headers = {"content-type": "application/json"}
        lat, answers = [], []
        for i, body in enumerate(bodies):
            t = time.perf_counter()
            conn.request("POST", "/score", body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            if i >= 20:  # the first 20: warm-up
                lat.append(time.perf_counter() - t)
                answers.append((r.status, data))
        conn.close()
        for status, data in answers:
            if status != 200 or not json.loads(data).get("reasons"):
                raise RuntimeError(f"the service answered {status}: {data[:300]!r}")
        res["score_p50_ms"], res["score_p99_ms"] = _pct(lat, 50) * 1e3, _pct(lat, 99) * 1e3
    finally:
        pgid = os.getpgid(proc.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            proc.wait()
        log.close()
    return res


def child_batch(spec: dict) -> dict:
    """``recoup score`` over the serving history: claims/s of the whole command."""
    out = Path(spec["tmp"]) / f"scores_{os.getpid()}.parquet"
    try:
        score_cli = _imp("serving.batch:score_cli")
        t0 = time.perf_counter()
        summary = score_cli(data=Path(spec["data"]), out=out, bundle_dir=Path(spec["bundle"]), overwrite=True)
        dt = time.perf_counter() - t0
        read, path = summary["read"], "serving.batch.score_cli"
    except ImportError:  # the function moved: the CLI itself (the champion from RECOUP_BUNDLE_DIR)
        import pandas as pd

        os.environ["RECOUP_BUNDLE_DIR"] = spec["bundle"]
        app = _imp("recoup.cli:app")
        t0 = time.perf_counter()
        try:
            app(["score", "--data", spec["data"], "--out", str(out), "--overwrite"], standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise
        dt = time.perf_counter() - t0
        read, path = len(pd.read_parquet(out)), "recoup.cli score"
    out.unlink(missing_ok=True)
    return {"batch_claims_per_s": read / dt, "batch_s": dt, "claims": read, "path": path}


def child_table(spec: dict) -> dict:
    """``build_feature_table`` of a Parquet history; with ``dump`` X and the sorted hits are pickled."""
    build = _imp("features.pipeline:build_feature_table")
    load_rulebook = _imp("features.rulebook:load_rulebook")
    h = _load_history(spec["data"])
    rb = load_rulebook()
    t0 = time.perf_counter()
    res, _ = build(h, rb)
    dt = time.perf_counter() - t0
    peak = _peak_gb()
    out = {"table_s": dt, "table_peak_rss_gb": peak, "claims": len(h.claims), "columns": res.X.shape[1]}
    if spec.get("dump"):
        res.X.to_pickle(spec["dump"] + ".X.pkl")
        hits = res.hits
        hits = hits.sort_values(list(hits.columns), kind="stable").reset_index(drop=True)
        hits.to_pickle(spec["dump"] + ".hits.pkl")
    return out


CHILDREN: dict[str, Callable[[dict], dict]] = {
    "gen": child_gen,
    "train": child_train,
    "check": child_check,
    "online": child_online,
    "service": child_service,
    "batch": child_batch,
    "table": child_table,
}


def child_main(kind: str, spec: dict) -> None:
    res = CHILDREN[kind](spec)
    features = importlib.import_module("features")
    res["_features_from"] = str(Path(features.__file__).resolve().parents[1])
    print("@@RESULT " + json.dumps(res))


# ============================================================================================ parent side
class Side:
    def __init__(self, name: str, checkout: Path, tmp: Path):
        self.name, self.checkout = name, checkout.resolve()
        self.home = tmp / f"home_{name}"
        self.home.mkdir()
        self.bundle: Path | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RECOUP_BUNDLE_DIR")}
        env.update(QUIET)
        env.update(
            PYTHONPATH=str(self.checkout),
            RECOUP_HOME=str(self.home),
            BENTOML_HOME=str(self.home / "bentoml"),
            PYTHONHASHSEED="0",
        )
        return env

    def run(self, kind: str, spec: dict, log: Callable[[str], None]) -> dict:
        """One child of this checkout; its result (``{"failed": ...}`` when it fails)."""
        cmd = [sys.executable, "-P", str(Path(__file__).resolve()), "--child", kind, json.dumps(spec)]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=self.checkout, env=self.env(), capture_output=True, text=True)
        wall = time.perf_counter() - t0
        lines = [x for x in p.stdout.splitlines() if x.startswith("@@RESULT ")]
        if p.returncode != 0 or not lines:
            tail = (p.stderr or p.stdout)[-1500:]
            log(f"  {self.name} {kind} FAILED ({p.returncode}) after {wall:.0f} s:\n{tail}")
            return {"failed": tail}
        res = json.loads(lines[-1][len("@@RESULT ") :])
        got = Path(res.pop("_features_from"))
        if got != self.checkout:
            raise SystemExit(f"the {self.name} child imported features from {got}, not {self.checkout}")
        res["_wall_s"] = wall
        return res


def _summary(xs: list[float]) -> dict:
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs), "runs": xs}


#: metric -> (label, unit, lower is better)
METRICS = {
    "features_1_p50_ms": ("online compute_features, 1 claim, p50", "ms", True),
    "features_1_p99_ms": ("online compute_features, 1 claim, p99", "ms", True),
    "features_req_p50_ms": ("online compute_features, one --request of claims (default 50), p50", "ms", True),
    "features_req_p99_ms": ("online compute_features, one --request of claims (default 50), p99", "ms", True),
    "scorer_1_p50_ms": ("Scorer.score_claims in process, 1 claim, p50", "ms", True),
    "scorer_1_p99_ms": ("Scorer.score_claims in process, 1 claim, p99", "ms", True),
    "score_p50_ms": ("service /score, p50", "ms", True),
    "score_p99_ms": ("service /score, p99", "ms", True),
    "service_ready_s": ("service start to /readyz", "s", True),
    "batch_claims_per_s": ("batch `recoup score`", "claims/s", False),
    "table_s": ("feature table build", "s", True),
    "table_peak_rss_gb": ("feature table peak RSS", "GB", True),
    "equality_table_s": ("feature table build (equality history)", "s", True),
    "equality_table_peak_rss_gb": ("feature table peak RSS (equality history)", "GB", True),
}


def compare_tables(old: str, new: str) -> dict:
    """assert_frame_equal on X and on the sorted hits: identical, or the first difference."""
    import pandas as pd
    from pandas.testing import assert_frame_equal

    out: dict = {}
    for part in ("X", "hits"):
        a, b = pd.read_pickle(f"{old}.{part}.pkl"), pd.read_pickle(f"{new}.{part}.pkl")
        try:
            assert_frame_equal(a, b, check_exact=True)
            out[part] = {"identical": True, "shape": list(a.shape)}
        except AssertionError as exc:
            out[part] = {"identical": False, "shapes": [list(a.shape), list(b.shape)], "assert": str(exc)[:1500]}
            out[part]["first_difference"] = first_difference(a, b)
    out["identical"] = all(out[p]["identical"] for p in ("X", "hits"))
    return out


def first_difference(a, b) -> str:
    if list(a.columns) != list(b.columns):
        only_a, only_b = [c for c in a.columns if c not in b.columns], [c for c in b.columns if c not in a.columns]
        if only_a or only_b:
            return f"columns only old: {only_a[:10]}, only new: {only_b[:10]}"
        i = next(i for i, (x, y) in enumerate(zip(a.columns, b.columns)) if x != y)
        return f"column order differs from position {i}: old {a.columns[i]!r}, new {b.columns[i]!r}"
    if len(a) != len(b):
        return f"rows: old {len(a)}, new {len(b)}"
    if not a.index.equals(b.index):
        i = next(i for i in range(len(a)) if a.index[i] != b.index[i])
        return f"index differs at row {i}: old {a.index[i]!r}, new {b.index[i]!r}"
    for c in a.columns:
        if a[c].dtype != b[c].dtype:
            return f"column {c!r}: dtype old {a[c].dtype}, new {b[c].dtype}"
        x, y = a[c].reset_index(drop=True), b[c].reset_index(drop=True)
        bad = ~((x == y) | (x.isna() & y.isna()))
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            where = f"column {c!r}, row {i} ({a.index[i]!r})"
            return f"{where}: old {x.iloc[i]!r}, new {y.iloc[i]!r} ({int(bad.sum())} rows differ)"
    return "no cell differs (dtype/metadata only: see the assertion)"


def markdown(report: dict) -> str:
    a = report["args"]
    lines = [
        f"# Redesign bench: old `{a['old']}` ({report['commits']['old']}) vs new `{a['new']}` "
        f"({report['commits']['new']})",
        "",
        f"{report['started']}, {report['machine']}; load average before {report['load_before']}, "
        f"after {report['load_after']}; {report['wall_s'] / 60:.1f} min in all.",
        "; ".join(
            part
            for part, kinds in (
                (f"serving history {a['serve_claims']:,} claims (generator, seed {a['seed']})", "online,service,batch"),
                (f"model: {report['model']}", "online,service,batch"),
                (f"table {a['claims_table']:,} claims ({a['table_source']})", "table"),
                (f"equality {a['equality_claims']:,} claims", "equality"),
            )
            if any(k in a["only"].split(",") for k in kinds.split(","))
        )
        + ".",
        "",
        "| measurement | old min / median / max | new min / median / max | new/old (medians) | runs |",
        "|---|---|---|---|---|",
    ]
    for key, (label, unit, _) in METRICS.items():
        if key not in report["metrics"]:
            continue
        m = report["metrics"][key]
        o, n = m["old"], m["new"]

        def fmt(s: dict) -> str:
            return " / ".join(f"{s[k]:,.2f}" for k in ("min", "median", "max"))

        lines.append(f"| {label} ({unit}) | {fmt(o)} | {fmt(n)} | {m['ratio']:.3f} | {len(o['runs'])} |")
    eq = report.get("equality")
    if eq:
        lines.append("")
        if eq.get("identical"):
            lines.append(
                f"Equality: the {a['equality_claims']:,}-claim feature table is identical "
                f"(`assert_frame_equal`, exact): X {eq['X']['shape']}, hits {eq['hits']['shape']}."
            )
        else:
            lines.append(f"Equality: the {a['equality_claims']:,}-claim feature table DIFFERS:")
            for p in ("X", "hits"):
                if p in eq and not eq[p]["identical"]:
                    lines.append(f"- {p}: {eq[p]['first_difference']}")
    for note in report["notes"]:
        lines.append(f"\n{note}")
    return "\n".join(lines) + "\n"


def git_commit(d: Path) -> str:
    p = subprocess.run(["git", "-C", str(d), "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(d), "status", "--porcelain", "-uno"], capture_output=True, text=True)
    return (p.stdout.strip()[:60] or "?") + (" +uncommitted changes" if dirty.stdout.strip() else "")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:  # a measurement, in the checkout it measures
        child_main(argv[1], json.loads(argv[2]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, required=True, help="checkout measured as 'before'")
    ap.add_argument("--new", type=Path, required=True, help="checkout measured as 'after'")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per side of online, service and batch")
    ap.add_argument("--table-reps", type=int, default=1, help="repetitions per side of the big feature table")
    ap.add_argument("--claims-table", type=int, default=1_000_000)
    ap.add_argument("--equality-claims", type=int, default=200_000)
    ap.add_argument("--serve-claims", type=int, default=60_000, help="history of the model, state and batch")
    ap.add_argument("--singles", type=int, default=300, help="new claims timed one at a time (20 more: warm-up)")
    ap.add_argument("--request", type=int, default=50, help="claims per online request")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--table-source", choices=("generate", "fabricate"), default="generate")
    ap.add_argument("--only", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    ap.add_argument("--train", choices=("once", "per-side"), default="once")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (histories, bundles)")
    args = ap.parse_args(argv)
    only = [k.strip() for k in args.only.split(",") if k.strip()]
    bad = [k for k in only if k not in KINDS]
    if bad:
        ap.error(f"--only: unknown {bad}")
    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="recoup_bench_redesign_"))
    args.out.mkdir(parents=True, exist_ok=True)
    logf = open(args.out / "redesign.log", "w")

    def log(msg: str) -> None:
        print(msg, flush=True)
        logf.write(msg + "\n")
        logf.flush()

    old, new = Side("old", args.old, tmp), Side("new", args.new, tmp)
    sides = (old, new)
    report: dict = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "commits": {s.name: git_commit(s.checkout) for s in sides},
        "started": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "notes": [],
        "metrics": {},
        "runs": {"old": [], "new": []},
    }
    runs: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}

    def record(side: Side, res: dict, rename: dict[str, str] | None = None) -> None:
        report["runs"][side.name].append(res)
        for k, v in res.items():
            k = (rename or {}).get(k, k)
            if k in METRICS and isinstance(v, (int, float)):
                runs[side.name].setdefault(k, []).append(float(v))

    def interleaved(kind: str, reps: int, spec_for: Callable[[Side], dict], rename: dict | None = None) -> None:
        for r in range(reps):
            for s in sides:
                res = s.run(kind, spec_for(s), log)
                shown = {k: round(v, 3) for k, v in res.items() if isinstance(v, float)}
                log(f"  {kind} rep {r + 1}/{reps} {s.name}: {shown if 'failed' not in res else 'FAILED'}")
                record(s, {**res, "_kind": kind}, rename)

    try:
        log(f"old {old.checkout} ({report['commits']['old']}); new {new.checkout} ({report['commits']['new']})")
        log(f"temporary folder {tmp}; load {report['load_before']}")
        data: dict[str, Path] = {}
        claims_json = tmp / "claims.json"

        def history(tag: str, n: int, source: str = "generate", claims: bool = False) -> Path:
            key = f"{source}{n}"
            if key not in data:
                spec = {"n": n, "seed": args.seed, "out": str(tmp / f"history_{key}"), "source": source}
                if claims:
                    spec.update(claims_json=str(claims_json), n_singles=args.singles + 20)
                res = old.run("gen", spec, log)
                if "failed" in res:
                    raise SystemExit(f"the old checkout could not make the {tag} history")
                log(
                    f"{tag} history: {res['claims']:,} claims, {res['lines']:,} lines "
                    f"({source}, {res['seconds']:.0f} s)"
                )
                data[key] = Path(spec["out"])
            return data[key]

        serving_kinds = [k for k in ("online", "service", "batch") if k in only]
        if serving_kinds:
            serve = history("serving", args.serve_claims, claims=True)
            old.bundle = tmp / "bundle_old"
            res = old.run("train", {"data": str(serve), "out": str(old.bundle)}, log)
            if "failed" in res:
                raise SystemExit("the old checkout could not train the model")
            log(f"model trained by old in {res['seconds']:.0f} s: {res['meta']}")
            spec = {"bundle": str(old.bundle), "claims_json": str(claims_json)}
            check = {"failed": "--train per-side"} if args.train == "per-side" else new.run("check", spec, log)
            if "failed" not in check:  # same bundle, same claims: the same scores and reasons?
                ref = old.run("check", spec, log)
                same = ref.get("probabilities") == check["probabilities"] and ref.get("reasons") == check["reasons"]
                n = len(check["probabilities"])
                line = f"Scores: the {n} bench claims scored with the same bundle (reasons on, not recorded): "
                line += "identical probabilities and reasons." if same else "DIFFERENT probabilities or reasons."
                report["scores_identical"] = same
                report["notes"].append(line)
                log(line)
            if "failed" in check:
                why = (
                    "--train per-side" if args.train == "per-side" else "the new side cannot score with the old bundle"
                )
                new.bundle = tmp / "bundle_new"
                res_new = new.run("train", {"data": str(serve), "out": str(new.bundle)}, log)
                if "failed" in res_new:
                    raise SystemExit("the new checkout could not train the model")
                log(f"model trained by new in {res_new['seconds']:.0f} s: {res_new['meta']}")
                model = (
                    f"each side trained its own on the serving history, default configuration ({why}; "
                    f"old {res['meta']}, new {res_new['meta']})"
                )
            else:
                new.bundle = old.bundle
                model = (
                    f"one bundle trained by old on the serving history, default configuration ({res['meta']}), "
                    "scored by both sides"
                )
            report["model"] = model
            report["notes"].append(f"Model: {model}.")

            def sspec(s: Side) -> dict:
                return {
                    "bundle": str(s.bundle),
                    "claims_json": str(claims_json),
                    "data": str(serve),
                    "tmp": str(tmp),
                    "request": args.request,
                    "group_rounds": 3,
                }

            for kind in serving_kinds:
                log(f"== {kind}")
                interleaved(kind, args.reps, sspec)
        else:
            report["model"] = "none (no serving measurement)"

        if "equality" in only:
            eq = history("equality", args.equality_claims)
            log("== equality")
            for s in sides:
                res = s.run("table", {"data": str(eq), "dump": str(tmp / f"eq_{s.name}")}, log)
                log(f"  equality table {s.name}: {res}")
                record(
                    s,
                    {**res, "_kind": "equality"},
                    {"table_s": "equality_table_s", "table_peak_rss_gb": "equality_table_peak_rss_gb"},
                )
            if all((tmp / f"eq_{s.name}.X.pkl").exists() for s in sides):
                report["equality"] = compare_tables(str(tmp / "eq_old"), str(tmp / "eq_new"))
                log(f"  equality: {'identical' if report['equality']['identical'] else 'DIFFERS'}")
                if not report["equality"]["identical"]:
                    for p in ("X", "hits"):
                        if not report["equality"][p]["identical"]:
                            log(f"   {p}: {report['equality'][p]['first_difference']}")
            else:
                report["equality"] = {"identical": None, "error": "a side failed to build the table"}
            for s in sides:
                for p in ("X", "hits"):
                    (tmp / f"eq_{s.name}.{p}.pkl").unlink(missing_ok=True)

        if "table" in only:
            tab = history("table", args.claims_table, args.table_source)
            log("== table")
            interleaved("table", args.table_reps, lambda s: {"data": str(tab)})
    finally:
        for name in ("old", "new"):
            for k, xs in runs[name].items():
                report["metrics"].setdefault(k, {})[name] = _summary(xs)
        for k, m in list(report["metrics"].items()):
            if "old" in m and "new" in m:
                m["ratio"] = m["new"]["median"] / m["old"]["median"] if m["old"]["median"] else float("nan")
            else:
                del report["metrics"][k]
        report["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
        report["wall_s"] = time.perf_counter() - t_start
        report.setdefault("model", "?")
        (args.out / "redesign.json").write_text(json.dumps(report, indent=2, default=str))
        (args.out / "redesign.md").write_text(markdown(report))
        log(markdown(report))
        log(f"written: {args.out / 'redesign.json'}, {args.out / 'redesign.md'} ({report['wall_s'] / 60:.1f} min)")
        logf.close()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
