"""The self-contained HTML report of an audit worklist: inline CSS, PNG charts as base64 data URIs, no
JavaScript, no external references; it opens from disk and can be mailed as one file."""

from __future__ import annotations

import html
import json

import numpy as np

from features.contract import CAUSES
from features.figures import data_uri, figure
from serving.audit import CURVE_ZOOM, no_backtest_reason, window_flags

MAX_TABLE_ROWS = 5000  # the HTML table stops here (the CSV/Parquet have the whole worklist)
TOP_GROUPS = 15
MAX_LABEL_CHARS = 42  # a chart's bar label (provider name, specialty) is cut here

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1d2733;max-width:1400px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #d0d7de}
.muted{color:#5a6572;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f3f5f7} td.num{text-align:right;white-space:nowrap}
.kpi{display:inline-block;border:1px solid #d0d7de;border-radius:6px;padding:10px 16px;margin:4px 8px 4px 0}
.kpi b{display:block;font-size:20px}
.charts img{max-width:48%;margin:6px 1% 6px 0;border:1px solid #eef0f2}
tr.provider td{background:#eaf1fb;font-weight:600}
ul{margin:0;padding-left:16px} .band-high{color:#b42318;font-weight:600} .band-medium{color:#b54708}
"""


def _esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _money(x) -> str:
    try:
        return f"${float(x):,.0f}"
    except (TypeError, ValueError):
        return ""


def _png(fig) -> str:
    return data_uri(fig, dpi=90)


def charts(wl) -> dict[str, str]:
    r = wl.ranked
    out: dict[str, str] = {}
    fig, ax = figure(figsize=(6, 3.4))
    p = r["recoupment_probability"].to_numpy() if len(r) else np.zeros(1)
    ax.hist(p, bins=40, color="#4c78a8")
    ax.set_yscale("log")
    ax.set_xlabel("predicted recoupment probability")
    ax.set_ylabel("paid claims (log)")
    ax.set_title("Risk distribution")
    out["risk distribution"] = _png(fig)

    fig, ax = figure(figsize=(6, 3.4))
    bc = wl.by_cause.sort_values()
    ax.barh([c.replace("_", " ") for c in bc.index], bc.to_numpy(), color="#f58518")
    ax.set_xlabel("expected recoupment dollars")
    ax.set_title("Dollars at risk by cause (all paid claims)")
    out["dollars at risk by cause"] = _png(fig)

    for key, title in (("billing_npi", "provider (billing NPI)"), ("payer_id", "payer")):
        fig, ax = figure(figsize=(6, 3.4))
        g = r.groupby(key)["expected_recoupment_dollars"].sum().sort_values(ascending=False).head(TOP_GROUPS)[::-1]
        names = [_provider_bar(str(v), wl.providers) for v in g.index] if key == "billing_npi" else g.index.astype(str)
        ax.barh(names, g.to_numpy(), color="#54a24b")
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel("expected recoupment dollars")
        ax.set_title(f"Dollars at risk by {title}" + (f", top {TOP_GROUPS}" if len(g) >= TOP_GROUPS else ""))
        out[f"dollars at risk by {key}"] = _png(fig)

    out["capacity curve"] = _png(capacity_figure(wl))
    return out


def _cut(text: str, n: int = MAX_LABEL_CHARS) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _provider_bar(npi: str, providers) -> str:
    """A provider's bar label: its name (else NPI) and its specialty's label."""
    if providers is None or npi not in providers.index:
        return npi
    name, spec = providers.at[npi, "provider_name"], providers.at[npi, "specialty"]
    return f"{_cut(name or npi, 24)} · {_cut(spec, 24)}"


def curve_limit(n: int, capacity: int) -> int:
    """The capacity curve's x-axis end: :data:`CURVE_ZOOM` x the capacity (at least 10 claims), never
    beyond the paid claims; all of them when the capacity reviews every claim."""
    if n <= 0:
        return 1
    if capacity <= 0 or capacity >= n:
        return n
    return int(min(n, max(CURVE_ZOOM * capacity, 10)))


def capacity_figure(wl):
    """Dollars caught vs claims reviewed, zoomed on 0..:func:`curve_limit` with the capacity marked."""
    r = wl.ranked
    fig, ax = figure(figsize=(6, 3.4))
    n = len(r)
    xmax = curve_limit(n, int(wl.capacity or 0))
    k = np.arange(0, xmax + 1)
    cum = np.concatenate([[0.0], np.cumsum(r["expected_recoupment_dollars"].to_numpy())])
    mean = cum[-1] / n if n else 0.0
    ax.plot(k, cum[: xmax + 1], label="ranked review (expected)", color="#4c78a8")
    ax.plot(k, k * mean, label="random review (expected)", color="#9d9da0", ls="--")
    top = [float(cum[min(xmax, n)]), xmax * mean]
    bt = wl.backtest
    if bt and bt.get("curve"):
        ck = np.asarray(bt["curve"]["k"])
        seen = ck <= xmax
        for key, label, ls in (("model", "ranked review (actual, matured)", "-"), ("random", "random (actual)", ":")):
            y = np.asarray(bt["curve"][key])[seen]
            ax.plot(ck[seen], y, label=label, color="#e45756", ls=ls)
            top.append(float(y.max()) if len(y) else 0.0)
    ax.set_xlim(0, xmax)
    ax.set_ylim(0, max(max(top), 1.0) * 1.08)
    if wl.capacity:
        ax.axvline(wl.capacity, color="#333", lw=0.8)
        ax.text(wl.capacity, ax.get_ylim()[1] * 0.95, f" capacity {wl.capacity:,}", fontsize=8, va="top")
    ax.set_xlabel("claims reviewed" + (f" (first {xmax:,} of {n:,} paid claims)" if xmax < n else ""))
    ax.set_ylabel("dollars")
    ax.set_title("Capacity curve")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _list_html(text: str, key: str, limit: int = 5) -> str:
    if not text:
        return ""
    try:
        items = json.loads(text)
    except (TypeError, ValueError):
        return _esc(text)
    if not items:
        return ""
    li = "".join(f"<li>{_esc(it.get(key, ''))}</li>" for it in items[:limit])
    more = f"<li>... {len(items) - limit} more</li>" if len(items) > limit else ""
    return f"<ul>{li}{more}</ul>"


def _causes_html(text: str) -> str:
    try:
        items = json.loads(text)[:3]
    except (TypeError, ValueError):
        return ""
    return "<br>".join(f"{_esc(i['cause'].replace('_', ' '))} {i['probability']:.0%}" for i in items)


def _summary_html(wl) -> str:
    s = wl.summary
    kpis = [
        ("paid claims in window", f"{s['paid_claims']:,}"),
        ("claims to review", f"{s['reviews']:,}"),
        ("review hours", f"{s['review_hours']:,}"),
        ("dollars paid", _money(s["dollars_paid"])),
        ("expected recoupment, all paid claims", _money(s["expected_dollars_all"])),
        ("expected recovery at capacity", _money(s["expected_dollars_at_capacity"])),
        ("same capacity, random review", _money(s["expected_dollars_random"])),
    ]
    if s.get("lift_vs_random"):
        kpis.append(("lift vs random", f"{s['lift_vs_random']}x"))
    body = "".join(f'<div class="kpi"><span class="muted">{_esc(a)}</span><b>{_esc(b)}</b></div>' for a, b in kpis)
    win = s.get("window")
    meta = (
        f"<p class='muted'>Window: claims submitted {_esc(win[0])} to {_esc(win[1])}. " if win else "<p class='muted'>"
    )
    meta += (
        f"Model version {_esc(s['model_version'])}. {s['claims_in_window']:,} claims in the window, "
        f"{s['paid_claims']:,} paid (only paid claims can be recouped). Capacity: {s['reviews']:,} reviews "
        f"at {s['minutes_per_review']:g} minutes each."
    )
    if s.get("rejected"):
        meta += f" {s['rejected']:,} claim(s) could not be scored (see the score output for reasons)."
    return body + meta + "</p>"


def _backtest_html(bt: dict | None, summary: dict | None = None) -> str:

    summary = summary or {}
    if not bt:
        return f"<p class='muted' id='no-backtest'>No backtest: {_esc(no_backtest_reason(summary))}</p>"
    mw = summary.get("matured_window") or {}
    notes = ""
    if bt.get("n_in_sample"):
        notes += (
            f"<p class='muted' id='in-sample'>{bt['n_in_sample']:,} of the {bt['n_mature']:,} matured claims were "
            f"submitted before {_esc(bt['held_out_since'])}, where the model was trained and calibrated: it learned "
            "from their outcomes, so on them the backtest flatters it. An out-of-sample backtest audits claims "
            "submitted after the model's training date (`recoup train --as-of` an earlier date).</p>"
        )
    if bt["n_immature"] and mw.get("since") and summary.get("window") != [mw["since"], mw["until"]]:
        notes += (
            f"<p class='muted'>For a window whose outcomes are all known: <code>{_esc(window_flags(mw))}</code> "
            "(or <code>--matured</code>).</p>"
        )
    rows = [("ranked review (this worklist's order)", bt["model"]), ("random review (expected)", bt["random"])]
    if "oracle" in bt:
        rows.append(("oracle ranking (true probability x paid)", bt["oracle"]))
    rows.append(("hindsight (the largest actual recoupments)", bt["hindsight"]))
    tr = "".join(
        f"<tr><td>{_esc(a)}</td><td class='num'>{b['claims']:,}</td><td class='num'>{_money(b['dollars'])}</td></tr>"
        for a, b in rows
    )
    return (
        f"<p>Of the window's paid claims, {bt['n_mature']:,} have a known outcome as of {_esc(bt['as_of'])} "
        f"(horizon {bt['horizon_days']} days after payment; {bt['n_immature']:,} are too recent and left out). "
        f"They had {bt['positives']:,} recoupments worth {_money(bt['recouped_dollars'])}. Reviewing the top "
        f"{bt['capacity']:,} of them would have caught:</p>"
        f"<table id='backtest'><tr><th>review strategy</th><th>recouped claims caught</th><th>dollars caught</th>"
        f"</tr>{tr}</table>{notes}"
    )


def _worklist_html(wl) -> str:
    w = wl.worklist
    if not len(w):
        return "<p class='muted'>No paid claims in the window.</p>"
    shown = w.head(MAX_TABLE_ROWS)
    note = (
        f"<p class='muted'>Showing the first {MAX_TABLE_ROWS:,} of {len(w):,} rows; worklist.csv has all.</p>"
        if len(w) > MAX_TABLE_ROWS
        else ""
    )
    has_outcome = "recouped" in shown.columns
    heads = ["rank", "claim", "payer", "paid", "probability", "expected $", "causes", "reasons", "rule hits"]
    if has_outcome:
        heads.append("outcome")
    g = shown.groupby("billing_npi", sort=False)
    prov_total = g["expected_recoupment_dollars"].sum().sort_values(ascending=False)
    parts = [f"<table><tr>{''.join(f'<th>{h}</th>' for h in heads)}</tr>"]
    for npi in prov_total.index:
        rows = g.get_group(npi).sort_values("rank")
        top = rows["top_cause"].value_counts()
        pattern = ", ".join(f"{c.replace('_', ' ')} ({n})" for c, n in top.head(3).items())
        first = rows.iloc[0]
        who = f"{first['provider_name']}, NPI {npi}" if first.get("provider_name") else f"NPI {npi}"
        parts.append(
            f"<tr class='provider'><td colspan='{len(heads)}'>Provider {_esc(who)} ({_esc(first.get('specialty', ''))})"
            f": {len(rows):,} claim(s), expected {_money(prov_total[npi])}; most likely causes: {_esc(pattern)}"
            "</td></tr>"
        )
        for r in rows.itertuples(index=False):
            cells = [
                f"<td class='num'>{r.rank}</td>",
                f"<td>{_esc(r.claim_id)}<br><span class='muted'>{_esc(str(r.submitted_date)[:10])}</span></td>",
                f"<td>{_esc(r.payer_id)}<br><span class='muted'>{_esc(r.plan_type)}</span></td>",
                f"<td class='num'>{_money(r.paid_amount)}</td>",
                f"<td class='num band-{_esc(r.risk_band)}'>{r.recoupment_probability:.1%}</td>",
                f"<td class='num'>{_money(r.expected_recoupment_dollars)}</td>",
                f"<td>{_causes_html(r.causes)}</td>",
                f"<td>{_list_html(r.reasons, 'text')}</td>",
                f"<td>{_list_html(r.rule_hits, 'text')}</td>",
            ]
            if has_outcome:
                if not r.outcome_known:
                    o = "<span class='muted'>not known yet</span>"
                elif r.recouped:
                    o = f"recouped {_money(r.recouped_amount)} ({_esc(str(r.actual_cause).replace('_', ' '))})"
                else:
                    o = "not recouped"
                cells.append(f"<td>{o}</td>")
            parts.append(f"<tr>{''.join(cells)}</tr>")
    parts.append("</table>")
    return note + "".join(parts)


def render_report(wl) -> str:
    imgs = charts(wl)
    chart_html = "".join(f'<img alt="{_esc(k)}" src="{v}">' for k, v in imgs.items())
    causes = ", ".join(CAUSES)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>recoup audit worklist</title><style>{CSS}</style></head>
<body>
<h1>Recoupment audit worklist</h1>
<p class="muted">Paid claims ranked by expected recoupment dollars (probability x cause-specific amount at risk).
Causes: {_esc(causes)}. Generated by recoup; this file is self-contained.</p>
<h2>Summary</h2>
{_summary_html(wl)}
<h2>Backtest</h2>
{_backtest_html(wl.backtest, wl.summary)}
<h2>Charts</h2>
<div class="charts">{chart_html}</div>
<h2>Worklist by provider</h2>
<p class="muted">Providers ordered by the expected dollars of their claims on the worklist; claims by rank.
Reasons explain the model's score; rule hits are deterministic findings (NCCI, MUE, codes, duplicates,
coverage).</p>
{_worklist_html(wl)}
</body></html>
"""
