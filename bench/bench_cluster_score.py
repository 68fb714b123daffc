"""Benchmark (#15): generation in partitions and batch scoring on a Dask LocalCluster vs one process.

    python bench/bench_cluster_score.py generate --claims 1000000 [--workers 2] [--seed 7] [--skip-single]
    python bench/bench_cluster_score.py score --claims 200000 [--workers 2] [--train-claims 30000]

Each measurement runs in a fresh subprocess, so its peak RSS (``resource.getrusage``) is its own; with the cluster
the driver's peak and each worker's peak (``client.run`` at the end) are reported. ``generate``: one process =
``generate_history`` + Parquet tables + oracle (what ``recoup generate --format parquet`` does), and the same plus
``recoup ingest`` into a store (the cluster's output); cluster =
``recoup generate --cluster local:N`` (shards + ingest into a store). ``score``: a store of ``--claims`` generated
on the cluster and a small model (trained in this process on ``--train-claims``, few trees) are prepared untimed,
then ``recoup score --explain top:1000`` in one process and with ``--cluster local:N``; the outputs are compared.
The load average is printed with each line. ``BENCH_NO_MALLOC_TRIM=1``: workers started without Dask's
``MALLOC_TRIM_THRESHOLD_=65536`` (which makes numpy-heavy tasks ~2.5x slower here: docs/scale.md). Scratch goes
under work/bench_cluster (removed at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCRATCH = ROOT / "work" / "bench_cluster"


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)


def _worker_peaks(client) -> list[float]:
    got = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return sorted(round(v, 0) for v in got.values())


def _local(workers: int):
    import dask
    from distributed import Client, LocalCluster

    if os.environ.get("BENCH_NO_MALLOC_TRIM"):  # workers without Dask's MALLOC_TRIM_THRESHOLD_=65536 (docs/scale.md)
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})

    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        local_directory=str(SCRATCH / "dask"),
        silence_logs=40,
    )
    return cluster, Client(cluster)


# ---------------------------------------------------------------------------------------------- one measurement
def gen_single(n: int, seed: int) -> dict:
    from features.contract import write_history
    from features.sources.synthetic.generate import GeneratorConfig, generate_history

    t0 = time.perf_counter()
    history, oracle = generate_history(GeneratorConfig(n_claims=n, seed=seed))
    out = SCRATCH / "single"
    write_history(history, out, fmt="parquet")
    oracle.to_parquet(out / "oracle.parquet")
    return {"seconds": round(time.perf_counter() - t0, 1), "driver_rss_mb": _rss_mb()}


def gen_single_store(n: int, seed: int) -> dict:
    """One process, the same output as the cluster's: the history into a store (generate, Parquet, ``ingest``)."""
    from features.store.ingest import ingest

    r = gen_single(n, seed)
    t0 = time.perf_counter()
    ingest([SCRATCH / "single"], SCRATCH / "single_store", workers=1)
    r["ingest_s"] = round(time.perf_counter() - t0, 1)
    r["seconds"] = round(r["seconds"] + r["ingest_s"], 1)
    r["driver_rss_mb"] = _rss_mb()
    return r


def gen_cluster(n: int, seed: int, workers: int, out: Path | None = None) -> dict:
    from features.sources.synthetic.partitioned import generate_partitioned, shard_count

    cluster, client = _local(workers)
    try:
        t0 = time.perf_counter()
        text = generate_partitioned(client, out or SCRATCH / "store", n, seed=seed, overwrite=True, progress=False)
        secs = time.perf_counter() - t0
        peaks = _worker_peaks(client)
    finally:
        client.close()
        cluster.close()
    return {
        "seconds": round(secs, 1),
        "shards": shard_count(n),
        "driver_rss_mb": _rss_mb(),
        "worker_rss_mb": peaks,
        "tasks": text.splitlines()[0].split("(", 1)[1].rstrip(")"),
    }


def prepare_score(n: int, train_claims: int, seed: int, workers: int) -> dict:
    """A store of ``n`` claims (cluster) and a small bundle saved under the scratch folder."""
    from features.sources.synthetic.generate import GeneratorConfig, generate_history
    from training.config import load_config
    from training.train import train_model

    gen = gen_cluster(n, seed, workers, SCRATCH / "store")
    cfg = load_config(overrides={})
    cfg["likelihood"]["n_estimators"] = 60
    cfg["cause"]["n_estimators"] = 30
    history, _ = generate_history(GeneratorConfig(n_claims=train_claims, seed=seed + 1))
    result = train_model(history, config=cfg)
    result.bundle.save(SCRATCH / "bundle")
    return {"generate": gen}


def score_run(n: int, workers: int, cluster: bool) -> dict:
    from serving.batch import score_cli

    out = SCRATCH / ("score_cluster.parquet" if cluster else "score_single.parquet")
    t0 = time.perf_counter()
    if cluster:
        c, client = _local(workers)
        try:
            score_cli(
                SCRATCH / "store",
                out,
                explain="top:1000",
                bundle_dir=SCRATCH / "bundle",
                overwrite=True,
                cluster=client.scheduler.address,
            )
            secs = time.perf_counter() - t0
            peaks = _worker_peaks(client)
        finally:
            client.close()
            c.close()
        return {"seconds": round(secs, 1), "driver_rss_mb": _rss_mb(), "worker_rss_mb": peaks}
    score_cli(SCRATCH / "store", out, explain="top:1000", bundle_dir=SCRATCH / "bundle", overwrite=True)
    return {"seconds": round(time.perf_counter() - t0, 1), "driver_rss_mb": _rss_mb()}


# ---------------------------------------------------------------------------------------------- driver
def _sub(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, __file__, "generate", "--one", *args]  # "generate": the positional, unused with --one
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _load() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["generate", "score"])
    ap.add_argument("--claims", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--train-claims", type=int, default=30_000)
    ap.add_argument("--skip-single", action="store_true", help="only the cluster (sizes one process cannot do)")
    ap.add_argument("--one", nargs="*", help=argparse.SUPPRESS)  # internal: one measurement, print JSON
    args = ap.parse_args(argv)
    if args.one is not None:
        kind, n = args.one[0], int(args.one[1])
        fn = {
            "gen_single": lambda: gen_single(n, args.seed),
            "gen_single_store": lambda: gen_single_store(n, args.seed),
            "gen_cluster": lambda: gen_cluster(n, args.seed, args.workers),
            "prepare": lambda: prepare_score(n, args.train_claims, args.seed, args.workers),
            "score_single": lambda: score_run(n, args.workers, False),
            "score_cluster": lambda: score_run(n, args.workers, True),
        }[kind]
        print(json.dumps(fn()))
        return
    SCRATCH.mkdir(parents=True, exist_ok=True)
    common = ["--workers", str(args.workers), "--seed", str(args.seed), "--train-claims", str(args.train_claims)]
    try:
        for n in args.claims:
            if args.what == "generate":
                runs = ([] if args.skip_single else ["gen_single", "gen_single_store"]) + ["gen_cluster"]
            else:
                print(f"{n:,} claims: prepared {_sub('prepare', str(n), *common)} ({_load()})", flush=True)
                runs = ([] if args.skip_single else ["score_single"]) + ["score_cluster"]
            for kind in runs:
                pre = _load()
                r = _sub(kind, str(n), *common)
                print(f"{args.what} {n:,} claims, {kind}: {json.dumps(r)} ({pre} before)", flush=True)
            if args.what == "score" and not args.skip_single:
                import pandas as pd

                a = pd.read_parquet(SCRATCH / "score_single.parquet")
                b = pd.read_parquet(SCRATCH / "score_cluster.parquet")
                print(f"  outputs identical: {a.equals(b)}", flush=True)
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main()
