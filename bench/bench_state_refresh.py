"""What a state that keeps learning is worth (issue #13, serving/refresh.py), and what a refresh costs.

Usage::

    .venv/bin/python bench/bench_state_refresh.py --claims 100000 --seed 11 --years 4 --as-of-days-before-end 581

Train as of a date (``train_model``), then score the claims submitted in the next ``--window-days`` online,
one day's claims per call (``Scorer.score_claims``, no explanations), in submission order, four ways:

- ``frozen``: the state as trained, nothing recorded (``record=false``);
- ``recorded``: scored claims recorded (the service's default today), no refresh;
- ``refreshed``: recorded, and before each day the state refreshed with what the history knows up to the
  day before (``serving.refresh.refresh``, ``now`` = the day before: new recoupments, claims not scored);
- ``refresh_only``: nothing recorded, the claims and recoupments reach the state only by the daily refresh.

Labels from the full history (recouped within the horizon after payment; matured claims only); ROC-AUC and
PR-AUC (average precision) per arm. Then the refresh time for N new claims (their recoupments too) on a
fresh state with a journal (as the service runs it), and the time to read the whole history folder.
Writes ``bench/results/state_refresh_<claims>k_s<seed>.{json,md}``; progress lines go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARMS = ("frozen", "recorded", "refreshed", "refresh_only")


class MemorySource:
    """A refresh source over a history held in memory (the folder is read once, not every day)."""

    def __init__(self, history, limit: int | None = None):
        self.h, self.limit = history, limit

    def describe(self) -> str:
        return "bench history in memory"

    def read(self, after, upto):
        from serving.refresh import in_window

        inc = in_window(self.h.claims, self.h.claim_lines, self.h.recoupments, after, upto)
        if self.limit is not None:  # the first N new claims and the recoupments of those
            inc.claims = inc.claims.sort_values("submitted_date", kind="stable").head(self.limit)
            inc.lines = inc.lines[inc.lines["claim_id"].isin(inc.claims["claim_id"])]
            inc.recoupments = inc.recoupments[inc.recoupments["claim_id"].isin(inc.claims["claim_id"])]
        return inc


def score_forward(result, state_dir: Path, history, as_of, window_days: int, arm: str) -> pd.Series:
    """Probabilities of the forward window's claims, scored day by day in one arm."""
    from features.engine.state import HistoryState
    from serving.refresh import refresh
    from serving.scorer import Scorer

    scorer = Scorer(result.bundle, HistoryState.load(state_dir))
    c = history.claims
    days = pd.date_range(as_of + pd.Timedelta(days=1), as_of + pd.Timedelta(days=window_days), freq="D")
    source = MemorySource(history)
    out: dict[str, float] = {}
    record = arm in ("recorded", "refreshed")
    refresh_s = []
    for day in days:
        if arm in ("refreshed", "refresh_only"):
            t = time.perf_counter()
            info = refresh(scorer, source, now=day - pd.Timedelta(days=1))
            assert info["outcome"] == "ok", info
            refresh_s.append(time.perf_counter() - t)
        batch = c[c["submitted_date"] == day]
        if not len(batch):
            continue
        lines = history.claim_lines[history.claim_lines["claim_id"].isin(batch["claim_id"])]
        recs = scorer.score_claims(batch, lines, explain=False, record=record)
        out.update({r["claim_id"]: r["recoupment_probability"] for r in recs})
    if refresh_s:
        logging.info("%s: daily refresh %.3f s median, %.3f s max", arm, np.median(refresh_s), max(refresh_s))
    return pd.Series(out)


def refresh_times(result, state_dir: Path, history, as_of, sizes: list[int]) -> list[dict]:
    """Seconds to refresh a fresh state (with a journal) with N new claims and their recoupments."""
    from features.rulebook import load_rulebook
    from serving.journal import RecordJournal
    from serving.refresh import refresh
    from serving.scorer import Scorer

    rows = []
    rb = load_rulebook()
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            scorer = Scorer(result.bundle, None, rb)
            scorer.journal = RecordJournal(Path(tmp) / "journal")
            scorer.state = scorer.journal.open_state(state_dir, rb)
            info = refresh(scorer, MemorySource(history, limit=n))
            again = refresh(scorer, MemorySource(history, limit=n))
            scorer.journal.close()
        rows.append(
            {
                "new_claims": info["added_claims"],
                "new_recoupments": info["added_recoupments"],
                "refresh_s": info["seconds"],
                "again_s": again["seconds"],
                "again_added": again["added_claims"] + again["added_recoupments"],
            }
        )
        logging.info(
            "refresh of %d new claims: %.2f s (again: %.2f s, nothing added)", n, info["seconds"], again["seconds"]
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--claims", type=int, default=60_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--years", type=float, help="history length (start = end - years); default: the generator's")
    ap.add_argument("--as-of-days-before-end", type=int, default=581)
    ap.add_argument("--window-days", type=int, default=182)
    ap.add_argument("--sizes", default="100,1000,10000", help="new-claim counts for the refresh timing")
    ap.add_argument("--arms", default=",".join(ARMS), help="the arms to score (none: only the timing)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    for name in ("recoup.refresh", "features", "training", "serving"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    from sklearn.metrics import average_precision_score, roc_auc_score

    from features.contract import load_history, write_history
    from features.model.outcomes import make_labels
    from features.sources.synthetic.generate import GeneratorConfig, generate_history
    from training.config import load_config
    from training.train import train_model

    load0 = os.getloadavg()
    gc = GeneratorConfig(n_claims=args.claims, seed=args.seed)
    if args.years:
        gc.start_date = str((pd.Timestamp(gc.end_date) - pd.DateOffset(days=round(args.years * 365.25) - 1)).date())
    logging.info("generating %d claims (seed %d)", gc.n_claims, gc.seed)
    history, _ = generate_history(gc)
    end = history.last_date
    as_of = end - pd.Timedelta(days=args.as_of_days_before_end)
    cfg = load_config()
    logging.info("training as of %s", as_of.date())
    result = train_model(history, as_of=as_of, config=cfg)
    horizon = int(result.bundle.meta["horizon_days"])
    labels = make_labels(history, end, horizon)
    res: dict = {
        "command": " ".join(sys.argv[1:]),
        "claims": args.claims,
        "seed": args.seed,
        "as_of": str(as_of.date()),
        "window_days": args.window_days,
        "arms": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = Path(tmp) / "state"
        result.state.save(state_dir)
        arms = [a for a in args.arms.split(",") if a in ARMS]
        for arm in arms:
            t0 = time.perf_counter()
            p = score_forward(result, state_dir, history, as_of, args.window_days, arm)
            lab = labels.reindex(p.index)
            ok = lab["mature"].fillna(False).astype(bool).to_numpy()
            y, s = lab["label"].to_numpy()[ok].astype(int), p.to_numpy()[ok]
            res["arms"][arm] = {
                "scored": int(len(p)),
                "labelled": int(ok.sum()),
                "positives": int(y.sum()),
                "roc_auc": round(float(roc_auc_score(y, s)), 4),
                "pr_auc": round(float(average_precision_score(y, s)), 4),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            logging.info("%s: %s", arm, res["arms"][arm])
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
        res["refresh_times"] = refresh_times(result, state_dir, history, as_of, sizes)
        folder = Path(tmp) / "history"
        write_history(history, folder)
        t = time.perf_counter()
        load_history(folder)
        res["read_folder_s"] = round(time.perf_counter() - t, 2)
    frozen = res["arms"].get("frozen")
    for arm in arms:
        for k in ("roc_auc", "pr_auc"):
            if frozen is not None and arm != "frozen":
                res["arms"][arm][f"{k}_vs_frozen"] = round(res["arms"][arm][k] - frozen[k], 4)
    res["load_before_after"] = [round(load0[0], 2), round(os.getloadavg()[0], 2)]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = (
        args.out / f"state_refresh_{args.claims // 1000}k_s{args.seed}_{args.years or 3:g}y{'' if arms else '_timing'}"
    )
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2))
    md = [
        "| arm | ROC-AUC | PR-AUC | ROC vs frozen | PR vs frozen | labelled (positives) |",
        "|---|---|---|---|---|---|",
    ]
    for arm in arms:
        a = res["arms"][arm]
        md.append(
            f"| {arm} | {a['roc_auc']} | {a['pr_auc']} | {a.get('roc_auc_vs_frozen', 0):+} | "
            f"{a.get('pr_auc_vs_frozen', 0):+} | {a['labelled']} ({a['positives']}) |"
        )
    md += ["", "| new claims | new recoupments | refresh s | again s |", "|---|---|---|---|"]
    md += [
        f"| {r['new_claims']} | {r['new_recoupments']} | {r['refresh_s']} | {r['again_s']} |"
        for r in res["refresh_times"]
    ]
    md += ["", f"reading the whole history folder: {res['read_folder_s']} s"]
    stem.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
