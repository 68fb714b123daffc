"""X12 files on disk: every encoding (UTF-8 with/without BOM, UTF-16 LE/BE with/without BOM, Latin-1) and every
segment terminator convention read the same rows from re-encoded real samples; binary files are one problem naming
the file; paths expand to files (folders recursively, globs), missing ones named."""

from __future__ import annotations

import codecs
from pathlib import Path

import pandas as pd
import pytest

from features.errors import RecoupError
from features.sources.x12.files import decode_x12, encoding_of, expand_paths, read_text
from features.sources.x12.tokenizer import tokenize
from features.sources.x12.units import units_from_x12
from tests.helpers.x12 import DATA

#: a 4010 837I with a non-ASCII character (U+2019 in a provider name), a 5010 837P, a 5010 835
SAMPLES = [
    DATA / "linuxforhealth/837_004010X096A1__homeowners.837",
    DATA / "badx12/X222-ambulance.edi",
    DATA / "linuxforhealth/835_005010X221A1__managed-care.835",
]


def _units(path: Path) -> list:
    return list(units_from_x12(path))


def _assert_same_units(a: list, b: list) -> None:
    assert [u.key for u in a] == [u.key for u in b]
    for ua, ub in zip(a, b):
        assert ua.problems == [] and ub.problems == []
        assert ua.tables.keys() == ub.tables.keys()
        for name in ua.tables:
            pd.testing.assert_frame_equal(ua.tables[name], ub.tables[name])


ENCODINGS = {
    "utf-8": lambda t: t.encode("utf-8"),
    "utf-8 BOM": lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
    "utf-16 LE BOM": lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),
    "utf-16 BE BOM": lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
    "utf-16 LE": lambda t: t.encode("utf-16-le"),
    "utf-16 BE": lambda t: t.encode("utf-16-be"),
    "latin-1": lambda t: t.replace("\u2019", "\u00e9").encode("latin-1"),
}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_every_encoding_reads_the_same_units(tmp_path: Path, sample: Path, encoding: str) -> None:
    text = sample.read_text("utf-8")
    reference = tmp_path / "reference.x12"
    reference.write_text(text.replace("\u2019", "\u00e9") if encoding == "latin-1" else text, "utf-8")
    other = tmp_path / "encoded.x12"
    other.write_bytes(ENCODINGS[encoding](text))
    _assert_same_units(_units(reference), _units(other))


def test_encoding_detection() -> None:
    assert encoding_of("ISA*00".encode("utf-16-le")) == "utf-16-le"
    assert encoding_of("ISA*00".encode("utf-16-be")) == "utf-16-be"
    assert encoding_of(codecs.BOM_UTF16_BE + "ISA".encode("utf-16-be")) == "utf-16"
    assert encoding_of(codecs.BOM_UTF8 + b"ISA") == "utf-8-sig"
    assert encoding_of("ISA*DUFF\u00c9R".encode("latin-1")) == "latin-1"  # not valid UTF-8
    assert encoding_of("ISA*DUFF\u00c9R".encode("utf-8")) == "utf-8"
    assert decode_x12("ISA*\u00e9".encode("latin-1"), "x") == "ISA*\u00e9"


def _rewrite(text: str, terminator: str, after: str = "", wrap: int = 0) -> str:
    """``text`` with every segment ended by ``terminator`` + ``after`` (optionally wrapped at ``wrap`` columns)."""
    out = []
    for delims, segments in tokenize(text, "sample"):
        out.append("".join(delims.element.join(seg) + terminator + after for _, seg in segments))
    joined = "".join(out)
    if wrap:
        joined = "\n".join(joined[i : i + wrap] for i in range(0, len(joined), wrap))
    return joined


TERMINATORS = {
    "~": ("~", ""),
    "~ LF": ("~", "\n"),
    "~ CRLF": ("~", "\r\n"),
    "LF only": ("\n", ""),
    "CRLF only": ("\r\n", ""),
    "CR only": ("\r", ""),
    "apostrophe (EDIFACT style)": ("'", ""),
    "apostrophe CRLF": ("'", "\r\n"),
    "0x1C": ("\x1c", ""),
    "! LF": ("!", "\n"),
}


@pytest.mark.parametrize("sample", SAMPLES[1:], ids=lambda p: p.name)
@pytest.mark.parametrize("name", sorted(TERMINATORS))
def test_every_segment_terminator_reads_the_same_units(tmp_path: Path, sample: Path, name: str) -> None:
    terminator, after = TERMINATORS[name]
    reference, other = tmp_path / "reference.x12", tmp_path / "other.x12"
    reference.write_text(sample.read_text())
    other.write_bytes(_rewrite(sample.read_text(), terminator, after).encode())
    _assert_same_units(_units(reference), _units(other))


def test_segments_wrapped_at_80_columns(tmp_path: Path) -> None:
    """Some systems wrap an X12 stream at a fixed width: line breaks inside a segment are not data."""
    sample = SAMPLES[1]
    (tmp_path / "a.x12").write_text(sample.read_text())
    (tmp_path / "b.x12").write_text(_rewrite(sample.read_text(), "~", wrap=80))
    _assert_same_units(_units(tmp_path / "a.x12"), _units(tmp_path / "b.x12"))


@pytest.mark.parametrize(
    "data, reason",
    [
        (bytes(range(256)) * 8, "binary data"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00\x01" * 100, "binary data"),
        (codecs.BOM_UTF16_LE + "ISA*00".encode("utf-16-le") + b"\x00", "bytes not valid UTF-16"),
    ],
    ids=["bytes", "png", "odd utf-16"],
)
def test_a_binary_or_undecodable_file_is_one_problem_naming_it(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "scan.837"
    path.write_bytes(data)
    with pytest.raises(RecoupError, match=rf"scan\.837: not a text file \({reason}"):
        read_text(path)
    (unit,) = _units(path)
    assert unit.key.startswith("file:") and len(unit.key) == len("file:") + 64
    assert len(unit.problems) == 1 and "scan.837" in unit.problems[0] and unit.tables == {}


def test_expand_paths_files_folders_globs_and_missing(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / ".hidden").mkdir()
    for name in ("in/b.835", "in/a.837", "in/sub/c.837", "in/.secret.837", "in/.hidden/d.837", "top.837"):
        (tmp_path / name).write_text("x")
    (tmp_path / "empty").mkdir()
    files, problems = expand_paths(
        [
            tmp_path / "in",
            str(tmp_path / "*.837"),
            tmp_path / "in" / "a.837",  # listed once
            tmp_path / "missing.837",
            str(tmp_path / "nothing*.x12"),
            tmp_path / "empty",
        ]
    )
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["in/a.837", "in/b.835", "in/sub/c.837", "top.837"]
    assert problems == [
        f"{tmp_path / 'missing.837'}: no such file or folder",
        f"{tmp_path / 'nothing*.x12'}: no file matches this pattern",
        f"{tmp_path / 'empty'}: folder without any file",
    ]
    recursive, _ = expand_paths([str(tmp_path / "**" / "*.837")])
    assert [f.name for f in recursive] == ["a.837", "c.837", "top.837"]
