"""training.report: the SHAP beeswarm (rows, offsets, colours, the PNG) and readable heat-map numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.report import (
    BEESWARM_HALF_HEIGHT,
    colour_values,
    plot_shap_beeswarm,
    swarm_offsets,
    text_colour,
    write_plots,
)


@pytest.mark.parametrize(
    ("rgba", "colour"),
    [((0.03, 0.19, 0.42, 1.0), "white"), ((0.97, 0.98, 1.0, 1.0), "black"), ((0.0, 0.0, 0.0, 1.0), "white")],
)
def test_text_is_white_on_dark_cells_and_black_on_light_ones(rgba, colour):
    assert text_colour(rgba) == colour


def test_confusion_numbers_change_colour_across_the_blues_map():
    from matplotlib import colormaps

    blues = colormaps["Blues"]
    assert text_colour(blues(1.0)) == "white" and text_colour(blues(0.0)) == "black"


def test_swarm_offsets_spread_crowded_values_within_the_row():
    x = np.concatenate([np.zeros(200), np.linspace(1, 2, 10)])
    off = swarm_offsets(x)
    assert np.abs(off).max() == pytest.approx(BEESWARM_HALF_HEIGHT)
    assert off[:200].std() > 10 * np.abs(off[200:]).max()  # the crowd spreads, the lone points stay on the line
    assert len(np.unique(off[:200])) > 100  # points in one bin do not overlap
    assert swarm_offsets(np.array([])).size == 0 and swarm_offsets(np.ones(3)).shape == (3,)


def test_colours_rank_numbers_and_leave_categories_grey():
    c = colour_values(pd.Series([5.0, np.nan, 1.0, 100.0]))
    assert c[2] < c[0] < c[3] and np.isnan(c[1])
    assert np.isnan(colour_values(pd.Series(["a", "b"], dtype="category"))).all()
    assert np.isnan(colour_values(pd.Series(["a", "b"]))).all()


def test_beeswarm_png_is_written(tmp_path):
    rng = np.random.default_rng(1)
    M = pd.DataFrame({f"f{i}": rng.normal(size=300) for i in range(20)})
    M["payer_id"] = pd.Categorical(rng.choice(["A", "B"], 300))
    contrib = rng.normal(size=(300, 21)) * np.arange(1, 22)
    path = plot_shap_beeswarm(contrib, M, tmp_path)
    assert path == tmp_path / "shap_beeswarm.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_a_trained_models_plots_include_the_beeswarm(trained, tmp_path):
    write_plots(trained["result"], tmp_path, None)
    for name in ("shap_beeswarm.png", "shap_summary.png", "cause_confusion.png", "feature_importance.csv"):
        assert (tmp_path / name).stat().st_size > 0
