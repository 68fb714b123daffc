"""Security figures of the scoring service: what unknown paths cost, and what the guard costs per request.

1. The real service (`bentoml serve`, one worker, an API key): N GETs of distinct unknown paths; the
   size of `/metrics`, its `endpoint` label values and the worker's RSS before and after.
2. In process: `serving.security.Guard` (key check, Host check, access-log line) around a trivial ASGI
   app against the bare app, per request.

    RECOUP_HOME=work .venv/bin/python bench/bench_security.py --bundle-dir DIR [--unknown 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_service import free_port, start_service, stop  # noqa: E402


def _get(conn: http.client.HTTPConnection, path: str, key: str) -> tuple[int, bytes]:
    conn.request("GET", path, headers={"authorization": f"Bearer {key}"})
    r = conn.getresponse()
    return r.status, r.read()


def _rss_mb(pid: int) -> float:
    import psutil

    return sum(p.memory_info().rss for p in psutil.Process(pid).children(recursive=True)) / 2**20


def unknown_paths(bundle: Path, n: int) -> dict:
    from serving.security import create_key

    tmp = Path(tempfile.mkdtemp(prefix="bench_security_"))
    os.environ["RECOUP_API_KEYS_FILE"] = str(tmp / "api_keys.json")
    key = create_key("bench")
    port = free_port()
    proc, ready = start_service(bundle, port)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        _get(conn, "/model", key)
        m0 = _get(conn, "/metrics", key)[1]
        rss0 = _rss_mb(proc.pid)
        t0 = time.perf_counter()
        statuses = {}
        for i in range(n):
            s, _ = _get(conn, f"/unknown/{i}", key)
            statuses[s] = statuses.get(s, 0) + 1
        took = time.perf_counter() - t0
        t1 = time.perf_counter()
        m1 = _get(conn, "/metrics", key)[1]
        metrics_s = time.perf_counter() - t1
        rss1 = _rss_mb(proc.pid)
    finally:
        stop(proc)
    labels = sorted(set(re.findall(r'endpoint="([^"]*)"', m1.decode())))
    return {
        "unknown_gets": n,
        "statuses": statuses,
        "gets_per_s": round(n / took),
        "metrics_bytes_before": len(m0),
        "metrics_bytes_after": len(m1),
        "metrics_get_s": round(metrics_s, 3),
        "endpoint_labels_after": labels,
        "rss_mb_before": round(rss0, 1),
        "rss_mb_after": round(rss1, 1),
        "start_to_ready_s": round(ready, 1),
    }


def guard_overhead(n: int = 20_000) -> dict:
    from serving.security import Guard, GuardConfig, create_key

    logging.getLogger("recoup.access").addHandler(logging.NullHandler())
    logging.getLogger("recoup.access").propagate = False
    tmp = Path(tempfile.mkdtemp(prefix="bench_guard_"))
    os.environ["RECOUP_API_KEYS_FILE"] = str(tmp / "api_keys.json")
    keys = [create_key(f"k{i}") for i in range(5)]

    async def bare(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard = Guard(bare, {"/model"}, GuardConfig(keys_path=tmp / "api_keys.json"))
    headers = [(b"host", b"127.0.0.1:3000"), (b"authorization", f"Bearer {keys[-1]}".encode())]

    async def noop(_m):
        return None

    async def run(app) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            scope = {
                "type": "http",
                "path": "/model",
                "method": "GET",
                "headers": headers,
                "client": ("127.0.0.1", 5000),
            }
            await app(scope, None, noop)
        return (time.perf_counter() - t0) / n * 1e6

    bare_us = asyncio.run(run(bare))
    guard_us = asyncio.run(run(guard))
    return {
        "requests": n,
        "bare_us": round(bare_us, 2),
        "guarded_us": round(guard_us, 2),
        "guard_us_per_request": round(guard_us - bare_us, 2),
        "keys": len(keys),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle-dir", type=Path, required=True, help="model bundle folder to serve")
    ap.add_argument("--unknown", type=int, default=5000, help="GETs of distinct unknown paths")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = ap.parse_args(argv)
    out = {"guard": guard_overhead(), "unknown_paths": unknown_paths(args.bundle_dir, args.unknown)}
    print(json.dumps(out, indent=2))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
