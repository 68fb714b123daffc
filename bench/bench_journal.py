"""Journal figures: the replay at start of a journal at the compaction bound, compaction, snapshot start.

    RECOUP_HOME=work .venv/bin/python bench/bench_journal.py --data DIR --bundle-dir BUNDLE \
        [--claims 20000] [--runs 3] [--out bench_journal.json]

Records ``--claims`` claims (recent claims of DIR, renamed and moved after its end; 100 per call, as
``/score_batch`` would) into a fresh journal folder with compaction off, then times, ``--runs`` times:
a start that replays the whole journal (``Scorer.from_dir(..., journal_dir=...)``: what a restarted
worker does in ``__init__``), a compaction of it into a snapshot, and a start from that snapshot. Also
the journal's bytes per claim and a start without any journal (the model's own state).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from features.contract import load_history
from serving.journal import model_key
from serving.schemas import Claim, claims_to_frames
from serving.scorer import Scorer
from tests.helpers.claims import recent_claims


def _record(scorer: Scorer, history, n: int, per_call: int = 100, pool: int = 1000) -> None:
    done, k = 0, 0
    while done < n:
        claims = recent_claims(history, min(pool, n - done), f"BJ{k}", shift_days=1 + k % 300)
        for s in range(0, len(claims), per_call):
            models = [Claim.model_validate(c) for c in claims[s : s + per_call]]
            conv = claims_to_frames(models)
            scorer.score_claims(conv.claims, conv.lines, explain=False, record=True, as_sent=models)
        done += len(claims)
        k += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--bundle-dir", required=True)
    ap.add_argument("--claims", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out")
    a = ap.parse_args()
    history = load_history(a.data)
    root = Path(tempfile.mkdtemp(prefix="bench_journal_"))
    try:
        t0 = time.perf_counter()
        base = Scorer.from_dir(a.bundle_dir)
        base_load = time.perf_counter() - t0
        w = Scorer.from_dir(a.bundle_dir, journal_dir=root)
        w.journal.compact_claims = 10**12
        t0 = time.perf_counter()
        _record(w, history, a.claims)
        record_s = time.perf_counter() - t0
        folder = root / model_key(a.bundle_dir)
        journal_bytes = (folder / "journal-0.bin").stat().st_size
        w.journal.close()
        saved = folder.parent / "saved"
        shutil.copytree(folder, saved)
        replay, compact, snap_start = [], [], []
        for _ in range(a.runs):
            shutil.rmtree(folder)
            shutil.copytree(saved, folder)
            t0 = time.perf_counter()
            s = Scorer.from_dir(a.bundle_dir, journal_dir=root)
            replay.append(time.perf_counter() - t0)
            assert s.journal.replayed == a.claims, s.journal.replayed
            t0 = time.perf_counter()
            with s.journal.exclusive():
                s.journal.compact(s.state)
            compact.append(time.perf_counter() - t0)
            s.journal.close()
            t0 = time.perf_counter()
            s2 = Scorer.from_dir(a.bundle_dir, journal_dir=root)
            snap_start.append(time.perf_counter() - t0)
            assert s2.journal.replayed == 0 and s2.journal.gen == 1
            s2.journal.close()
        snapshot_bytes = sum(p.stat().st_size for p in (folder / "snapshot-1").iterdir())
        out = {
            "claims": a.claims,
            "base_claims": len(history.claims),
            "record_claims_per_s": round(a.claims / record_s),
            "journal_bytes_per_claim": round(journal_bytes / a.claims),
            "start_without_journal_s": round(base_load, 2),
            "start_replaying_journal_s": [round(x, 2) for x in replay],
            "replay_ms_per_claim": round(1000 * statistics.median(replay) / a.claims, 3),
            "compaction_s": [round(x, 2) for x in compact],
            "start_from_snapshot_s": [round(x, 2) for x in snap_start],
            "snapshot_mb": round(snapshot_bytes / 2**20, 1),
        }
        del base
        print(json.dumps(out, indent=1))
        if a.out:
            Path(a.out).write_text(json.dumps(out, indent=1))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
