"""The self-contained HTML report of `recoup monitor`: verdict, tables, and three PNG plots embedded as base64
(PSI of the top drifting features, score distribution train vs now, calibration by payer). No JavaScript, no
external references; no claim or patient identifiers (only features, payers and aggregates)."""

from __future__ import annotations

import html

import numpy as np

from features.figures import data_uri, figure
import pandas as pd

MAX_FEATURES_PLOTTED = 20
MAX_PAYERS_PLOTTED = 8

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1d2733;max-width:1300px}
h1{font-size:22px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left} th{background:#f3f5f7} td.num{text-align:right}
.retrain{color:#b42318;font-weight:600} .watch{color:#b54708;font-weight:600} .ok{color:#067647;font-weight:600}
img{max-width:48%;margin:6px 1% 6px 0;border:1px solid #eef0f2} .muted{color:#5a6572;font-size:13px}
"""


def _esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _png(fig) -> str:
    return data_uri(fig, dpi=90)


def plots(result: dict) -> dict[str, str]:
    """Title -> PNG data URI."""
    s = result["summary"]["settings"]
    out: dict[str, str] = {}
    f = result["features"].dropna(subset=["psi"]).head(MAX_FEATURES_PLOTTED)[::-1]
    fig, ax = figure(figsize=(6.5, 0.25 * len(f) + 1.5))
    ax.barh(f["feature"], f["psi"], color=np.where(f["top"], "#e45756", "#4c78a8"))
    ax.axvline(s["psi_feature_retrain"], ls="--", color="grey")
    ax.set(xlabel="PSI (red: a top feature of the model)", title="Population drift by feature (largest)")
    out["feature PSI"] = _png(fig)

    fig, ax = figure(figsize=(6.5, 3.8))
    p_ref, p_now = result["p_ref"], result["p_now"]
    hi = float(np.quantile(np.r_[p_ref, p_now], 0.995)) or 1.0
    bins = np.linspace(0, hi, 40).tolist()
    ax.hist(p_ref, bins=bins, density=True, alpha=0.5, label=f"{result['summary']['reference']} slice ({len(p_ref):,})")
    ax.hist(p_now, bins=bins, density=True, alpha=0.5, label=f"now ({len(p_now):,})")
    ax.set(
        xlabel="calibrated probability",
        ylabel="density",
        title=f"Score distribution (PSI {result['summary']['score']['psi']:.3f})",
    )
    ax.legend()
    out["score distribution"] = _png(fig)

    cf = result["cal_frame"]
    cf = cf[cf["mature"]]
    fig, ax = figure(figsize=(6.5, 4.2))
    if len(cf):
        top = cf["payer_id"].value_counts().index[:MAX_PAYERS_PLOTTED]
        hi = 1e-6
        for payer in top:
            g = cf[cf["payer_id"] == payer].sort_values("probability")
            chunks = [c for c in np.array_split(np.arange(len(g)), 5) if len(c)]
            mp = [g["probability"].iloc[c].mean() for c in chunks]
            my = [g["label"].iloc[c].mean() for c in chunks]
            hi = max(hi, *mp, *my)
            ax.plot(mp, my, "o-", label=f"{payer} ({len(g)})")
        ax.plot([0, hi], [0, hi], ":", color="grey")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no claim of the window has a matured label yet", ha="center", va="center")
    ax.set(xlabel="mean predicted", ylabel="observed rate", title="Calibration by payer (matured claims)")
    out["calibration by payer"] = _png(fig)
    return out


def _table(df: pd.DataFrame, max_rows: int = 60) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in df.columns)
    body = []
    for row in df.head(max_rows).itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, (float, np.floating)):
                cells.append(f'<td class="num">{"" if not np.isfinite(v) else f"{v:.4f}"}</td>')
            elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                cells.append(f'<td class="num">{v:,}</td>')
            else:
                cells.append(f"<td>{_esc(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_html(result: dict) -> str:
    """The whole page as one string."""
    sm = result["summary"]
    m = sm["model"]
    items = "".join(f"<li>{_esc(r)}</li>" for r in sm["reasons"]) or "<li>none</li>"
    notes = "".join(f"<li>{_esc(r)}</li>" for r in sm["watch"])
    imgs = "".join(f'<img alt="{_esc(k)}" src="{v}">' for k, v in plots(result).items())
    sc = sm["score"]
    score_rows = pd.DataFrame(
        [[k, sc[f"{k}_ref"], sc[f"{k}_now"]] for k in ("mean", "q50", "q90", "q99")],
        columns=["", sm["reference"], "now"],
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>recoup monitor</title><style>{CSS}</style></head>
<body><h1>Drift watch: model {_esc(m.get("model_version"))} (as of {_esc(m.get("as_of"))})</h1>
<p class="muted">{_esc(sm["reference"])} slice {_esc("..".join(sm["reference_slice"]))} ({sm["n_ref"]:,} claims);
window {_esc(sm["window"][0])}..{_esc(sm["window"][1])} ({sm["n_now"]:,} claims, {sm["n_labelled_now"]:,} with a
matured label); data up to {_esc(sm["data_last_date"])}, model age {sm["model_age_days"]} days</p>
<p class="{_esc(sm["status"])}">status: {_esc(sm["status"])}{" (retrain due)" if sm["retrain_due"] else ""}</p>
<h2>Why</h2><ul>{items}</ul>{f"<h2>Watch</h2><ul>{notes}</ul>" if notes else ""}
<h2>Plots</h2>{imgs}
<h2>Score drift (PSI {sc["psi"]:.4f})</h2>{_table(score_rows)}
<h2>Features (by PSI)</h2>{_table(result["features"])}
<h2>Payers</h2>{_table(result["payers"])}
<h2>Calibration by payer</h2>
<p class="muted">matured claims of the window (horizon ended): ECE in 5 equal-count bins next to the ECE a calibrated
model would show by chance; claims still followed: recouped so far (a lower bound of the final rate) vs predicted</p>
{_table(result["calibration"])}
</body></html>
"""
