"""Input files -> :class:`~features.store.unit.Unit`: expanding paths (files, folders, globs), telling an X12 file
from a contract table file by content and name, and reading a file's units: an X12 file's transactions
(:mod:`features.sources.x12.units`) or a contract table file as one unit. This module is the store's source dispatch:
like a command, it is wiring allowed to import ``features.sources`` (tests/recoup/test_layout.py)."""

from __future__ import annotations

import glob
import hashlib
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generator

import numpy as np
import pandas as pd

from features.contract.schema import DUPLICATE_CLAIM_ID, DUPLICATE_LINE_NUMBER, DUPLICATE_NPI, Problem
from features.store.unit import CONTRACT_TABLES, Unit

#: bytes read to tell an X12 file by its start
SNIFF_BYTES = 4096
BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
#: the order of kinds in one ingest: claims first, so that lines and recoupments of the same ingest find them
KIND_ORDER = {"claims": 0, "x12": 1, "claim_lines": 2}


@dataclass(frozen=True)
class InputFile:
    path: Path
    kind: str  # "x12" or a contract table name
    sha256: str
    size: int


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_x12(path: Path) -> bool:
    """An X12 file: starts with ``ISA`` (after a byte order mark and blanks; UTF-16 read without its zero bytes)."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    for bom in BOMS:
        if head.startswith(bom):
            head = head[len(bom) :]
            break
    return head.replace(b"\x00", b"").lstrip().upper().startswith(b"ISA")


def table_of(path: Path) -> str | None:
    """The contract table a file holds by its name (``claims.csv``, ``claim_lines.parquet``, ``coverage.csv.gz``)."""
    name = path.name.lower()
    for ext in (".csv.gz", ".csv", ".parquet"):
        if name.endswith(ext) and name[: -len(ext)] in CONTRACT_TABLES:
            return name[: -len(ext)]
    return None


def expand(paths: list[str | Path]) -> tuple[list[Path], list[str], dict[str, int]]:
    """(files, problems, skipped by reason). Folders are read recursively (hidden entries skipped); a path with
    ``*?[`` is a glob; a path that does not exist (or a glob matching nothing) is a problem naming it."""
    files: list[Path] = []
    problems: list[str] = []
    skipped: dict[str, int] = {}
    for raw in paths:
        text = str(raw)
        if any(ch in text for ch in "*?[") and not os.path.exists(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                problems.append(f"{text}: no file matches this pattern")
            candidates = [Path(m) for m in matches]
        else:
            candidates = [Path(text)]
        for p in candidates:
            if p.is_dir():
                for root, dirs, names in os.walk(p):
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    for name in sorted(names):
                        if name.startswith("."):
                            skipped["hidden files in folders"] = skipped.get("hidden files in folders", 0) + 1
                            continue
                        if not (Path(root) / name).is_file():  # a FIFO, a device, a dangling link: never read
                            skipped["not regular files in folders"] = skipped.get("not regular files in folders", 0) + 1
                            continue
                        files.append(Path(root) / name)
            elif p.is_file():
                files.append(p)
            elif p.exists() or p.is_symlink():
                problems.append(f"{p}: not a regular file or folder")
            else:
                problems.append(f"{p}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, problems, skipped


def classify(files: list[Path], given: set[Path]) -> tuple[list[InputFile], list[str], dict[str, int]]:
    """Input files in ingest order (claims, X12, claim_lines, the rest; by path within a kind), problems and
    skipped counts. A file found in a folder that is neither X12 nor a contract table is skipped (counted); one
    named on the command line is a problem."""
    out: list[InputFile] = []
    problems: list[str] = []
    skipped: dict[str, int] = {}
    for f in files:
        try:
            kind = table_of(f) or ("x12" if is_x12(f) else None)
            if kind is None:
                if f in given:
                    problems.append(
                        f"{f}: expected an X12 837/835 file (starting with ISA) or a contract table file "
                        f"({', '.join(CONTRACT_TABLES)} as .csv, .csv.gz or .parquet)"
                    )
                else:
                    reason = "files in folders that are neither X12 nor a contract table"
                    skipped[reason] = skipped.get(reason, 0) + 1
                continue
            out.append(InputFile(f, kind, sha256_of(f), f.stat().st_size))
        except OSError as exc:
            problems.append(f"{f}: cannot read the file ({exc.strerror or exc})")
    out.sort(key=lambda i: (KIND_ORDER.get(i.kind, 3), str(i.path)))
    return out, problems, skipped


@dataclass
class FileUnits:
    """The units of one input file and their rows: ONE frame per store table for the whole file, with a column
    ``_n`` (the row's unit: its position in ``units``). A frame per table for the whole file, not per unit: an X12
    file may hold tens of thousands of tiny transactions, and per-unit frames cost more than reading them."""

    units: list[Unit]
    tables: dict[str, pd.DataFrame]


#: the contract's rules across rows that a store applies per claim version instead (rows of several units of one
#: file may repeat a claim, its lines or a provider: versions, "already present" and latest-per-NPI decide)
CROSS_UNIT_RULES = (DUPLICATE_CLAIM_ID, DUPLICATE_LINE_NUMBER, DUPLICATE_NPI)
#: the contract tables an X12 unit holds, typed by the contract's checks before the store decides on them
X12_CONTRACT_TABLES = ("claims", "claim_lines", "providers")


def table_units(f: InputFile) -> FileUnits:
    """One contract table file as one unit (key ``table:<name>:<sha256>``); rows typed by the contract's checks, each
    problem one line naming the file, rows and column."""
    from features.contract import read_table_file

    unit = Unit(key=f"table:{f.kind}:{f.sha256}", kind=f.kind, source=str(f.path))
    try:
        raw = read_table_file(f.path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is this file's problem
        unit.problems.append(f"{f.path}: expected a readable CSV/Parquet file ({type(exc).__name__}: {exc})")
        return FileUnits([unit], {})
    typed, problems = _typed(raw, f.kind, str(f.path))
    unit.problems.extend(replace(p, examples=[]).describe() for p in problems)  # rows named, values never (ids)
    typed = typed.reset_index(drop=True)
    typed["_n"] = np.zeros(len(typed), dtype=np.int64)
    return FileUnits([unit], {f.kind: typed})


def _typed(raw: pd.DataFrame, table: str, source: str) -> tuple[pd.DataFrame, list[Problem]]:
    from features.contract import validate_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        typed, problems, _ = validate_table(raw, table, source)
    return typed, problems


def x12_units(f: InputFile) -> FileUnits:
    """The units of an X12 file (one per ST..SE transaction, :func:`features.sources.x12.units.read_x12` without
    per-unit slices); its 837 rows typed by the contract's checks, a problem of a row becoming a problem of its unit
    (file, the transaction's ST segment, column, what was expected)."""
    from features.sources.x12.units import read_x12

    read = read_x12(f.path, slices=False)
    tables: dict[str, pd.DataFrame] = {}
    for name, frame in read.tables.items():
        if not len(frame):
            continue
        n = np.empty(len(frame), dtype=np.int64)
        for i, span in enumerate(read.spans):
            if name in span:
                a, b = span[name]
                n[a:b] = i
        frame = frame.drop(columns="_unit")
        if name in X12_CONTRACT_TABLES:
            frame, problems = _typed(frame, name, str(f.path))
            for p in problems:
                if p.expected in CROSS_UNIT_RULES:
                    continue
                rows = np.asarray(p.rows, dtype=np.int64) - 1
                for i, k in pd.Series(n[rows]).value_counts(sort=False).items():
                    unit = read.units[int(i)]
                    unit.problems.append(
                        f"{unit.source}: segment {unit.segment} ({unit.kind} transaction): {k} row(s) of {name}: "
                        f"column '{p.column}': expected {p.expected}"
                    )
        frame = frame.reset_index(drop=True)
        frame["_n"] = n
        tables[name] = frame
    return FileUnits(read.units, tables)


def units_of(f: InputFile) -> FileUnits:
    """The units of one input file: an X12 file's transactions, or a contract table file as one unit."""
    return x12_units(f) if f.kind == "x12" else table_units(f)


#: X12 bytes from which files are parsed in worker processes (below, spawning them costs more than it saves)
PARALLEL_MIN_BYTES = 8_000_000
#: processes that parse X12 files by default: 1 (2 were slower and doubled the memory on the 2-core box measured:
#: docs/store.md "Figures")
WORKERS = 1


def read_files(files: list[InputFile], workers: int = WORKERS) -> Generator[FileUnits, None, None]:
    """The units of each file, in order. When the X12 files are large, they are parsed in ``workers`` processes
    (spawned: they inherit no file descriptor, so not the store's lock), ``workers`` files at a time while the
    caller which decides on and stages one file while the next ones are parsed."""
    x12_bytes = sum(f.size for f in files if f.kind == "x12")
    if workers < 2 or x12_bytes < PARALLEL_MIN_BYTES or sum(f.kind == "x12" for f in files) < 2:
        for f in files:
            yield units_of(f)
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        ahead: deque[Future] = deque()
        todo = iter(files)
        for f in todo:
            ahead.append(pool.submit(units_of, f))
            if len(ahead) >= workers:
                break
        while ahead:
            result = ahead.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                ahead.append(pool.submit(units_of, nxt))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
