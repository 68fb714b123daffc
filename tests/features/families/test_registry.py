"""features.families: the registry partitions the feature table's columns, declarations are consistent,
and a new family module is picked up by discovery and computed by the pipeline."""

from __future__ import annotations

import sys
import textwrap
import types

import pytest

from features.engine.state import HistoryState
from features.engine.tables import TABLE_COLUMNS
from features.families import CATEGORICAL, TABLE_ORDER, check, discover, family_of, registry
from features.pipeline import build_feature_table, compute_features
from tests.helpers.handmade import claim_rows, tiny_history, typed


@pytest.fixture(scope="module")
def table(codes, rb):
    res, _ = build_feature_table(tiny_history(codes, recouped=["H3"]), rb)
    return res


def test_the_families_partition_the_feature_table(table):
    declared = [c for f in registry() for c in f.COLUMNS]
    assert len(declared) == len(set(declared)), "a column is declared by two families"
    assert set(declared) == set(table.X.columns)
    assert list(table.X.columns) == CATEGORICAL + list(TABLE_ORDER)
    assert all(family_of(c) != "other" for c in table.X.columns)


def test_declarations_are_consistent():
    fams = registry()
    assert len({f.NAME for f in fams}) == len(fams)
    rules = [r for f in fams for r in f.RULES]
    assert len(rules) == len(set(rules))
    for f in fams:
        assert set(f.ROUNDED) <= set(f.COLUMNS), f.NAME
        assert set(f.TABLES) <= set(TABLE_COLUMNS), f.NAME
        assert callable(f.compute) and callable(f.reason)
        assert bool(f.RULES) == hasattr(f, "hit_text"), f.NAME


def test_every_hit_rule_has_its_family(table):
    from features.families import family_of_rule

    assert {r for r in table.hits["rule"]} <= {r for f in registry() for r in f.RULES}
    assert family_of_rule("mue").NAME == "mue"


def _tiny_family(name: str = "tiny", column: str = "n_tiny_lines") -> types.ModuleType:
    mod = types.ModuleType(f"tests_tiny_family_{name}")
    exec(
        textwrap.dedent(
            f"""
            import numpy as np
            NAME = {name!r}
            COLUMNS = ({column!r},)
            RULES = ()
            TABLES = ()
            ROUNDED = ()

            def compute(ctx):
                return {{{column!r}: np.bincount(ctx.ci, minlength=ctx.n) * 10.0}}

            def reason(x, claim, hits, ref):
                return f"{{x[{column!r}]:.0f}} tiny lines"
            """
        ),
        mod.__dict__,
    )
    return mod


def test_a_new_family_module_is_discovered(tmp_path, monkeypatch):
    pkg = tmp_path / "more_families"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text("")  # not a family
    (pkg / "tiny.py").write_text(
        "NAME = 'tiny'\nCOLUMNS = ('n_tiny',)\nRULES = ()\nTABLES = ()\nROUNDED = ()\n"
        "def compute(ctx):\n    return {}\n\ndef reason(x, claim, hits):\n    return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert [m.NAME for m in discover("more_families")] == ["tiny"]
    finally:
        for k in [k for k in sys.modules if k.startswith("more_families")]:
            del sys.modules[k]
    assert "tiny" not in {f.NAME for f in registry()}


def test_the_pipeline_computes_a_new_family_after_the_others(codes, rb):
    st = HistoryState.from_history(tiny_history(codes), rb)
    c, rows = claim_rows("NEW", [(codes["plain"], 1, []), (codes["mue6"], 2, [])], codes=codes)
    h = typed([c], rows)
    tiny = _tiny_family()
    res = compute_features(h.claims, h.claim_lines, st, rb, families=check([*registry(), tiny]))
    assert list(res.X.columns) == CATEGORICAL + list(TABLE_ORDER) + ["n_tiny_lines"]
    assert res.X["n_tiny_lines"].iloc[0] == 20.0
    assert tiny.reason(res.X.iloc[0].to_dict(), {}, {}, {}) == "20 tiny lines"
    # the registry is untouched: the default table has no such column
    assert "n_tiny_lines" not in compute_features(h.claims, h.claim_lines, st, rb).X.columns


def test_a_family_claiming_anothers_column_is_refused():
    with pytest.raises(ValueError, match="n_lines"):
        check([*registry(), _tiny_family("thief", "n_lines")])
    with pytest.raises(TypeError, match="lacks"):
        check([types.ModuleType("not_a_family")])
