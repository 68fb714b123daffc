"""X12 tokenizer: delimiters from the ISA header (any separators, any line breaks), bad headers named."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.errors import RecoupError
from features.sources.x12.errors import X12Error
from features.sources.x12.importer import import_x12, import_x12_cli, parse_x12
from features.sources.x12.tokenizer import Delimiters, tokenize
from tests.helpers.x12 import (
    CLAIMS_837,
    interchange,
    write,
)


def test_delimiters_and_line_breaks_do_not_matter(tmp_path: Path) -> None:
    plain = import_x12([write(tmp_path, "a.837", interchange(CLAIMS_837))]).history
    other = import_x12([write(tmp_path, "b.837", interchange(CLAIMS_837, e="|", c="^", t="\n"))]).history
    crlf = import_x12([write(tmp_path, "c.837", interchange(CLAIMS_837, e="!", c=">", t="'", nl="\r\n"))]).history
    for h in (other, crlf):
        pd.testing.assert_frame_equal(plain.claims, h.claims)
        pd.testing.assert_frame_equal(plain.claim_lines, h.claim_lines)


def test_bad_isa_header(tmp_path: Path) -> None:
    text = interchange(CLAIMS_837)
    with pytest.raises(X12Error, match=r"bad\.837: segment 1 \(ISA\): expected an ISA header with 16 elements"):
        parse_x12(text[:60], "bad.837")
    with pytest.raises(X12Error, match=r"segment 1 \(ISA\): expected an ISA header with its element separator"):
        parse_x12("ISA00" + text[5:], "bad.837")
    with pytest.raises(RecoupError, match=r"junk\.txt: segment 1: expected an ISA interchange header"):
        import_x12([write(tmp_path, "junk.txt", "hello world")])
    with pytest.raises(RecoupError, match=r"junk\.txt: expected an X12 837/835 file \(starting with ISA\)"):
        import_x12_cli([write(tmp_path, "junk.txt", "hello world")], tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.sqlite").exists()


def test_tokenize_takes_each_interchanges_delimiters_and_numbers_segments_across_the_file() -> None:
    first = interchange(CLAIMS_837, e="|", c=">", t="'", nl="\r\n")
    second = interchange(CLAIMS_837)
    chunks = list(tokenize(first + "\n" + second, "two.837"))
    assert [d for d, _ in chunks] == [Delimiters("|", ">", "'", "^"), Delimiters("*", ":", "~", "^")]
    numbers = [no for _, segs in chunks for no, _ in segs]
    assert numbers == list(range(1, len(numbers) + 1))
    assert [[segs[0][1][0], segs[-1][1][0]] for _, segs in chunks] == [["ISA", "IEA"], ["ISA", "IEA"]]
    assert chunks[0][1][1][1][:2] == ["GS", "HC"]  # elements split on the interchange's own separator


def test_a_bare_transaction_is_one_chunk_with_guessed_delimiters() -> None:
    ((delims, segs),) = tokenize("ST*837*0001~BHT*0019~SE*3*0001~", "bare.837")
    assert delims == Delimiters("*", ":", "~", None)
    assert [(no, seg[0]) for no, seg in segs] == [(1, "ST"), (2, "BHT"), (3, "SE")]
