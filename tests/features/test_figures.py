"""features.figures: figures without pyplot (no backend switched, nothing at import), written atomically."""

from __future__ import annotations

import subprocess
import sys

from features.figures import data_uri, figure, save_png


def test_importing_the_plot_modules_chooses_no_backend():
    code = (
        "import sys, features.figures, training.report, training.monitor_report, serving.audit_report;"
        "print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_figure_is_saved_without_touching_pyplot(tmp_path):
    fig, ax = figure(1, 2, figsize=(4, 2))
    assert len(ax) == 2
    ax[0].plot([0, 1], [1, 0])
    path = save_png(fig, tmp_path / "a.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary file left
    assert data_uri(fig).startswith("data:image/png;base64,iVBOR")
    assert "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()
