"""features.rulebook.index: the rulebook's fast index on code ids (the feature families' path), and the
same answers for one claim as for a million lines (its small-input paths)."""

from __future__ import annotations

import numpy as np

from features.engine.arrays import SMALL
from features.rulebook.index import RuleIndex, rule_index

AUG_2024 = 20240801


def test_rule_index_is_built_once_per_rulebook(rb):
    ri = rule_index(rb)
    assert isinstance(ri, RuleIndex) and rule_index(rb) is ri and rb.index is ri
    assert ri.vocab.is_unique and ri.vocab.is_monotonic_increasing


def test_code_ids_unknown_codes_are_minus_one(rb):
    ri = rb.index
    ids = ri.code_ids(np.array(["29880", "ZZZZZ", "29881", ""], dtype=object))
    assert ids.dtype == np.int64 and ids[1] == -1 and ids[3] == -1
    assert ri.vocab[ids[0]] == "29880" and ri.vocab[ids[2]] == "29881"


def test_ptp_on_code_ids(rb):
    ri = rb.index
    a = ri.code_ids(np.array(["29880", "0007U", "0007U", "00100", "00100", "ZZZZZ"], dtype=object))
    b = ri.code_ids(np.array(["29881", "0328U", "0328U", "36010", "36010", "29881"], dtype=object))
    ymd = np.array([AUG_2024, 20220115, AUG_2024, AUG_2024, AUG_2024, AUG_2024], dtype=np.int64)
    ct = np.array(["professional"] * 4 + ["institutional", "professional"], dtype=object)
    got = ri.ptp(a, b, ymd, ct)
    assert got.dtype == np.int8 and got.tolist() == [1, 0, 1, 0, 1, -1]
    assert ri.ptp(b, a, ymd, ct).tolist() == [-1] * 6  # directional: column 1 comprehensive
    assert ri.ptp(a[:1], b[:1], ymd[:1], "professional").tolist() == [1]  # one claim type for all rows
    assert ri.ptp(a[:0], b[:0], ymd[:0], ct[:0]).tolist() == []


def test_mue_on_code_ids(rb):
    ri = rb.index
    ids = ri.code_ids(np.array(["71046", "71046", "97110", "ZZZZZ"], dtype=object))
    units, mai = ri.mue(ids, np.array(["professional", "institutional", "institutional", "professional"], dtype=object))
    assert units.dtype == np.float64 and mai.dtype == np.int8
    assert units[:3].tolist() == [2, 3, 8] and np.isnan(units[3]) and mai[3] == 0


def test_small_and_large_inputs_get_the_same_answers(rb):
    ri = rb.index
    rng = np.random.default_rng(11)
    icd = rb.table("icd10cm")["code"].astype(str).to_numpy(dtype=object)
    dx = icd[rng.integers(0, len(icd), 4 * SMALL)]
    dx[::7] = "e11.9"
    dx[::11] = None
    dx[::13] = dx[1][:3]  # a category
    status = ri.icd_status(dx)
    assert set(status.tolist()) == {0, 1, 2} and status[11] == 2 and status[7] == 0
    assert np.array_equal(np.concatenate([ri.icd_status(dx[i : i + 3]) for i in range(0, len(dx), 3)]), status)
    codes = rb.table("ptp_professional")["column_1"].to_numpy(dtype=object)[rng.integers(0, 1000, 4 * SMALL)]
    codes[::5] = "ZZZZZ"
    ids = ri.code_ids(codes)
    assert np.array_equal(np.concatenate([ri.code_ids(codes[i : i + 3]) for i in range(0, len(codes), 3)]), ids)
