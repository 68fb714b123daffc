"""Ingesting ~100 MB of mixed 837/835 into a new store, then the same files again (all already ingested).

Usage: ``python bench/bench_ingest.py [--mb 100] [--files 4] [--repeats 3] [--samples DIR] [--workdir work/bench]``

The input repeats the sample 837/835 files (tests/data/x12, or /work/shared/x12 when present; the files
``bench/bench_x12.py`` uses) with, per copy, the control numbers (ISA13/IEA02, GS06/GE02, ST02/SE02), the 835 trace
numbers (TRN02) and the claim ids (CLM01, CLP01) made unique, so that every transaction is a new one for the store.
Each run is ``features.store.ingest.ingest_cli`` (what ``recoup ingest`` runs) in a child process, with 1 or 2
parsing processes (``--workers 1,2``: interleaved): its wall time and its peak
RSS (the process and its parsing workers together, sampled from /proc); runs alternate (new store, then the same
files again) ``--repeats`` times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_x12 import generate, sample_files  # noqa: E402


def unique_copy(text: str, k: int) -> str:
    """``text`` (segments ended by ``~``, elements by ``*``) with control numbers, TRN02 and claim ids of copy ``k``."""
    out = []
    for seg in text.split("~"):
        el = seg.split("*")
        tag = el[0].strip()
        if tag == "ISA" and len(el) > 13:
            el[13] = f"{k:09d}"
        elif tag == "IEA" and len(el) > 2:
            el[2] = f"{k:09d}"
        elif tag in ("GS", "GE") and len(el) > (6 if tag == "GS" else 2):
            el[6 if tag == "GS" else 2] = str(k + 1)
        elif tag in ("ST", "SE") and len(el) > 2:
            el[2] = f"{k + 1:04d}"
        elif tag in ("CLM", "CLP") and len(el) > 1:
            el[1] = f"{el[1]}-{k}"
        elif tag == "TRN" and len(el) > 2:
            el[2] = f"{el[2]}-{k}"
        out.append("*".join(el))
    return "~".join(out)


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants (MB), from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total / 1e6


def run(paths: list[Path], store: Path, workers: int) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB of the process and its workers together, stdout) of one ``recoup ingest`` in a
    child process (RSS sampled every 50 ms from /proc; the process's own peak from ``wait4`` bounds it below)."""
    import threading

    code = (
        "import logging, sys; from features.store.ingest import ingest_cli; logging.basicConfig(level='INFO'); "
        f"ingest_cli(sys.argv[1:], {str(store)!r}, workers={workers})"
    )
    cmd = [sys.executable, "-c", code, *map(str, paths)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed ({proc.returncode}):\n{out}")
    return seconds, max(peak[0], usage.ru_maxrss * 1024 / 1e6), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0, help="size of the input in MB")
    ap.add_argument("--files", type=int, default=4, help="number of input files")
    ap.add_argument("--repeats", type=int, default=3, help="new-store + re-ingest pairs")
    ap.add_argument("--workers", default="1,2", help="parsing processes to compare, comma-separated (interleaved)")
    default = Path("/work/shared/x12") if Path("/work/shared/x12").exists() else ROOT / "tests/data/x12"
    ap.add_argument("--samples", type=Path, default=default, help="folder of sample X12 files")
    ap.add_argument("--workdir", type=Path, default=ROOT / "work" / "bench", help="where input and stores go")
    args = ap.parse_args()
    data = args.workdir / f"ingest_{args.mb:g}mb_{args.files}"
    paths = sorted(data.glob("mixed_*.x12")) if data.is_dir() else []
    if len(paths) != args.files:
        shutil.rmtree(data, ignore_errors=True)
        paths = generate(data, sample_files(args.samples), args.mb, args.files, copy=unique_copy, stem="mixed")
    size = sum(p.stat().st_size for p in paths) / 1e6
    print(f"input: {size:.1f} MB in {len(paths)} files ({data}); load average {os.getloadavg()}")
    store = args.workdir / "ingest_store"
    for r in range(args.repeats):
        for workers in [int(w) for w in args.workers.split(",")]:
            shutil.rmtree(store, ignore_errors=True)
            t1, m1, out = run(paths, store, workers)
            t2, m2, out2 = run(paths, store, workers)
            if r == 0:
                print(out.strip() + "\n" + out2.strip())
            print(
                f"run {r + 1}, {workers} worker(s): new store {t1:.1f} s, peak RSS {m1:.0f} MB; again (all already "
                f"ingested) {t2:.1f} s, peak RSS {m2:.0f} MB; load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
