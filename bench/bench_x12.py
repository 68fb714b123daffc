"""Throughput of the X12 importer: the 624-claim imsweb file, and ~100 MB made by repeating real files.

Usage: ``python bench/bench_x12.py [--mb 100] [--files 4] [--workers 2] [--samples DIR] [--stage all|units|import]``
and ``python bench/bench_x12.py --stage join --claims 200000`` (the 835 join on synthetic frames at scale).

Stage ``units`` (run first, so that the peak RSS printed is its own): the files read for a store
(:func:`features.sources.x12.units.read_x12` without per-unit slices, its frames concatenated), the read-time 835
join (:func:`features.store.remit.apply_remittances`) on all the rows, then
:func:`features.sources.x12.units.units_from_x12` alone (a slice per unit and table).

The large input repeats the sample 837/835 files (tests/data/x12, or /work/shared/x12) with the
claim ids (CLM01, CLP01, PLB WO references) made unique per copy, so that every stage does real
work: tokenizing, mapping, joining 835 payments to 837 claims, building and validating the frames
and writing the CSV directory. It is split over ``--files`` files; ``--workers`` parses files in
parallel processes (the join and validation stay in the parent).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.contract import write_history  # noqa: E402
from features.sources.x12 import importer as x12  # noqa: E402
from features.sources.x12.parsed import Parsed  # noqa: E402
from features.sources.x12.units import read_x12, units_from_x12  # noqa: E402
from features.store.remit import apply_remittances  # noqa: E402

_ID = re.compile(r"((?:^|~)\s*(?:CLM|CLP)\*)([^*~]+)")


def sample_files(root: Path) -> list[Path]:
    """The sample 837/835 files that import cleanly (no repeated multi-transaction file)."""
    keep = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix not in (".md", ".csv") and "multiple_transactions" not in p.name:
            text = p.read_text(errors="replace")
            if text.lstrip().startswith("ISA") and "*:~" in text[:120]:
                keep.append(p)
    return keep


def unique_copy(text: str, k: int) -> str:
    """The text with claim ids suffixed by the copy number."""
    return _ID.sub(lambda m: f"{m.group(1)}{m.group(2)}-{k}", text)


def generate(
    out_dir: Path,
    samples: list[Path],
    megabytes: float,
    n_files: int,
    copy: Callable[[str, int], str] = unique_copy,
    stem: str = "big",
) -> list[Path]:
    """``n_files`` files of ``megabytes`` in all, repeating the samples, each repetition made unique by ``copy``
    (numbered once per sample copy)."""
    texts = [re.sub(r"~\s+", "~", p.read_text()) for p in samples]
    target = int(megabytes * 1_000_000 / n_files)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, k = [], 0
    for i in range(n_files):
        path = out_dir / f"{stem}_{i}.x12"
        size = 0
        with path.open("w") as fh:
            while size < target:
                for t in texts:
                    chunk = copy(t, k)
                    fh.write(chunk)
                    size += len(chunk)
                    k += 1
        paths.append(path)
    return paths


def _parse(path: str) -> Parsed:
    return x12.parse_x12(x12.read_text(Path(path)), path)


def run_parallel(paths: list[Path], workers: int) -> x12.ImportResult:
    """Like :func:`features.sources.x12.importer.import_x12`, parsing files in ``workers`` processes."""
    if workers <= 1:
        return x12.import_x12(paths)
    t0 = time.perf_counter()
    gc.disable()  # unpickling the workers' rows allocates millions of small objects
    try:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_parse, [str(p) for p in paths]))
    finally:
        gc.enable()
    return x12.import_parsed(parts, started=t0)


def run_units(paths: list[Path]) -> None:
    """The fast path a store can take (``read_x12(slices=False)``: one frame per table per file, rows selected by
    ``_unit``), the 835 join on all the rows, then ``units_from_x12`` (a slice per unit and table): times, peak RSS."""
    import pandas as pd

    t = time.perf_counter()
    frames: dict[str, list] = {}
    n_units = n_bad = 0
    for path in paths:
        read = read_x12(path, slices=False)
        n_units += len(read.units)
        n_bad += sum(not u.ok for u in read.units)
        for name, df in read.tables.items():
            frames.setdefault(name, []).append(df)
    tables = {name: pd.concat(dfs, ignore_index=True) for name, dfs in frames.items()}
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    out, counts = apply_remittances(tables)
    t_join = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"read_x12(slices=False) + concat: {n_units} units ({n_bad} with problems) in {t_read:.1f} s; "
        f"apply_remittances {t_join:.1f} s ({len(out['claims'])} claims, {counts['remittances']} CLPs, "
        f"{counts['remittances_waiting']} waiting, {counts['recoupments_added']} recoupments); peak RSS {rss:.0f} MB"
    )
    del frames, tables, out
    t = time.perf_counter()
    n = sum(1 for path in paths for _ in units_from_x12(path))
    print(f"units_from_x12 (a slice per unit and table): {n} units in {time.perf_counter() - t:.1f} s")


def run_join(n: int) -> None:
    """``apply_remittances`` at scale: ``n`` claims of 2 lines, 90% paid (2 SVC each), 5% of them reversed."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    ids = np.array([f"C{i}" for i in range(n)], dtype=object)
    submitted = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    claims = pd.DataFrame({"claim_id": ids, "submitted_date": submitted})
    codes = np.array(["99213", "85025"], dtype=object)
    lines = pd.DataFrame(
        {"claim_id": np.repeat(ids, 2), "line_number": np.tile([1, 2], n), "procedure_code": np.tile(codes, n)}
    )
    paid = rng.choice(n, int(n * 0.9), replace=False)
    back = paid[: n // 20]
    rid = np.array([f"T{i // 50}#{i % 50}" for i in range(len(paid))], dtype=object)
    day = claims["submitted_date"].to_numpy()[paid] + np.timedelta64(20, "D")

    def clps(rows: np.ndarray, status: str, amount: float, dates: np.ndarray, names: np.ndarray) -> pd.DataFrame:
        icn = np.array([f"I{i}" for i in rows], dtype=object)
        return pd.DataFrame(
            {"remittance_id": names, "claim_id": ids[rows], "payer_id": "P", "payer_claim_number": icn}
            | {"status": status, "charge": 150.0 * np.sign(amount), "paid": amount, "remittance_date": dates}
        )

    back_ids = np.array([f"R{i}" for i in range(len(back))], dtype=object)
    back_days = day[: len(back)] + np.timedelta64(60, "D")
    remits = pd.concat([clps(paid, "1", 100.0, day, rid), clps(back, "22", -100.0, back_days, back_ids)])
    svc = pd.DataFrame(
        {
            "remittance_id": np.repeat(rid, 2),
            "claim_id": np.repeat(ids[paid], 2),
            "line_seq": np.tile([1, 2], len(paid)),
        }
        | {"submitted_code": np.tile(codes, len(paid)), "paid": 50.0}
    )
    t = time.perf_counter()
    _, counts = apply_remittances(
        {"claims": claims, "claim_lines": lines, "remittances": remits, "remittance_lines": svc}
    )
    print(
        f"apply_remittances: {n} claims, {len(remits)} CLPs, {len(svc)} SVC: {time.perf_counter() - t:.1f} s "
        f"({counts['recoupments_added']} recoupments)"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    default = Path("/work/shared/x12") if Path("/work/shared/x12").exists() else ROOT / "tests/data/x12"
    ap.add_argument("--samples", type=Path, default=default)
    ap.add_argument("--stage", choices=("all", "units", "import", "join"), default="all")
    ap.add_argument("--claims", type=int, default=200_000, help="claims of the synthetic join (--stage join)")
    args = ap.parse_args(argv)
    if args.stage == "join":
        run_join(args.claims)
        return
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")

    imsweb = args.samples / "imsweb-x12-parser/x12_multiple_transactions.txt"
    if imsweb.exists() and args.stage != "units":
        t = time.perf_counter()
        r = x12.import_x12([imsweb])
        print(
            f"imsweb 624-claim file ({imsweb.stat().st_size / 1e3:.0f} kB): {time.perf_counter() - t:.3f} s, "
            f"{r.summary.claims_read} CLM read"
        )

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        t = time.perf_counter()
        paths = generate(tmp_path, sample_files(args.samples), args.mb, args.files)
        size = sum(p.stat().st_size for p in paths) / 1e6
        print(f"generated {size:.1f} MB in {len(paths)} files in {time.perf_counter() - t:.1f} s")
        if args.stage in ("all", "units"):
            run_units(paths)
        if args.stage == "units":
            return
        for workers in sorted({1, args.workers}):
            t = time.perf_counter()
            result = run_parallel(paths, workers)
            t_import = time.perf_counter() - t
            write_history(result.history, tmp_path / f"out{workers}")
            t_total = time.perf_counter() - t
            s = result.summary
            print(
                f"workers={workers}: import {t_import:.1f} s, import+write CSV {t_total:.1f} s "
                f"({size / t_total:.1f} MB/s): {s.claims} claims, {s.lines} lines, {s.remittances} remittances, "
                f"{s.recoupments} recoupments"
            )


if __name__ == "__main__":
    main()
