"""Today's single-process baseline for issue #15 (docs/scale.md, "Today: one process").

Usage::

    python bench/bench_scale.py [--claims 1000000 300000] [--seed 11] [--history-dir DIR]
        [--n-estimators 20] [--skip-train | --service-only] [--state-span] [--out bench/results/scale_baseline.json]
        [--cluster local:2 [--months 3] [--skip-single]]

For each ``--claims`` size, the synthetic generator's history (a cached Parquet folder
``history_<n>_s<seed>`` read from ``--history-dir``, else generated into ``--cache``) goes through
these steps, each in its own child process so its peak RSS (``VmHWM`` of /proc/self/status) is its own:

- ``load``: ``load_history`` alone (what the history itself costs in memory);
- ``features``: ``load_history`` + ``build_feature_table`` (the training table and the full state);
- ``train``: ``training.train.train_model`` with ``--n-estimators`` trees (cause model: half), then the
  bundle and its history state saved into a temp folder as training does (``bundle.save``;
  ``state.save(bundle/state)``); the state's size on disk and per event table (keys, events, array bytes);
- ``serve``: in a fresh process, the service's start path (``Scorer.from_dir(bundle, journal_dir=...)``
  + ``warm_up``, as ``serving.service`` does, without BentoML's HTTP layer), then one claim scored
  (``record=False``): import / load / warm-up seconds, RSS after imports and after load, peak RSS;
- ``compact`` then ``serve`` again: the full state of the ``train`` step made compact as training now saves
  it (``HistoryState.compact``, docs/scale.md "The service's state") into a copy of the bundle, and the same
  service start with it (``serve_compact``). ``--service-only`` skips ``load`` and ``features``;
- ``span`` (``--state-span``): the states (full and compact) of the last 1, 2 and 3 years of the history, the
  same claims per day: events, array bytes, claim keys and size on disk (how each grows with the history's
  length in time).

- ``cluster`` (with ``--cluster``): the feature table on a Dask cluster (``features.cluster.table``) from a store
  of the same history (``store_<n>_s<seed>``, read from ``--history-dir`` or ingested into ``--cache``): time until
  every partition of X is computed, then the folded end state gathered; peak RSS of this process (client; the
  scheduler of a LocalCluster runs in it), the scheduler and each worker (``client.run``);
- ``cluster_train`` (with ``--cluster``, unless ``--skip-train``): ``recoup train --cluster``'s training
  (``training.cluster.train_model_cluster``, ``--n-estimators`` trees) on a fresh cluster, the bundle and its
  compact state saved; the same memory figures. ``--skip-single`` leaves out every single-process step.

Load averages (``os.getloadavg``) are written before and after each step. Prints one line per step and
writes all figures as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T_START = time.perf_counter()

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------------------------- helpers
def proc_status() -> dict[str, float]:
    """Resident (VmRSS) and peak resident (VmHWM) memory of this process, GB."""
    out: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0]) * 1024 / 1e9
    return {"rss_gb": round(out["VmRSS"], 3), "peak_rss_gb": round(out["VmHWM"], 3)}


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def emit(fig: dict) -> None:
    """A child's figures: the last line of its stdout."""
    print(json.dumps(fig), flush=True)


# ---------------------------------------------------------------------------------------------- children
def child_generate(n: int, seed: int, folder: str) -> None:
    from features.contract import write_history
    from features.sources.synthetic.generate import GeneratorConfig, generate_history

    t0 = time.perf_counter()
    history, _ = generate_history(GeneratorConfig(n_claims=n, seed=seed))
    tmp = Path(folder).with_name(Path(folder).name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_history(history, tmp, fmt="parquet")
    os.replace(tmp, folder)
    emit({"seconds": round(time.perf_counter() - t0, 1), **proc_status()})


def child_load(history: str) -> None:
    from features.contract import load_history

    t0 = time.perf_counter()
    h = load_history(history)
    emit(
        {
            "claims": len(h.claims),
            "lines": len(h.claim_lines),
            "recoupments": 0 if h.recoupments is None else len(h.recoupments),
            "seconds": round(time.perf_counter() - t0, 1),
            **proc_status(),
        }
    )


def child_features(history: str) -> None:
    from features.contract import load_history
    from features.pipeline import build_feature_table
    from features.rulebook import load_rulebook

    h = load_history(history)
    after_load = proc_status()["rss_gb"]
    t0 = time.perf_counter()
    cpu0 = cpu_seconds()
    res, state = build_feature_table(h, load_rulebook())
    emit(
        {
            "seconds": round(time.perf_counter() - t0, 1),
            "cpu_seconds": round(cpu_seconds() - cpu0, 1),
            "rss_after_load_gb": after_load,
            "rows": len(res.X),
            "columns": res.X.shape[1],
            **proc_status(),
        }
    )


def table_sizes(state) -> dict[str, dict]:
    """Per event table of the state: keys, events, columns and the bytes of its arrays."""
    out = {}
    for name, t in state.tables.items():
        arrays = [t.times, t.offsets, t.prefix] + ([t.payload] if t.payload is not None else [])
        out[name] = {
            "keys": len(t.keys),
            "events": len(t.times),
            "columns": len(t.columns),
            "array_mb": round(sum(a.nbytes for a in arrays) / 1e6, 1),
        }
    return out


def child_train(history: str, bundle_dir: str, n_estimators: int) -> None:

    from features.contract import load_history
    from training.config import load_config, with_n_estimators
    from training.train import train_model

    h = load_history(history)
    t0 = time.perf_counter()
    result = train_model(h, config=with_n_estimators(load_config(), n_estimators))
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    bundle = Path(bundle_dir)
    result.bundle.save(bundle)
    result.state.save(bundle / "state")
    save_s = time.perf_counter() - t0
    write_probe(h, bundle.parent)
    emit(
        {
            "train_seconds": round(train_s, 1),
            "timings": {k: round(v, 1) for k, v in result.timings.items()},
            "save_seconds": round(save_s, 1),
            "trees_likelihood": result.bundle.likelihood.booster_.num_trees(),
            "state_on_disk_mb": round(dir_bytes(bundle / "state") / 1e6, 1),
            "bundle_on_disk_mb": round((dir_bytes(bundle) - dir_bytes(bundle / "state")) / 1e6, 1),
            "state_claim_keys": len(result.state.all_claim_keys()),
            "state_tables": table_sizes(result.state),
            **proc_status(),
        }
    )


def write_probe(h, folder: Path) -> None:
    """The latest claim of ``h``, moved a day after the history, as the probe the serve step scores."""
    import pandas as pd

    last = h.claims.sort_values("submitted_date", kind="stable").iloc[[-1]].copy()
    lines = h.claim_lines[h.claim_lines["claim_id"] == last["claim_id"].iloc[0]].copy()
    last["claim_id"] = lines["claim_id"] = "SCALE-PROBE-1"
    last["submitted_date"] = last["submitted_date"] + pd.Timedelta(days=1)
    last.to_pickle(folder / "probe_claims.pkl")  # list columns: pickle, not Parquet
    lines.to_pickle(folder / "probe_lines.pkl")


def child_serve(bundle_dir: str, journal_dir: str) -> None:
    t_imports0 = time.perf_counter()
    import pandas as pd

    from serving.scorer import Scorer

    imports_s = time.perf_counter() - t_imports0
    after_imports = proc_status()["rss_gb"]
    t0 = time.perf_counter()
    scorer = Scorer.from_dir(bundle_dir, journal_dir=journal_dir)
    load_s = time.perf_counter() - t0
    after_load = proc_status()["rss_gb"]
    t0 = time.perf_counter()
    scorer.warm_up()
    warm_s = time.perf_counter() - t0
    ready_s = time.perf_counter() - T_START
    after_warm = proc_status()
    probe = Path(bundle_dir).parent
    claims = pd.read_pickle(probe / "probe_claims.pkl")
    lines = pd.read_pickle(probe / "probe_lines.pkl")
    t0 = time.perf_counter()
    records = scorer.score_claims(claims, lines, explain=True, record=False)
    first_ms = (time.perf_counter() - t0) * 1000
    scorer.close()
    emit(
        {
            "imports_seconds": round(imports_s, 1),
            "load_seconds": round(load_s, 1),
            "warm_up_seconds": round(warm_s, 1),
            "ready_seconds_in_process": round(ready_s, 1),
            "rss_after_imports_gb": after_imports,
            "rss_after_load_gb": after_load,
            "rss_ready_gb": after_warm["rss_gb"],
            "first_score_ms": round(first_ms, 1),
            "scored": len(records),
            **proc_status(),
        }
    )


def child_compact(bundle_dir: str, out_dir: str) -> None:
    """The bundle's full state loaded, made compact and saved into a copy of the bundle at ``out_dir``."""
    from features.engine.state import HistoryState

    src, out = Path(bundle_dir), Path(out_dir)
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("state"))
    full = HistoryState.load(src / "state")
    t0 = time.perf_counter()
    compact = full.compact()
    compact_s = time.perf_counter() - t0
    compact.save(out / "state")
    emit(
        {
            "compact_seconds": round(compact_s, 1),
            "state_on_disk_mb": round(dir_bytes(out / "state") / 1e6, 1),
            "state_claim_keys": len(compact.all_claim_keys()),
            "compaction": compact.compaction,
            "state_tables": table_sizes(compact),
            **proc_status(),
        }
    )


def child_span(history: str, years: str) -> None:
    """Full and compact states of the history's last ``years`` (comma-separated) years: their sizes."""
    import pandas as pd

    from features.contract import History, load_history
    from features.engine.state import HistoryState
    from features.rulebook import load_rulebook

    h = load_history(history)
    rb = load_rulebook()
    end = h.claims["submitted_date"].max()
    out = []
    for y in [int(v) for v in years.split(",")]:
        claims = h.claims[h.claims["submitted_date"] > end - pd.Timedelta(days=365 * y)].reset_index(drop=True)
        ids = claims["claim_id"]
        rec = None if h.recoupments is None else h.recoupments[h.recoupments["claim_id"].isin(ids)]
        part = History(
            claims=claims,
            claim_lines=h.claim_lines[h.claim_lines["claim_id"].isin(ids)].reset_index(drop=True),
            coverage=h.coverage,
            providers=h.providers,
            recoupments=rec,
        )
        full = HistoryState.from_history(part, rb)
        fig: dict = {"years": y, "claims": len(claims)}
        with tempfile.TemporaryDirectory(prefix="bench_span_") as tmp:
            for name, st in (("full", full), ("compact", full.compact())):
                st.save(Path(tmp) / name)
                sizes = table_sizes(st)
                fig[name] = {
                    "events": sum(t["events"] for t in sizes.values()),
                    "array_mb": round(sum(t["array_mb"] for t in sizes.values()), 1),
                    "claim_keys": len(st.all_claim_keys()),
                    "on_disk_mb": round(dir_bytes(Path(tmp) / name) / 1e6, 1),
                }
        del full
        out.append(fig)
    emit({"spans": out, **proc_status()})


def bench_service_compact(tmp: Path, bundle: Path) -> dict:
    """``compact`` and ``serve_compact``: the service started with the compact state (a copy of the bundle)."""
    compact = tmp / "bundle_compact"
    fig = {"compact": run_step("compact", bundle, compact)}
    if "failed" not in fig["compact"]:
        fig["serve_compact"] = run_step("serve", compact, tmp / "journal_compact")
    return fig


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return round(r.ru_utime + r.ru_stime, 1)


def _vm_hwm_gb() -> dict[str, float]:
    """This process's peak and current resident memory (GB) and CPU seconds, run inside each Dask process."""
    out = {"cpu_seconds": cpu_seconds()}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(rest.split()[0]) * 1024 / 1e9, 3)
    return {
        "pid": os.getpid(),
        "peak_rss_gb": out.get("VmHWM", 0.0),
        "rss_gb": out.get("VmRSS", 0.0),
        "cpu_seconds": out["cpu_seconds"],
    }


def _warm_up() -> None:
    import features.cluster.table  # noqa: F401
    import features.pipeline  # noqa: F401


def child_cluster(store: str, spec: str, months: int) -> None:
    """The feature table on a cluster (``features.cluster.table.feature_table``) of a store: seconds until every
    partition of X is computed (held by the workers, not collected), then ``state()`` (the folded end state and
    every claim's keys, gathered into this process); peak memory of this process (client and, for a LocalCluster,
    the scheduler: same process), of the scheduler and of each worker process."""
    from features.cluster.client import connect
    from features.cluster.parts import scratch
    from features.cluster.table import feature_table

    with connect(spec) as client, scratch(client, "bench") as folder:
        client.run(_warm_up)  # the workers' imports: start-up, not the table's work
        cpu0 = {w["pid"]: w["cpu_seconds"] for w in client.run(_vm_hwm_gb).values()}
        cpu_client0 = cpu_seconds()
        t0 = time.perf_counter()
        table = feature_table(client, store, months=int(months) or None, folder=folder)
        rows = int(table.X.map_partitions(len).compute().sum())
        features_s = time.perf_counter() - t0
        busy = client.run(_vm_hwm_gb)
        cpu = round(sum(w["cpu_seconds"] - cpu0.get(w["pid"], 0.0) for w in busy.values()), 1)
        cpu_client = round(cpu_seconds() - cpu_client0, 1)
        t0 = time.perf_counter()
        state = table.state()
        state_s = time.perf_counter() - t0
        workers = client.run(_vm_hwm_gb)
        scheduler = client.run_on_scheduler(_vm_hwm_gb)
        emit(
            {
                "seconds": round(features_s, 1),
                "cpu_seconds_workers": cpu,
                "cpu_seconds_client_and_scheduler": cpu_client,
                "state_seconds": round(state_s, 1),
                "rows": rows,
                "partitions": table.partitions,
                "months_per_partition": months,
                "end_state_events": int(sum(len(t.times) for t in state.tables.values())),
                "end_state_tables": table_sizes(state),
                "client": proc_status(),
                "scheduler": scheduler,
                "workers": sorted(workers.values(), key=lambda w: w["pid"]),
                **proc_status(),
            }
        )


def child_cluster_train(store: str, spec: str, bundle_dir: str, n_estimators: int) -> None:
    """``recoup train --cluster``'s training (``training.cluster.train_model_cluster``: the feature table, labels
    and both models on the cluster) with ``n_estimators`` trees, then the bundle and its compact state saved as
    training saves them; time, and the peak memory of this process (client and, for a LocalCluster, the
    scheduler), the scheduler and each worker."""
    from features.cluster.client import connect
    from training.cluster import train_model_cluster
    from training.config import load_config, with_n_estimators

    with connect(spec) as client:
        client.run(_warm_up)
        t0 = time.perf_counter()
        result, _ = train_model_cluster(client, Path(store), config=with_n_estimators(load_config(), n_estimators))
        train_s = time.perf_counter() - t0
        workers = client.run(_vm_hwm_gb)
        scheduler = client.run_on_scheduler(_vm_hwm_gb)
    t0 = time.perf_counter()
    bundle = Path(bundle_dir)
    result.bundle.save(bundle)
    compact = result.state.compacted()  # as training/registry.py does
    compact.save(bundle / "state")
    save_s = time.perf_counter() - t0
    from features.store.read import read_store

    write_probe(read_store(store, since=str(result.bundle.meta["as_of"])[:7]), bundle.parent)  # the last month
    emit(
        {
            "train_seconds": round(train_s, 1),
            "timings": {k: round(v, 1) for k, v in result.timings.items()},
            "save_seconds": round(save_s, 1),
            "claims": result.data_summary["claims"],
            "trees_likelihood": result.bundle.likelihood.booster_.num_trees(),
            "roc_auc": round(float(result.metrics["roc_auc"]), 4),
            "state_on_disk_mb": round(dir_bytes(bundle / "state") / 1e6, 1),
            "state_events": compact.n_events(),
            "client": proc_status(),
            "scheduler": scheduler,
            "workers": sorted(workers.values(), key=lambda w: w["pid"]),
            **proc_status(),
        }
    )


def child_ingest(history: str, store: str) -> None:
    """A store of the history folder (``recoup ingest``'s function), for the cluster step's reads by month."""
    from features.store.ingest import ingest

    t0 = time.perf_counter()
    tmp = Path(store).with_name(Path(store).name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ingest([Path(history)], tmp)
    os.replace(tmp, store)
    emit({"seconds": round(time.perf_counter() - t0, 1), **proc_status()})


CHILDREN = {
    "cluster": lambda a: child_cluster(a[0], a[1], int(a[2])),
    "cluster_train": lambda a: child_cluster_train(a[0], a[1], a[2], int(a[3])),
    "ingest": lambda a: child_ingest(a[0], a[1]),
    "generate": lambda a: child_generate(int(a[0]), int(a[1]), a[2]),
    "load": lambda a: child_load(a[0]),
    "features": lambda a: child_features(a[0]),
    "train": lambda a: child_train(a[0], a[1], int(a[2])),
    "serve": lambda a: child_serve(a[0], a[1]),
    "compact": lambda a: child_compact(a[0], a[1]),
    "span": lambda a: child_span(a[0], a[1]),
}


# ---------------------------------------------------------------------------------------------- parent
def run_step(name: str, *args: object) -> dict:
    """Run one step in a child process; its figures plus wall time (from spawn) and load averages."""
    before = load_avg()
    t0 = time.perf_counter()
    # the child's log (progress, Dask's warnings such as a worker restarted) as it runs, beside this one's
    with tempfile.NamedTemporaryFile("w+", prefix=f"bench_scale_{name}_", suffix=".log", delete=False) as err:
        print(f"{name}: running, log in {err.name}", file=sys.stderr, flush=True)
        out = subprocess.run(
            [sys.executable, __file__, "--child", name, *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        err.seek(0)
        stderr = err.read()
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        print(f"{name}: child failed ({out.returncode}): {stderr[-3000:]}", file=sys.stderr, flush=True)
        return {"failed": out.returncode, "stderr_tail": stderr[-1000:]}
    fig = json.loads(out.stdout.strip().splitlines()[-1])
    fig.update(wall_seconds=round(wall, 1), load_before=before, load_after=load_avg())
    print(f"{name}: {json.dumps(fig)}", flush=True)
    return fig


def history_for(n: int, seed: int, history_dir: Path | None, cache: Path) -> tuple[Path, dict | None]:
    """The cached history folder of ``n`` claims (read-only from ``history_dir``), else generated."""
    name = f"history_{n}_s{seed}"
    for d in (history_dir, cache):
        if d is not None and (d / name / "claims.parquet").exists():
            return d / name, None
    cache.mkdir(parents=True, exist_ok=True)
    return cache / name, run_step("generate", n, seed, cache / name)


def store_for(n: int, seed: int, folder: Path, history_dir: Path | None, cache: Path) -> tuple[Path, dict | None]:
    """The cached store ``store_<n>_s<seed>`` of the history (read-only from ``history_dir``), else ingested."""
    name = f"store_{n}_s{seed}"
    for d in (history_dir, cache):
        if d is not None and (d / name / "manifest.sqlite").exists():
            return d / name, None
    cache.mkdir(parents=True, exist_ok=True)
    return cache / name, run_step("ingest", folder, cache / name)


def bench_size(n: int, args: argparse.Namespace) -> dict:
    store_name = f"store_{n}_s{args.seed}"
    given = args.history_dir / store_name if args.history_dir is not None else None
    if args.cluster and args.skip_single and given is not None and (given / "manifest.sqlite").exists():
        # a store generated on the cluster (`recoup generate --cluster`: 10M claims do not fit the single
        # generator): the cluster steps read it, no Parquet history is needed
        folder, generated = given, None
    else:
        folder, generated = history_for(n, args.seed, args.history_dir, args.cache)
    fig: dict = {"claims_asked": n, "history": str(folder)}
    if generated is not None:
        fig["generate"] = generated
    if not (args.skip_single or args.service_only):
        fig["load"] = run_step("load", folder)
        fig["features"] = run_step("features", folder)
    if args.state_span:
        fig["span"] = run_step("span", folder, "1,2,3")
    if args.cluster:
        store, ingested = store_for(n, args.seed, folder, args.history_dir, args.cache)
        fig["store"] = str(store)
        if ingested is not None:
            fig["ingest"] = ingested
        if not args.skip_cluster_table:
            fig["cluster_features"] = run_step("cluster", store, args.cluster, args.months)
        if not args.skip_train:
            with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
                fig["cluster_train"] = run_step(
                    "cluster_train", store, args.cluster, Path(tmp) / "bundle", args.n_estimators
                )
                if "failed" not in fig["cluster_train"]:
                    # the service on the cluster-trained bundle: its compact state built from n claims
                    fig["serve_cluster_bundle"] = run_step("serve", Path(tmp) / "bundle", Path(tmp) / "journal")
    if args.skip_train or args.skip_single:
        return fig
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        bundle = Path(tmp) / "bundle"
        fig["train"] = run_step("train", folder, bundle, args.n_estimators)
        if "failed" not in fig["train"]:
            fig["serve"] = run_step("serve", bundle, Path(tmp) / "journal")
            fig.update(bench_service_compact(Path(tmp), bundle))
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--claims", type=int, nargs="+", default=[1_000_000], help="history sizes in claims, each measured in turn"
    )
    ap.add_argument("--seed", type=int, default=11, help="generator seed of the histories")
    ap.add_argument(
        "--history-dir",
        type=Path,
        default=None,
        help="folder holding cached Parquet histories named history_<claims>_s<seed> (read only)",
    )
    ap.add_argument(
        "--cache",
        type=Path,
        default=ROOT / "work" / "bench",
        help="where histories not found in --history-dir are generated and kept",
    )
    ap.add_argument(
        "--n-estimators", type=int, default=20, help="trees of the likelihood model (cause model: half, >= 10)"
    )
    ap.add_argument("--skip-train", action="store_true", help="only load and feature table (no model, no service)")
    ap.add_argument(
        "--service-only", action="store_true", help="only training and the service (full, then compact state)"
    )
    ap.add_argument(
        "--state-span", action="store_true", help="also the full and compact states of the last 1, 2, 3 years"
    )
    ap.add_argument(
        "--cluster",
        default=None,
        help="also the feature table on this cluster (local[:N] or a scheduler address), from a store of the history",
    )
    ap.add_argument(
        "--skip-cluster-table",
        action="store_true",
        help="with --cluster: no separate feature-table step (the training step builds and times its table)",
    )
    ap.add_argument(
        "--months",
        type=int,
        default=0,
        help="months per partition of the cluster feature table (0: chosen as recoup train chooses, auto_months)",
    )
    ap.add_argument(
        "--skip-single",
        action="store_true",
        help="leave out every single-process step (load, features, training, service)",
    )
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON to this file")
    ap.add_argument("--child", nargs="+", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        import logging

        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        CHILDREN[args.child[0]](args.child[1:])
        return 0
    import numpy as np
    import pandas as pd

    figures: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
            "python": sys.version.split()[0],
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },
        "load_at_start": load_avg(),
        "command": "python bench/bench_scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "n_estimators": args.n_estimators,
        "sizes": [bench_size(n, args) for n in args.claims],
        "load_at_end": load_avg(),
    }
    text = json.dumps(figures, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
