"""Writing output files and folders safely; the one place every command's outputs go through.

- :func:`write_file` writes a file under a temporary name in the same folder, fsyncs it and renames it
  over the target (``os.replace``): a reader sees the old file or the new one, never half of one. On
  any ``OSError`` (unwritable folder, full disk, file too large) the temporary file is removed and a
  :class:`~features.errors.RecoupError` names the path and the reason in one line.
- :func:`write_dir` builds an output *folder* (``generate``, ``import-x12``, ``audit``) in a temporary
  sibling folder and swaps it in whole (an atomic exchange where Linux offers one, else two renames),
  so old and new files are never mixed. The folder must be new, empty or the same command's earlier
  output (recognised by the :data:`MARKER` file it writes, listing its files); anything else is
  refused unless ``overwrite``.
- A symbolic link at the output path is refused: recoup never writes through a link to its target.
- :func:`escape_formulas` prefixes text cells that a spreadsheet would run as a formula (OWASP CSV
  injection) in the CSVs meant for people (scores, worklist); :func:`unescape_formulas` reverses it.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import errno
import gzip
import json
import logging
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from features.errors import RecoupError

log = logging.getLogger(__name__)

#: Written last into every output folder: which command wrote it and which files it holds.
MARKER = ".recoup-output.json"
#: A text cell starting with one of these is run as a formula by Excel/LibreOffice (OWASP).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: The escape: a leading apostrophe makes the cell text. Cells already starting with it get one more,
#: so that :func:`unescape_formulas` can undo the escape exactly.
ESCAPE = "'"


# ------------------------------------------------------------------------------------------ errors
def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0]


def write_error(path: Path | str, exc: BaseException) -> RecoupError:
    """The one-line error of a failed write: the path and the operating system's reason."""
    return RecoupError(f"cannot write {path}: {_reason(exc)}")


def refuse_symlink(path: Path) -> None:
    """Raise if ``path`` is a symbolic link (dangling or not): outputs never follow links."""
    if path.is_symlink():
        raise RecoupError(f"{path} is a symbolic link; give the real path (recoup does not write through links)")


# ------------------------------------------------------------------------------------------ files
def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a folder (its entries: a rename into it) to disk, where the file system allows it."""
    with contextlib.suppress(OSError):  # not every file system lets a folder be fsynced
        fsync_path(path)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _absolute(path: Path | str) -> Path:
    return Path(os.path.abspath(path))  # normalised, links not resolved (a link at the end is refused)


def _check_folder(folder: Path) -> None:
    """Raise ``OSError`` when files cannot be created in ``folder`` (or the folders to make above it):
    a part of the path is a file, or the nearest existing folder is not writable."""
    for part in (folder, *folder.parents):
        if part.exists():
            if not part.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{part} is a file, not a folder")
            if not os.access(part, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, f"{part} is not writable")
            return


def _make_folder(folder: Path) -> None:
    """``mkdir -p``, with a clear reason when a part of the path is a file."""
    _check_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)


def check_writable(path: Path) -> None:
    """Before a long run: one line if ``path``'s folder cannot take a new file (as far as can be known
    without writing; a full disk shows only when writing)."""
    try:
        _check_folder(path.parent)
    except OSError as exc:
        raise write_error(path, exc) from None


def write_file(path: Path | str, write: Callable[[Path], object]) -> Path:
    """Write ``path`` atomically: ``write(tmp)`` fills a temporary file of the same folder (same
    extension, so writers that infer compression still do), which is fsynced and renamed over ``path``."""
    path = _absolute(path)
    refuse_symlink(path)
    tmp = path.parent / f".tmp-{secrets.token_hex(4)}-{path.name}"
    try:
        _make_folder(path.parent)
        write(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)  # replaces a link that appeared meanwhile, never its target
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise
    fsync_dir(path.parent)
    return path


def write_text(path: Path | str, text: str) -> Path:
    return write_file(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_csv(path: Path | str, df: pd.DataFrame, *, for_people: bool = False, **kw) -> Path:
    """A CSV; ``for_people`` escapes formula-like text cells (:func:`escape_formulas`) and ends lines with
    CRLF (RFC 4180, what spreadsheets expect; it also makes the writer quote a cell holding a lone CR,
    which it leaves bare with LF line ends)."""
    frame = escape_formulas(df) if for_people else df
    if for_people:
        kw.setdefault("lineterminator", "\r\n")
    return write_file(path, lambda p: frame.to_csv(p, index=False, **kw))


def write_parquet(path: Path | str, df: pd.DataFrame, **kw) -> Path:
    return write_file(path, lambda p: df.to_parquet(p, index=False, **kw))


def check_file_output(path: Path | str, overwrite: bool, is_own: Callable[[Path], bool]) -> None:
    """Before a long run: refuse a link, a folder, or an existing file that ``is_own`` does not
    recognise as the command's earlier output (unless ``overwrite``)."""
    path = _absolute(path)
    refuse_symlink(path)
    check_writable(path)
    if path.is_dir():
        raise RecoupError(f"{path} is a folder; give a file name")
    if path.exists() and not overwrite and not is_own(path):
        raise RecoupError(
            f"{path} exists and is not an earlier output of this command; give a new name, or --overwrite to replace it"
        )


def csv_header(path: Path) -> list[str]:
    """The header row of a CSV (plain or .gz); [] when unreadable."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            return next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error, EOFError):
        return []


def parquet_columns(path: Path) -> list[str]:
    """The column names of a Parquet file; [] when unreadable."""
    try:
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except Exception:  # not a Parquet file at all
        return []


# ------------------------------------------------------------------------------------------ folders
def _read_marker(folder: Path) -> dict | None:
    try:
        m = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or not isinstance(m.get("files"), list):
        return None
    return m


def check_dir_output(out: Path | str, command: str, overwrite: bool) -> Path:
    """Raise unless ``out`` may be replaced by ``command``'s output: it is absent, an empty folder, the
    command's own earlier output (marker present, nothing else added), or ``overwrite`` is given.
    A link and a file are always refused."""
    out = _absolute(out)
    refuse_symlink(out)
    if out.parent == out:
        raise RecoupError(f"{out} cannot be an output folder")
    check_writable(out)
    if not out.exists():
        return out
    if not out.is_dir():
        raise RecoupError(f"{out} is a file, not a folder")
    cwd = Path.cwd().resolve()
    if out.resolve() == cwd or out.resolve() in cwd.parents:
        raise RecoupError(f"{out} is the current folder or holds it; give a folder of its own for the output")
    if overwrite:
        return out
    try:
        entries = sorted(p.name for p in out.iterdir())
    except OSError as exc:
        raise RecoupError(f"cannot read {out}: {_reason(exc)}") from None
    if not entries:
        return out
    marker = _read_marker(out)
    hint = "give a new or empty folder, or --overwrite to replace it whole"
    if marker is None or marker.get("command") != command:
        raise RecoupError(f"{out} is not empty and is not an earlier output of `recoup {command}`; {hint}")
    extra = [e for e in entries if e != MARKER and e not in marker["files"]]
    if extra:
        raise RecoupError(f"{out} holds {extra[0]!r}, which `recoup {command}` did not write; {hint}")
    return out


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False when not supported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(new: Path, out: Path) -> None:
    """Put folder ``new`` at ``out``; the previous folder there (if any) is deleted afterwards."""
    if not os.path.lexists(out):
        os.rename(new, out)
        return
    if _exchange(new, out):
        old = new  # the exchange left the previous folder under the temporary name
    else:  # two renames: between them ``out`` is briefly absent (old and new are kept whole)
        old = out.parent / f".{out.name}.old-{secrets.token_hex(4)}"
        os.rename(out, old)
        os.rename(new, out)
    _remove(old)
    if os.path.lexists(old):
        log.warning("the new output is in place, but the previous one could not be deleted: %s", old)


def write_dir(
    out: Path | str,
    command: str,
    build: Callable[[Path], object],
    *,
    overwrite: bool = False,
    files: Iterable[str] | None = None,
) -> Path:
    """Build ``command``'s output folder with ``build(tmp)`` (which writes its files into ``tmp``) and
    swap it in whole at ``out``; on any failure the temporary folder is removed and ``out`` is as before."""
    out = check_dir_output(out, command, overwrite)
    tmp = out.parent / f".{out.name}.tmp-{secrets.token_hex(4)}"
    try:
        _make_folder(out.parent)
        os.mkdir(tmp)
        build(tmp)
        names = sorted(files) if files is not None else sorted(p.name for p in tmp.iterdir())
        write_text(tmp / MARKER, json.dumps({"command": command, "files": names, "format": 1}, indent=1) + "\n")
        fsync_dir(tmp)
        check_dir_output(out, command, overwrite)  # again: the folder may have changed during the run
        _swap_in(tmp, out)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError):
            raise write_error(out, exc) from None
        if type(exc) is RecoupError and str(tmp) in str(exc):  # a file's write error: name its final path
            raise RecoupError(str(exc).replace(str(tmp), str(out))) from None
        raise
    fsync_dir(out.parent)
    return out


# ------------------------------------------------------------------------------------------ CSV injection
def _escape_value(v):
    # also after leading blanks: some spreadsheets drop them on import and read " =1+1" as a formula
    if isinstance(v, str) and (
        v.startswith(FORMULA_START + (ESCAPE,)) or v.lstrip(" \t\r\n").startswith(FORMULA_START)
    ):
        return ESCAPE + v
    return v


def _unescape_value(v):
    if isinstance(v, str) and v.startswith(ESCAPE):
        return v[1:]
    return v


def _text_columns(df: pd.DataFrame) -> list:
    return [c for c in df.columns if df[c].dtype == object or pd.api.types.is_string_dtype(df[c].dtype)]


def escape_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells starting with ``= + - @``, tab or carriage return (also after leading blanks, or
    the escape itself) get a leading ``'``; numeric columns are left as numbers (a negative amount is not a formula)."""
    out = df.copy()
    for c in _text_columns(out):
        out[c] = out[c].map(_escape_value, na_action="ignore")
    return out


def unescape_formulas(df: pd.DataFrame, columns: Iterable | None = None) -> pd.DataFrame:
    """Undo :func:`escape_formulas` on the text columns (or ``columns``) of a frame read back."""
    out = df.copy()
    for c in list(columns) if columns is not None else _text_columns(out):
        if c in out.columns:
            out[c] = out[c].map(_unescape_value, na_action="ignore")
    return out
