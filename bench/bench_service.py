"""Latency and throughput of the scoring service over loopback HTTP, against the same scorer in process.

Usage::

    RECOUP_HOME=work python bench/bench_service.py --data DIR [--bundle-dir BUNDLE] [--single 300]
        [--batches 20] [--workers 1] [--clients 2] [--no-record] [--out bench_service.json]

It starts the real service (``bentoml serve serving.service:RecoupService``, ``--workers`` processes) on a free
127.0.0.1 port with ``RECOUP_BUNDLE_DIR`` = the bundle (default: the champion in the BentoML store /
MLflow, as the service would load it), waits for ``/readyz`` and measures, at one client with
keep-alive (``http.client``; request bodies are encoded before the clock starts and each timing ends
when the whole response body is read; responses are parsed and checked outside the clock, as a load
generator such as wrk does, so the client's own JSON work is not counted as the service's):

- ``/score`` with reasons: per-request latency p50 / p99 (ms);
- ``/score_batch`` with 100-claim requests: claims/s with and without reasons, at one client and
  (``--clients N``, default 2) with N connections sending at once (``*_N_clients``);
- the same claims through ``Scorer.score_claims`` in process (claims -> typed frames included), and
  the ratio service / in-process (in process on the same state as the service: with the single claims
  recorded; ``*_fresh_state``: on the bundle's state as loaded).

The batch claims are the last 100 claims of ``--data``, renamed and moved after the end of the history
(new claims), sent with ``"record": false``. The single-claim requests are ``--single`` other recent
claims, each sent once, with ``"record": true`` (as in production: they join the history; ``--no-record``
for what-if scoring); the in-process single-claim figures record into their own copy of the state.
Without ``--data`` a small synthetic history (tests.helpers.data) is used.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def new_claims(history, n: int, tag: str = "BENCH", skip: int = 0) -> list[dict]:
    """``n`` recent claims of the history (before the last ``skip``) as CLAIM dicts, renamed ``TAG-i`` and
    moved 30 days after its end (new claims)."""
    from tests.helpers.claims import recent_claims

    return recent_claims(history, n, tag, 30, skip)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(bundle: Path, port: int, workers: int = 1) -> tuple[subprocess.Popen, float]:
    import httpx

    from serving.serve import bentoml_command, service_env

    # a fresh journal folder: claims recorded by an earlier run would make this run's claims retries
    journal = tempfile.mkdtemp(prefix="recoup_bench_journal_")
    env = {
        **service_env(),
        "RECOUP_BUNDLE_DIR": str(bundle),
        "RECOUP_SERVICE_WORKERS": str(workers),
        "RECOUP_JOURNAL_DIR": journal,
    }
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        bentoml_command(port, "127.0.0.1"),
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc.journal_dir = journal  # type: ignore[attr-defined]  # removed by stop()
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with code {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                ready = time.perf_counter() - t0
                if workers > 1:  # /readyz answers once one worker is up; the others start as long
                    time.sleep(min(ready, 20))
                return proc, ready
        except httpx.HTTPError:
            pass
        if time.perf_counter() - t0 > 120:
            stop(proc)
            raise SystemExit("the service did not get ready in 120 s")
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    pgid = os.getpgid(proc.pid)
    os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        proc.wait()
    shutil.rmtree(getattr(proc, "journal_dir", ""), ignore_errors=True)


def encode(body: dict) -> bytes:
    return json.dumps(body).encode()


def post(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, bytes]:
    """One POST on the kept-alive connection: the status and the whole response body."""
    conn.request("POST", path, body=body, headers={"content-type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read()


def check(answer: tuple[int, bytes]):
    status, data = answer
    if status != 200:
        raise SystemExit(f"the service answered {status}: {data[:300]!r}")
    return json.loads(data)


def concurrent_batches(port: int, body: bytes, clients: int, per_client: int, n_claims: int, pool: int = 4) -> float:
    """Claims/s with ``clients`` threads each sending ``per_client`` batch requests back to back, each
    over its own ``pool`` kept-alive connections in turn (as a client with a connection pool does).

    With several service workers the kernel hands each new connection to one worker, so a single
    connection per client would pin clients to workers at random; a pool spreads each client's
    requests over the workers."""
    import threading

    conns = [[http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(pool)] for _ in range(clients)]
    for mine in conns:
        for c in mine:
            check(post(c, "/score_batch", body))
    answers: list[tuple[int, bytes]] = []
    go = threading.Barrier(clients + 1)

    def run(mine: list[http.client.HTTPConnection]) -> None:
        go.wait()
        for i in range(per_client):
            answers.append(post(mine[i % len(mine)], "/score_batch", body))

    threads = [threading.Thread(target=run, args=(mine,)) for mine in conns]
    for th in threads:
        th.start()
    go.wait()
    t = time.perf_counter()
    for th in threads:
        th.join()
    el = time.perf_counter() - t
    for a in answers:
        assert len(check(a)) == n_claims
    for mine in conns:
        for c in mine:
            c.close()
    return clients * per_client * n_claims / el


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="claims history directory (default: a small synthetic one)")
    ap.add_argument("--bundle-dir", type=Path, help="model bundle (default: the champion, as the service loads it)")
    ap.add_argument("--single", type=int, default=300, help="single-claim requests to time")
    ap.add_argument("--batches", type=int, default=20, help="100-claim requests per mode")
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="service worker processes (RECOUP_SERVICE_WORKERS; several share recorded claims)",
    )
    ap.add_argument(
        "--clients",
        type=int,
        default=2,
        help="also time batches with this many concurrent connections (1: only one client)",
    )
    ap.add_argument(
        "--no-record",
        action="store_true",
        help="single-claim requests with record: false (default: record on, as in production)",
    )
    ap.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = ap.parse_args(argv)

    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    from serving import model_store
    from serving.schemas import Claim, claims_to_frames
    from serving.scorer import Scorer

    bundle = args.bundle_dir or model_store.resolve_model().path
    if args.data:
        from features.contract import load_history

        history = load_history(args.data)
    else:
        from tests.helpers.data import small_history

        history = small_history()[0]
    claims = new_claims(history, 100)  # the batch claims (record: false)
    # distinct earlier claims for the single-claim test, each sent once (with record on by default they
    # join the history, as in production; they are not among the batch claims)
    singles = new_claims(history, args.single + 20, "SINGLE", skip=len(claims))
    record = not args.no_record
    res: dict = {
        "cores": os.cpu_count(),
        "load_avg_before": os.getloadavg()[0],
        "bundle": str(bundle),
        "single_record": record,
        "workers": args.workers,
        "clients": args.clients,
    }

    # ---------------------------------------------------------------- in process
    scorer = Scorer.from_dir(bundle)

    def in_process(sc: Scorer, batch: list[dict], explain: bool, rec: bool = False) -> list[dict]:
        conv = claims_to_frames([Claim.model_validate(c) for c in batch])
        return sc.score_claims(conv.claims, conv.lines, explain=explain, record=rec)

    for _ in range(3):
        in_process(scorer, claims[:1], True)
        in_process(scorer, claims, True)
    single_scorer = Scorer.from_dir(bundle)  # its own state: the single claims are recorded into it
    for sc in (scorer, single_scorer):
        sc.warm_up()
    import gc

    gc.collect()
    gc.freeze()  # as the service does after loading
    for c in singles[:20]:
        in_process(single_scorer, [c], True, record)
    lat = []
    for c in singles[20:]:
        t = time.perf_counter()
        in_process(single_scorer, [c], True, record)
        lat.append((time.perf_counter() - t) * 1000)
    res["inprocess_single_ms_p50"], res["inprocess_single_ms_p99"] = pct(lat, 50), pct(lat, 99)
    # batches in process: on the fresh state, and on the state with the single claims recorded (what the
    # service has when its batches are timed; the ratio service / in process uses the latter)
    for sc, tag in ((scorer, "_fresh_state"), (single_scorer, "")):
        for explain in (True, False):
            t = time.perf_counter()
            for _ in range(max(3, args.batches // 2)):
                in_process(sc, claims, explain)
            res[f"inprocess_batch_claims_per_s_{'reasons' if explain else 'no_reasons'}{tag}"] = (
                max(3, args.batches // 2) * len(claims) / (time.perf_counter() - t)
            )

    # ---------------------------------------------------------------- over HTTP
    port = free_port()
    proc, start_s = start_service(bundle, port, args.workers)
    res["service_start_s"] = start_s
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for c in singles[:20]:
            check(post(conn, "/score", encode({"claim": c, "record": record})))
        bodies = [encode({"claim": c, "record": record}) for c in singles[20:]]
        lat, answers = [], []
        for body in bodies:
            t = time.perf_counter()
            answers.append(post(conn, "/score", body))
            lat.append((time.perf_counter() - t) * 1000)
        for a in answers:
            assert check(a)["reasons"]
        res["single_ms_p50"], res["single_ms_p99"] = pct(lat, 50), pct(lat, 99)
        res["single_ms_mean"] = statistics.fmean(lat)
        for explain in (True, False):
            conn.close()  # a new connection per mode (the server closes idle ones after a few seconds)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            body = encode({"claims": claims, "record": False, "explain": explain})
            check(post(conn, "/score_batch", body))
            answers = []
            t = time.perf_counter()
            for _ in range(args.batches):
                answers.append(post(conn, "/score_batch", body))
            el = time.perf_counter() - t
            for a in answers:
                out = check(a)
                assert len(out) == len(claims) and all("error" not in o for o in out)
                assert all(bool(o["reasons"]) == explain for o in out)
            key = "reasons" if explain else "no_reasons"
            res[f"batch_claims_per_s_{key}"] = args.batches * len(claims) / el
            res[f"ratio_batch_{key}"] = res[f"batch_claims_per_s_{key}"] / res[f"inprocess_batch_claims_per_s_{key}"]
            if args.clients > 1:
                res[f"batch_claims_per_s_{key}_{args.clients}_clients"] = concurrent_batches(
                    port, body, args.clients, args.batches, len(claims)
                )
        res["ratio_single_p50"] = res["inprocess_single_ms_p50"] / res["single_ms_p50"]
        conn.close()
    finally:
        stop(proc)
    res["load_avg_after"] = os.getloadavg()[0]
    res["targets"] = {
        "single_ms_p50": "<= 8",
        "single_ms_p99": "<= 20",
        "batch_claims_per_s_reasons": ">= 2000",
        "batch_claims_per_s_no_reasons": ">= 10000",
        "ratio_batch": "> 0.6",
    }
    text = json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()}, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return res


if __name__ == "__main__":
    main()
