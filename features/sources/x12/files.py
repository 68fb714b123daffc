"""X12 files on disk: :func:`expand_paths` (files, folders searched recursively, globs) and :func:`read_text` (bytes
decoded whatever their encoding: UTF-8 with or without BOM, UTF-16 LE/BE with or without BOM, Latin-1). Every
problem is one line naming the path."""

from __future__ import annotations

import codecs
import glob
import os
import stat
from pathlib import Path
from typing import Iterable

from features.errors import RecoupError

#: the largest X12 file read (the whole file is held in memory; interchanges are far smaller in practice)
MAX_FILE_BYTES = 2 * 1024**3
#: how many leading bytes decide the encoding of a file without a byte order mark
SNIFF_BYTES = 4096
_GLOB_CHARS = set("*?[")


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """Files named by ``paths``: a file as given, a folder's files (recursively, sorted, hidden files and folders
    skipped), a glob's matches (sorted; ``**`` recurses). A path that names nothing is a problem naming it. Each file
    is listed once, in the order first met."""
    files: list[Path] = []
    problems: list[str] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            files.append(p)

    for given in paths:
        p = Path(given)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if not _hidden(f.relative_to(p)) and f.is_file())
            if not found:
                problems.append(f"{p}: folder without any file")
            for f in found:
                add(f)
        elif p.exists() or p.is_symlink():
            add(p)
        elif _GLOB_CHARS & set(str(given)):
            matches = sorted(Path(m) for m in glob.glob(str(given), recursive=True))
            matched = [m for m in matches if m.is_file()]
            if not matched:
                problems.append(f"{given}: no file matches this pattern")
            for f in matched:
                add(f)
        else:
            problems.append(f"{p}: no such file or folder")
    return files, problems


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def read_text(path: Path) -> str:
    """An X12 file as text (:func:`decode_x12`); ``RecoupError`` naming the file when it cannot be read."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # /dev/zero would fill memory, a FIFO would wait forever
            raise RecoupError(f"{path}: not a regular file, expected an X12 file")
        if st.st_size > MAX_FILE_BYTES:
            raise RecoupError(
                f"{path}: {st.st_size:,} bytes, over the {MAX_FILE_BYTES:,} bytes an X12 file may have here; split it"
            )
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RecoupError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    return decode_x12(data, str(path))


def encoding_of(data: bytes) -> str:
    """The encoding of an X12 file's bytes: from its byte order mark, else from where the NUL bytes of UTF-16 text
    fall in its first bytes (``ISA`` is ``49 00 53 00 41 00`` in UTF-16 LE), else UTF-8 when the bytes are valid
    UTF-8, else Latin-1 (every byte is a character)."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith(codecs.BOM_UTF16_LE):
        return "utf-16"
    if data.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    head = data[: SNIFF_BYTES - SNIFF_BYTES % 2]
    if len(head) >= 4:
        even, odd = head[0::2], head[1::2]
        zeros_even, zeros_odd = even.count(0) / len(even), odd.count(0) / len(odd)
        if zeros_odd >= 0.9 and zeros_even < 0.1:
            return "utf-16-le"
        if zeros_even >= 0.9 and zeros_odd < 0.1:
            return "utf-16-be"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def decode_x12(data: bytes, source: str) -> str:
    """``data`` decoded (:func:`encoding_of`); a binary file (NUL bytes that are not UTF-16) or bytes that are not
    valid in the encoding they announce is a ``RecoupError`` naming ``source``."""
    encoding = encoding_of(data)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise RecoupError(f"{source}: not a text file (bytes not valid {encoding.upper()}), expected X12") from None
    if "\x00" in text[:SNIFF_BYTES]:
        raise RecoupError(f"{source}: not a text file (binary data), expected X12")
    return text
