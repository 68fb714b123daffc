"""`recoup backtest`: rolling-origin forward evaluation.

For each origin date (``--from`` to ``--to`` every ``--step``): train as of the origin with only what was known
then (``train_model`` truncates the history itself), score the claims submitted in (origin, origin + window] with
point-in-time features (``evaluate_history``, which refuses any window inside the model's train or validation
slice), label them from the full history (matured claims only; the matured share is reported) and measure the
generator's oracle on the same claims when the data folder has an ``oracle.csv``.

Pure parts: :func:`parse_period`, :func:`parse_date`, :func:`make_origins`, :func:`check_origins`,
:func:`backtest_origin`, :func:`run_backtest`, :func:`format_table`, :func:`plot_backtest`, :func:`html_report`.
Wiring (files, MLflow): :func:`backtest_cli`. ``bench/bench_forward.py`` runs :func:`backtest_origin` too.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from features.contract import History
from features.contract.schema import DATE_PATTERN
from features.errors import RecoupError
from features.pipeline import FeatureResult
from training.lag import label_delay_days

log = logging.getLogger(__name__)

#: a period: a whole number and a unit, days, weeks, months or years (``3M``, ``90D``, ``2W``, ``1Y``)
PERIOD_PATTERN = re.compile(r"([0-9]{1,4})([DWMY])", re.IGNORECASE)
PERIOD_UNITS = {"D": "days", "W": "weeks", "M": "months", "Y": "years"}
#: a step or window spans 1 day to 10 years
MAX_PERIOD_DAYS = 3653
#: at most this many origins (e.g. monthly over 10 years): each one trains a model
MAX_ORIGINS = 120
#: the review capacity always reported (dollars captured in a 5% review), besides the config's ``capacities``
REPORTED_CAPACITY = 0.05
#: model and oracle figures reported per origin (printed table, plots, MLflow); dollars at every capacity too
TABLE_KEYS = ("roc_auc", "pr_auc", "dollars_at_5pct", "ece")
#: the figures compared as model / oracle ratios (besides dollars at every capacity)
RATIO_KEYS = ("roc_auc", "pr_auc", "cause_top1_accuracy")
#: the files of a backtest's output folder
FILES = ("backtest.json", "backtest.md", "backtest.png", "backtest.html")
EXPERIMENT = "recoup-backtest"
COMMAND = "backtest"


# ---------------------------------------------------------------------------------------------- options
def parse_period(text: str, option: str) -> pd.DateOffset:
    """``3M`` / ``90D`` / ``2W`` / ``1Y`` -> a calendar offset between 1 day and 10 years."""
    m = PERIOD_PATTERN.fullmatch(str(text).strip())
    if not m:
        raise RecoupError(f"{option} must be a number and a unit D, W, M or Y, e.g. 3M, 90D, 2W, 1Y (got {text!r})")
    n, unit = int(m.group(1)), m.group(2).upper()
    offset = pd.DateOffset(**{PERIOD_UNITS[unit]: n})
    ref = pd.Timestamp("2000-01-01")
    days = ((ref + offset) - ref).days
    if not 1 <= days <= MAX_PERIOD_DAYS:
        raise RecoupError(f"{option} must span 1 day to 10 years (got {text!r}, {days} days)")
    return offset


def period_text(offset: pd.DateOffset) -> str:
    """``pd.DateOffset(months=3)`` -> ``3M`` (the inverse of :func:`parse_period`)."""
    for unit, name in PERIOD_UNITS.items():
        n = offset.kwds.get(name)
        if n:
            return f"{n}{unit}"
    return str(offset)


def parse_date(text: str, option: str) -> pd.Timestamp:
    """A calendar date written YYYY-MM-DD."""
    if not DATE_PATTERN.fullmatch(str(text).strip()):
        raise RecoupError(f"{option} must be a date YYYY-MM-DD (got {text!r})")
    try:
        return pd.Timestamp(str(text).strip())
    except ValueError:
        raise RecoupError(f"{option} must be a date YYYY-MM-DD (got {text!r}, not a calendar date)") from None


def make_origins(start: pd.Timestamp, end: pd.Timestamp, step: pd.DateOffset) -> list[pd.Timestamp]:
    """``start``, ``start + step``, ``start + 2 step`` ... up to ``end`` (inclusive), at most :data:`MAX_ORIGINS`."""
    if end < start:
        raise RecoupError(f"--to {end.date()} is before --from {start.date()}")
    out: list[pd.Timestamp] = []
    k = 0
    while (origin := start + step * k) <= end:  # multiples of the step from --from: month ends do not drift
        out.append(pd.Timestamp(origin))
        if len(out) > MAX_ORIGINS:
            raise RecoupError(
                f"--from {start.date()} --to {end.date()} every --step {period_text(step)} makes more than "
                f"{MAX_ORIGINS} origins (each trains a model); take a longer --step or a shorter range"
            )
        k += 1
    return out


def check_origins(
    origins: list[pd.Timestamp], window: pd.DateOffset, first: pd.Timestamp, last: pd.Timestamp, delay_days: int
) -> None:
    """Each origin needs history before it (claims paid more than ``delay_days`` earlier to learn from:
    ``training.lag.label_delay_days``) and its whole window within the data (submitted by ``last``, the history's
    last date); one line naming the origin if not."""
    delay = pd.Timedelta(days=delay_days)
    for o in origins:
        if o - first <= delay:
            raise RecoupError(
                f"origin {o.date()} leaves {(o - first).days} days of history before it (the first claim is of "
                f"{first.date()}): training as of it needs claims paid more than {delay_days} days earlier; "
                f"start --from after {(first + delay).date()}"
            )
        end = o + window
        if end > last:
            raise RecoupError(
                f"origin {o.date()}: its {period_text(window)} window ends {end.date()}, after the history's last "
                f"date {last.date()}; end --to by {(last - window).date()} or take a shorter --window"
            )


# ---------------------------------------------------------------------------------------------- one origin
def _finite(d: dict) -> dict:
    """The figures of a metrics dict (per-cause precision and recall left out), NaN as None (JSON)."""
    out = {}
    for k, v in d.items():
        if k.startswith(("cause_precision_", "cause_recall_")):
            continue
        out[k] = float(v) if v is not None and np.isfinite(v) else None
    return out


def _ratios(model: dict, oracle: dict) -> dict[str, float]:
    keys = [*RATIO_KEYS, *(k for k in model if k.startswith("dollars_at_"))]
    return {
        k: model[k] / oracle[k]
        for k in keys
        if model.get(k) is not None and oracle.get(k) is not None and np.isfinite(oracle[k]) and oracle[k] > 0
    }


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """Mean prediction and observed rate in equal-count bins (the bins of the ECE)."""
    order = np.argsort(p, kind="stable")
    chunks = [c for c in np.array_split(order, bins) if len(c)]
    return {"predicted": [float(p[c].mean()) for c in chunks], "observed": [float(y[c].mean()) for c in chunks]}


def backtest_origin(
    history: History,
    oracle: pd.DataFrame | None,
    origin: pd.Timestamp,
    window: pd.DateOffset | pd.Timedelta,
    cfg: dict,
    feats: FeatureResult | None = None,
) -> dict:
    """Train as of ``origin``, score the claims submitted in (origin, origin + window], measure model and oracle.

    ``oracle``: the generator's oracle indexed by claim_id (``true_probability``), or None. ``feats``: the full
    history's point-in-time features when already built (they do not depend on the origin)."""
    from training.evaluate import evaluate_history
    from training.metrics import observable_share, oracle_metrics
    from training.train import train_model

    capacities = sorted({*cfg["capacities"], REPORTED_CAPACITY})
    t0 = time.perf_counter()
    result = train_model(history, as_of=origin, config=cfg)
    train_s = time.perf_counter() - t0
    meta, s = result.bundle.meta, result.data_summary
    since, until = origin + pd.Timedelta(days=1), origin + window
    horizon = pd.Timedelta(days=int(meta["horizon_days"]))
    c = history.claims
    paid = c[c["submitted_date"].between(since, until) & c["paid_date"].notna()]
    matured_share = float((paid["paid_date"] + horizon <= history.last_date).mean()) if len(paid) else 0.0
    t1 = time.perf_counter()
    ev = evaluate_history(
        result.bundle, history, str(since.date()), str(until.date()), capacities=capacities, feats=feats
    )
    scored, m = ev["scored"], ev["metrics"]
    row = {
        "as_of": str(origin.date()),
        "window_requested": [str(since.date()), str(until.date())],
        "window": ev["window"],  # first and last submission date of the scored claims
        "window_paid_matured_share": round(matured_share, 4),  # the rest is left out (its label is not known yet)
        "history_days_before_as_of": int((origin - c["submitted_date"].min()).days),
        "split_dates": meta["split_dates"],
        "train_matured_claims": int(s["matured"]),
        "train_matured_positives": int(round(s["matured"] * s["positive_rate_matured"])),
        "train_positives": int(s["train_positives"]),
        "train_slices": {k: int(s.get(f"n_{k}", 0)) for k in ("train", "valid", "test")},
        "trees": int(meta["n_trees_likelihood"]),
        "calibration": meta["calibration"]["kind"],
        "warnings": list(s.get("warnings", [])),
        "window_claims": int(m["n"]),
        "window_positives": int(m["positives"]),
        "model": _finite(m),
        # against the labels as known: probability x F(follow-up) for claims still followed (observable_share)
        "reliability": reliability(
            scored["label"].to_numpy(), scored["probability"].to_numpy() * observable_share(scored)
        ),
    }
    o = None if oracle is None else oracle.reindex(scored.index)
    if o is not None and o["true_probability"].notna().all():
        om = _finite(oracle_metrics(scored, o, capacities))
        row["oracle"] = om
        row["ratio"] = _ratios(row["model"], om)
    elif o is not None:
        log.warning("origin %s: the oracle lacks some of the window's claims; no oracle figures", row["as_of"])
    row["train_s"] = round(train_s, 1)
    row["evaluate_s"] = round(time.perf_counter() - t1, 1)
    return row


def run_backtest(
    history: History,
    oracle: pd.DataFrame | None,
    origins: list[pd.Timestamp],
    window: pd.DateOffset | pd.Timedelta,
    cfg: dict,
    on_origin: Callable[[int, dict], None] | None = None,
) -> list[dict]:
    """:func:`backtest_origin` for each origin, the features built once; a log line per stage with an ETA;
    ``on_origin(i, row)`` after each. A failing origin is named in the one-line error."""
    from features.pipeline import build_feature_table

    log.info(
        "building point-in-time features of the %d claims once (they do not depend on the origin)", len(history.claims)
    )
    feats, _ = build_feature_table(history)
    rows: list[dict] = []
    t0 = time.perf_counter()
    n = len(origins)
    for i, origin in enumerate(origins):
        log.info(
            "origin %d/%d %s: training as of it, then scoring (%s, %s]",
            i + 1,
            n,
            origin.date(),
            origin.date(),
            (origin + window).date(),
        )
        try:
            row = backtest_origin(history, oracle, origin, window, cfg, feats)
        except RecoupError as exc:
            raise RecoupError(f"origin {origin.date()} ({i + 1}/{n}): {exc}") from None
        rows.append(row)
        elapsed = time.perf_counter() - t0
        eta = elapsed / (i + 1) * (n - i - 1)
        m = row["model"]
        log.info(
            "origin %d/%d %s: trained %.1f s (%s train positives), scored %.1f s (%s claims, %s positives); "
            "ROC-AUC %s PR-AUC %s ECE %s; ETA %.0f s",
            i + 1,
            n,
            row["as_of"],
            row["train_s"],
            f"{row['train_positives']:,}",
            row["evaluate_s"],
            f"{row['window_claims']:,}",
            f"{row['window_positives']:,}",
            _fmt(m["roc_auc"]),
            _fmt(m["pr_auc"]),
            _fmt(m["ece"]),
            eta,
        )
        if on_origin is not None:
            on_origin(i, row)
    return rows


# ---------------------------------------------------------------------------------------------- table
def _fmt(v: float | None, key: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.0f}" if key.startswith("dollars") else f"{v:.4f}"


def format_table(rows: list[dict], markdown: bool = False) -> str:
    """One line per origin: window, training data, window claims, matured share, model / oracle / ratio."""
    has_oracle = any("oracle" in r for r in rows)
    head = ["origin", "window", "train n/pos", "window n/pos", "matured"]
    for k in TABLE_KEYS:
        head += [f"{k} model"] + ([f"{k} oracle"] + ([f"{k} ratio"] if k != "ece" else []) if has_oracle else [])
    body = []
    for r in rows:
        line = [
            r["as_of"],
            "..".join(r["window"]),
            f"{r['train_slices']['train']:,}/{r['train_positives']:,}",
            f"{r['window_claims']:,}/{r['window_positives']:,}",
            f"{r['window_paid_matured_share']:.1%}",
        ]
        for k in TABLE_KEYS:
            line.append(_fmt(r["model"].get(k), k))
            if has_oracle:
                line.append(_fmt(r.get("oracle", {}).get(k), k))
                if k != "ece":
                    ratio = r.get("ratio", {}).get(k)
                    line.append("-" if ratio is None else f"{ratio:.3f}")
        body.append(line)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(out + ["| " + " | ".join(b) + " |" for b in body])
    w = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    return "\n".join("  ".join(c.rjust(w[i]) for i, c in enumerate(line)) for line in [head, *body])


LEGEND = (
    "origin = the as-of date of training; window = first..last submission date of the scored claims (submitted "
    "after the origin, within the window); train n/pos = claims / positives of the model's train slice; window "
    "n/pos = claims scored / recouped; matured = share of the window's paid claims whose horizon ended by the "
    "history's last date (the others are scored when followed at least the model's minimum follow-up, against "
    "probability x F(follow-up); see docs/training.md); dollars_at_5pct = recouped dollars in the top "
    "5% of the window by expected dollars; ECE over 10 equal-count bins."
)


def markdown_report(result: dict) -> str:
    """The backtest as a markdown page: parameters, legend, table."""
    p = result["params"]
    head = (
        f"# Backtest {p['from']}..{p['to']} every {p['step']}, window {p['window']}, horizon {p['horizon_days']} "
        f"days\n\nData: `{p['data']}` ({result['history']['claims']:,} claims, {result['history']['first']}.."
        f"{result['history']['last']}); {len(result['origins'])} origins; {result['total_s']} s.\n\n"
    )
    warned = [f"- {r['as_of']}: {w}" for r in result["origins"] for w in r.get("warnings", [])]
    tail = "\n\nTraining warnings:\n\n" + "\n".join(warned) + "\n" if warned else "\n"
    return head + LEGEND + "\n\n" + format_table(result["origins"], markdown=True) + tail


# ---------------------------------------------------------------------------------------------- plots
def plot_backtest(rows: list[dict], path: Path) -> Path:
    """One PNG: ROC-AUC, PR-AUC, dollars at 5%, ECE per origin (model and oracle), model/oracle ratios and the
    calibration of each origin's window."""
    from features.figures import figure

    x = pd.to_datetime([r["as_of"] for r in rows])
    fig, axes = figure(2, 3, figsize=(15, 8.5))
    titles = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "dollars_at_5pct": "Dollars captured, 5% review", "ece": "ECE"}
    for ax, k in zip(axes.flat[:4], TABLE_KEYS):
        ax.plot(x, [r["model"].get(k) for r in rows], "o-", label="model")
        if any("oracle" in r for r in rows):
            ax.plot(x, [r.get("oracle", {}).get(k) for r in rows], "s--", label="oracle")
        ax.set(title=titles[k], xlabel="origin (as of)")
        ax.legend()
    ax = axes.flat[4]
    if any(r.get("ratio") for r in rows):
        for k in ("roc_auc", "pr_auc", "dollars_at_5pct"):
            ax.plot(x, [r.get("ratio", {}).get(k) for r in rows], "o-", label=titles[k])
        ax.axhline(1.0, ls=":", color="grey")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no oracle.csv in the data", ha="center", va="center", transform=ax.transAxes)
    ax.set(title="Model / oracle", xlabel="origin (as of)")
    ax = axes.flat[5]
    hi = 1e-6
    for r in rows:
        rel = r["reliability"]
        ax.plot(rel["predicted"], rel["observed"], "o-", ms=3, label=r["as_of"])
        hi = max(hi, *rel["predicted"], *rel["observed"])
    ax.plot([0, hi * 1.05], [0, hi * 1.05], ":", color="grey", label="perfect")
    ax.set(title="Calibration per window", xlabel="mean predicted", ylabel="observed rate")
    ax.legend(fontsize=7)
    for a in axes.flat[:5]:
        if len(x) <= 12:  # a tick at each origin
            a.set_xticks(x, [d.strftime("%Y-%m-%d") for d in x])
        a.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)  # the caller writes atomically
    return path


def html_report(result: dict, png: bytes) -> str:
    """A self-contained HTML page: parameters, the table and the figure (embedded)."""
    p = result["params"]
    rows = format_table(result["origins"], markdown=True).splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows if not line.startswith("|---")]
    table = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cells[0]) + "</tr>\n"
    table += "\n".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in cells[1:])
    title = f"Backtest {p['from']}..{p['to']} every {p['step']}, window {p['window']}"
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>"
        + html.escape(title)
        + "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p>Horizon {p['horizon_days']} days; data {html.escape(str(p['data']))} "
        f"({result['history']['claims']:,} claims, {result['history']['first']}..{result['history']['last']}); "
        f"{len(result['origins'])} origins in {result['total_s']} s.</p>\n"
        f"<table>\n{table}\n</table>\n<p>{html.escape(LEGEND)}</p>\n"
        f"<img alt='metrics per origin' src='data:image/png;base64,{base64.b64encode(png).decode()}'>\n"
        "</body></html>\n"
    )


def write_outputs(tmp: Path, result: dict) -> None:
    """The output folder's files (``FILES``) into ``tmp``, each written atomically."""
    from features.outputs import write_file, write_text

    write_text(tmp / "backtest.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    write_text(tmp / "backtest.md", markdown_report(result))
    write_file(tmp / "backtest.png", lambda p: plot_backtest(result["origins"], p))
    write_text(tmp / "backtest.html", html_report(result, (tmp / "backtest.png").read_bytes()))


# ---------------------------------------------------------------------------------------------- MLflow
def origin_metrics(row: dict) -> dict[str, float]:
    """The figures of one origin logged to MLflow: model, ``oracle_*``, ``ratio_*``, counts."""
    out = {k: v for k, v in row["model"].items() if v is not None and k != "n"}
    out.update({f"oracle_{k}": v for k, v in row.get("oracle", {}).items() if v is not None and k != "n"})
    out.update({f"ratio_{k}": v for k, v in row.get("ratio", {}).items()})
    out.update(
        claims=row["window_claims"],
        train_positives=row["train_positives"],
        matured_share=row["window_paid_matured_share"],
        train_s=row["train_s"],
    )
    return {k: float(v) for k, v in out.items()}


class MlflowLog:
    """One parent run in the ``recoup-backtest`` experiment: params; per origin the metrics at step = origin index
    and a nested run (tags ``as_of``, ``window``); at the end the output folder as artifacts. No model is logged or
    registered."""

    def __init__(self, params: dict):
        from training.registry import open_mlflow

        self.params = params
        self.mlflow = open_mlflow()
        self.run = None
        self.experiment_id = ""

    def __enter__(self) -> MlflowLog:
        from training.registry import experiment_id

        p = self.params
        name = f"backtest-{p['from']}-{p['to']}-{p['step']}"
        self.experiment_id = experiment_id(self.mlflow, EXPERIMENT)
        self.run = self.mlflow.start_run(experiment_id=self.experiment_id, run_name=name)
        self.mlflow.log_params(p)
        self.mlflow.set_tag("kind", "backtest")
        return self

    def origin(self, i: int, row: dict) -> None:
        metrics = origin_metrics(row)
        self.mlflow.log_metrics(metrics, step=i)
        with self.mlflow.start_run(experiment_id=self.experiment_id, run_name=f"origin-{row['as_of']}", nested=True):
            self.mlflow.set_tags({"as_of": row["as_of"], "window": "..".join(row["window"]), "origin_index": i})
            self.mlflow.log_metrics(metrics)

    def artifacts(self, folder: Path) -> None:
        for name in FILES:
            self.mlflow.log_artifact(str(folder / name))

    def __exit__(self, *exc) -> None:
        self.mlflow.end_run("FINISHED" if exc[0] is None else "FAILED")


# ---------------------------------------------------------------------------------------------- command
def backtest_cli(
    data: Path,
    start: str,
    end: str,
    step: str,
    window: str = "6M",
    horizon_days: int | None = None,
    config: Path | None = None,
    n_estimators: int | None = None,
    out: Path | None = None,
    overwrite: bool = False,
) -> dict:
    """Entry point of `recoup backtest`: validate everything, then run the origins; print the table, write
    ``out`` (default ``RECOUP_HOME/backtest``) whole and log to MLflow. Returns the result (as in backtest.json)."""
    from features.contract import load_history
    from features.model.outcomes import read_oracle
    from features.outputs import check_dir_output, write_dir
    from features.settings import recoup_home
    from training.config import load_config, with_n_estimators

    t0 = time.perf_counter()
    first_origin, last_origin = parse_date(start, "--from"), parse_date(end, "--to")
    step_off, window_off = parse_period(step, "--step"), parse_period(window, "--window")
    origins = make_origins(first_origin, last_origin, step_off)
    cfg = with_n_estimators(load_config(config, {"horizon_days": horizon_days}), n_estimators)
    out = Path(out) if out is not None else recoup_home() / "backtest"
    check_dir_output(out, COMMAND, overwrite)
    log.info("loading %s", data)
    history = load_history(data, require_recoupments=True)
    first, last = history.claims["submitted_date"].min(), history.last_date
    check_origins(origins, window_off, first, last, label_delay_days(cfg["labels"], int(cfg["horizon_days"])))
    oracle = read_oracle(data)
    params = {
        "data": str(data),
        "from": str(first_origin.date()),
        "to": str(last_origin.date()),
        "step": period_text(step_off),
        "window": period_text(window_off),
        "horizon_days": int(cfg["horizon_days"]),
        "origins": len(origins),
        "n_estimators": int(cfg["likelihood"]["n_estimators"]),
        "calibration": str(cfg["calibration"]),
        "oracle": oracle is not None,
    }
    log.info(
        "backtest: %d origins %s..%s every %s, window %s",
        len(origins),
        params["from"],
        params["to"],
        params["step"],
        params["window"],
    )
    with MlflowLog(params) as ml:
        rows = run_backtest(history, oracle, origins, window_off, cfg, on_origin=ml.origin)
        result = {
            "params": params,
            "history": {"claims": int(len(history.claims)), "first": str(first.date()), "last": str(last.date())},
            "date": pd.Timestamp.now().isoformat(timespec="seconds"),
            "total_s": round(time.perf_counter() - t0, 1),
            "mlflow_run_id": ml.run.info.run_id if ml.run else None,
            "origins": rows,
        }
        write_dir(out, COMMAND, lambda tmp: write_outputs(tmp, result), overwrite=overwrite, files=FILES)
        ml.artifacts(out)
    print(format_table(rows))
    print(f"wrote {out}/{{{','.join(FILES)}}}; MLflow run {result['mlflow_run_id']} (experiment {EXPERIMENT})")
    return result
