"""The scorer: model bundle + history state -> SCORE records. Used by the service and batch scoring alike.

No BentoML here. Two entry points share :meth:`Scorer.score_features`:

- :meth:`Scorer.score_claims` scores new claims against the scorer's own (online) history state;
- :func:`serving.batch.score_history` builds features for a whole history (each claim as of its
  submission date) and calls :meth:`Scorer.score_features` on them.

Online, a claim id the state already holds is a retry or a replacement (the ``recorded`` field of each
online SCORE, :data:`RECORDED`): the same content is scored as it was the first time (at its recorded
place in the history, so it never sees itself) and not recorded again; new content is scored after
everything (never matching its own previous version) and, with ``record``, supersedes it
(:meth:`features.engine.state.HistoryState.add_claims`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson
import pandas as pd

from features.model.bundle import ModelBundle, expected_amount
from features.contract import CAUSES
from features.engine.arrays import range_indexed as _range_indexed
from features.engine.hits import HIT_COLUMNS
from features.pipeline import FeatureResult, compute_features
from features.rulebook import Rulebook, load_rulebook
from features.engine.state import HistoryState
from serving.reasons import rule_hit_records, top_reasons

if TYPE_CHECKING:
    from serving.journal import RecordJournal
    from serving.schemas import Claim

log = logging.getLogger(__name__)
SCORE_FIELDS = [
    "claim_id",
    "recoupment_probability",
    "risk_band",
    "expected_recoupment_amount",
    "causes",
    "reasons",
    "rule_hits",
    "model_version",
]
#: the online SCORE's additive ``recorded`` field: what happened to the claim in the service's history
RECORDED = {
    "new": "recorded (first time this claim id is seen)",
    "already_recorded": "the same claim id with the same content was recorded before (a retry): scored as "
    "then, not recorded again",
    "replaced": "the claim id was recorded before with other content: this version supersedes it",
    "not_recorded": "record was false (what-if scoring)",
}
#: the low 32 bits of an event time are the claim's place in submission order (features.engine.events)
_ORDER_MASK = (1 << 32) - 1
#: CLAIM fields that are lists but may be sent as "a;b" text
_LIST_FIELDS = ("diagnosis_codes", "modifiers", "diagnosis_pointers")


def _listed(v):
    if isinstance(v, str):
        v = [x for x in (p.strip() for p in v.split(";")) if x]
    return [str(x) for x in v] if isinstance(v, list) else v


def content_hashes(sent: list[dict]) -> np.ndarray:
    """A 63-bit hash (never 0) of each claim's content: its CLAIM object as validated and dumped
    (``Claim.model_dump(mode="json", exclude_none=True)``: codes as text, spaces stripped, numbers as
    floats), without ``claim_id``, lists as lists, lines in line-number order. A retry has the hash of
    the first request however its JSON was written; ~10 us per claim with the dump."""
    out = np.empty(len(sent), dtype=np.int64)
    for i, c in enumerate(sent):
        claim = {k: _listed(v) if k in _LIST_FIELDS else v for k, v in c.items() if k not in ("claim_id", "lines")}
        lines = sorted(
            ({k: _listed(v) if k in _LIST_FIELDS else v for k, v in ln.items()} for ln in c.get("lines") or []),
            key=lambda ln: str(ln.get("line_number")),
        )
        text = orjson.dumps([claim, lines], option=orjson.OPT_SORT_KEYS)
        h = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1
        out[i] = h or 1
    return out


def sent_claims(claims: pd.DataFrame, lines: pd.DataFrame, as_sent: Sequence[Claim | dict] | None) -> list[dict]:
    """The claims as CLAIM dicts: ``as_sent`` (Claim objects or dicts) dumped, else the typed frames
    turned back into CLAIM objects (~1.5 ms per claim)."""
    from serving.schemas import Claim, frames_to_claims

    if as_sent is None:
        return frames_to_claims(claims, lines)
    return [c.model_dump(mode="json", exclude_none=True) if isinstance(c, Claim) else c for c in as_sent]


#: the hits of claims without any finding (read only)
_NO_HITS = pd.DataFrame({c: pd.Series([], dtype=object) for c in HIT_COLUMNS})


class ScoreFrame:
    """Scores of many claims in columns (cheap), with reasons only where they were asked for.

    ``table`` (index claim_id: probability, band, expected amount, p_<cause>) is built on first use:
    :meth:`records` works from the arrays, so one claim does not pay for a DataFrame.
    """

    def __init__(
        self,
        table: pd.DataFrame | None = None,
        reasons: dict[str, list[dict]] | None = None,
        rule_hits: dict[str, list[dict]] | None = None,
        *,
        ids: pd.Index | None = None,
        probability: np.ndarray | None = None,
        risk_band: np.ndarray | None = None,
        amount: np.ndarray | None = None,
        cause_probabilities: np.ndarray | None = None,
    ):
        if table is None and ids is None:
            raise ValueError("ScoreFrame needs a table or the score arrays")
        self._table = table
        self.reasons = reasons if reasons is not None else {}
        self.rule_hits = rule_hits if rule_hits is not None else {}
        if table is not None:
            ids = table.index
            probability = table["recoupment_probability"].to_numpy()
            risk_band = table["risk_band"].to_numpy()
            amount = table["expected_recoupment_amount"].to_numpy()
            cause_probabilities = table[[f"p_{c}" for c in CAUSES]].to_numpy()
        self.ids, self.probability, self.risk_band = ids, probability, risk_band
        self.amount, self.cause_probabilities = amount, cause_probabilities

    @property
    def table(self) -> pd.DataFrame:
        if self._table is None:
            cols = {
                "recoupment_probability": self.probability,
                "risk_band": self.risk_band,
                "expected_recoupment_amount": self.amount,
            }
            cp = self.cause_probabilities
            assert cp is not None  # given with the other arrays when there is no table
            for j, c in enumerate(CAUSES):
                cols[f"p_{c}"] = cp[:, j]
            self._table = pd.DataFrame(cols, index=self.ids)
        return self._table

    def records(self, model_version: str) -> list[dict]:
        out = []
        pc = np.asarray(self.cause_probabilities, dtype=np.float64)
        order = np.argsort(-pc, axis=1, kind="stable")
        # sorted and rounded in numpy, then one tolist() each (np.round scales, rounds and scales back: in
        # rare near-halfway cases its last kept digit differs from round()'s; no difference in 2M random
        # values)
        causes = np.asarray(CAUSES, dtype=object)[order].tolist()
        pcl = np.round(np.take_along_axis(pc, order, axis=1), 6).tolist()
        prob = np.round(np.asarray(self.probability, dtype=np.float64), 6).tolist()
        band = np.asarray(self.risk_band).tolist()
        amount = np.round(np.asarray(self.amount, dtype=np.float64), 2).tolist()
        reasons, hits = self.reasons, self.rule_hits
        assert self.ids is not None  # from the table or given (checked in __init__)
        for i, cid in enumerate(self.ids.tolist()):
            out.append(
                {
                    "claim_id": cid,
                    "recoupment_probability": prob[i],
                    "risk_band": band[i],
                    "expected_recoupment_amount": amount[i],
                    "causes": [{"cause": c, "probability": p} for c, p in zip(causes[i], pcl[i])],
                    "reasons": reasons.get(cid, []),
                    "rule_hits": hits.get(cid, []),
                    "model_version": model_version,
                }
            )
        return out


def _explain_rows(explain: np.ndarray | bool, n: int) -> np.ndarray:
    """Positions of the rows that get reasons: all, none, or where the mask is true."""
    if isinstance(explain, (bool, np.bool_)):
        return np.arange(n) if explain else np.arange(0)
    return np.flatnonzero(explain)


class Scorer:
    """A loaded model version with its history state (None for batch work, which builds its own state and
    calls :meth:`score_features` only)."""

    def __init__(self, bundle: ModelBundle, state: HistoryState | None, rulebook: Rulebook | None = None):
        self.bundle = bundle
        self.state = state
        self.rulebook = rulebook or load_rulebook()
        self.lock = threading.Lock()  # the online state is updated in place
        self.refresh_lock = threading.Lock()  # one state refresh at a time (serving.refresh.single_flight)
        self.journal: RecordJournal | None = None  # recorded claims on disk (restarts, workers)

    @classmethod
    def from_dir(cls, bundle_dir: str | Path, journal_dir: str | Path | None = None) -> "Scorer":
        """The bundle and its state; with ``journal_dir`` the state is the latest snapshot of the model's
        journal folder there with its journal replayed, and recorded claims are journaled
        (serving/journal.py)."""
        bundle = ModelBundle.load(bundle_dir)
        if journal_dir is None:
            return cls(bundle, HistoryState.load(Path(bundle_dir) / "state"))
        from serving.journal import RecordJournal, model_key

        rulebook = load_rulebook()
        journal = RecordJournal(Path(journal_dir) / model_key(bundle_dir))
        scorer = cls(bundle, journal.open_state(Path(bundle_dir) / "state", rulebook), rulebook)
        scorer.journal = journal
        return scorer

    def close(self) -> None:
        """Compact what the journal holds into a snapshot and close it (service shutdown)."""
        with self.lock:
            j = self.journal
            if j is None:
                return
            assert self.state is not None  # a journal comes with a state (from_dir)
            with j.exclusive():
                self.state = state = j.catch_up(self.state, self.rulebook)
                j.compact(state)
            j.close()
            self.journal = None

    def warm_up(self) -> None:
        """Build the lazy lookups the first claim would otherwise wait for (the rulebook's code index,
        ~0.3 s; the ICD-10-CM map; the history state's key hash tables and coverage index)."""
        from features.pipeline import warm_up
        from features.rulebook.index import rule_index

        rule_index(self.rulebook).icd_status(np.array(["E119"], dtype=object))
        if self.state is not None:
            warm_up(self.state)

    @property
    def model_version(self) -> str:
        return str(self.bundle.meta.get("model_version", "unregistered"))

    # ------------------------------------------------------------------ model part
    def risk_band(self, p: np.ndarray) -> np.ndarray:
        bands = self.bundle.meta.get("risk_bands", {"medium": 0.05, "high": 0.2})
        return np.where(p >= bands["high"], "high", np.where(p >= bands["medium"], "medium", "low"))

    def score_features(
        self, feats: FeatureResult, claims: pd.DataFrame, explain: np.ndarray | bool = True
    ) -> ScoreFrame:
        """Probabilities, causes, dollars for every claim; reasons where ``explain`` is true.

        From the feature arrays when ``feats`` has them with plain-text categoricals (a few claims: no feature
        or hit frame is built unless there are hits), else from the feature frame; the same steps either way.
        """
        b = self.bundle
        a = getattr(feats, "arrays", None)
        X = None
        if a is not None and a.plain_categoricals():  # the frame would hold exactly these values
            ids, cats, names, mat = a.ids, a.cats, a.names, a.mat
            hits = feats.hits if a.n_hits() else _NO_HITS
        else:
            X = feats.X
            ids, hits = X.index.to_numpy(), feats.hits
            cats, names, mat = b.spec.frame_arrays(X)
        M = b.spec.transform_arrays(cats, names, mat) if b.numpy_ok() else b.spec.transform(feats.X)
        p = b.probability(M)
        cp = b.cause_probabilities(M)
        claims = _range_indexed(claims)
        amount = expected_amount(b, p, cp, claims)
        hit_recs = rule_hit_records(hits, claims, b.spec.unseen_arrays(ids, cats), self.rulebook)
        idx = _explain_rows(explain, len(M))
        reasons: dict[str, list[dict]] = {}
        if len(idx):
            every = len(idx) == len(M)
            contrib = b.contributions(M if every else (M[idx] if isinstance(M, np.ndarray) else M.iloc[idx]))
            if X is not None:
                view = X if every else X.iloc[idx]
            else:  # the feature frame's rows as dicts: categoricals first, then the numeric columns
                cols = [*cats, *names]
                cat_vals = list(zip(*[v.tolist() for v in cats.values()]))
                num_vals = mat.tolist()
                view = (
                    ids if every else ids[idx],
                    [dict(zip(cols, (*cat_vals[i], *num_vals[i]))) for i in idx.tolist()],
                )
            reasons = top_reasons(
                contrib,
                b.spec.feature_names_,
                view,
                hits,
                claims if every or len(claims) != len(M) else claims.iloc[idx],
                reference=b.meta.get("feature_reference"),
            )
        return ScoreFrame(
            reasons=reasons,
            rule_hits=hit_recs,
            ids=X.index if X is not None else pd.Index(ids, name="claim_id"),
            probability=p,
            risk_band=self.risk_band(p),
            amount=amount,
            cause_probabilities=cp,
        )

    # ------------------------------------------------------------------ online
    def score_claims(
        self,
        claims: pd.DataFrame,
        lines: pd.DataFrame,
        explain: bool = True,
        record: bool = True,
        as_sent: Sequence[Claim | dict] | None = None,
    ) -> list[dict]:
        """Score new claims against the online state; with ``record`` they join the state afterwards.
        Each SCORE gets the additive ``recorded`` field (:data:`RECORDED`).

        With a :attr:`journal`, the claims other workers recorded are applied first, and recorded claims
        are appended (serving/journal.py; the journal is compacted when due). ``as_sent`` (optional) are
        the same claims as CLAIM objects: their dumps are hashed (:func:`content_hashes`) and journaled;
        without them the frames are turned back into CLAIM objects (slower).
        """
        claims, lines = _range_indexed(claims), _range_indexed(lines)
        with self.lock:
            state = self.state
            assert state is not None  # online scoring: a scorer with its history state
            j = self.journal
            with j.exclusive() if j is not None and record else nullcontext():
                if j is not None:
                    self.state = state = j.catch_up(state, self.rulebook)
                status, parts, sent = self._features(state, claims, lines, record, as_sent)
                fresh = [i for i, st in enumerate(status) if st in ("new", "replaced")]
                if j is not None and fresh:
                    assert sent is not None  # recorded claims are dumped
                    j.append([sent[i] for i in fresh])
                    if j.due():
                        j.compact(state)
        out: list[dict] = [{}] * len(claims)
        for pos, part, feats in parts:
            recs = self.score_features(feats, part, explain).records(self.model_version)
            for i, rec in zip(pos, recs):
                rec["recorded"] = status[i]
                out[i] = rec
        return out

    def _features(
        self,
        state: HistoryState,
        claims: pd.DataFrame,
        lines: pd.DataFrame,
        record: bool,
        as_sent: Sequence[Claim | dict] | None,
    ) -> tuple[list[str], list, list[dict] | None]:
        """(status per claim, [(positions, claims, features), ...], the claims as CLAIM dicts): retries
        (same id and content as a recorded claim) at their recorded place, never recorded again; the
        others after everything, recorded when ``record``. Call under :attr:`lock` with :attr:`state`."""
        versions = state.versions(claims["claim_id"].astype(str).tolist())
        known = any(v is not None for v in versions)
        # the hash is kept for what is recorded, and compared for known ids (what-if of new claims: none)
        sent = sent_claims(claims, lines, as_sent) if record or known else None
        hashes = content_hashes(sent) if sent is not None else None
        status: list[str] = []
        retry: list[int] = []
        retry_order: list[int] = []  # their place in submission order
        for i, v in enumerate(versions):
            # a known id (v) was hashed: ``hashes is not None`` always holds with it
            if v is not None and hashes is not None and v[0] == hashes[i] and v[1] >= 0:
                status.append("already_recorded")
                retry.append(i)
                retry_order.append(v[1] & _ORDER_MASK)
            elif not record:
                status.append("not_recorded")
            else:
                status.append("new" if v is None else "replaced")
        if not retry:
            feats = compute_features(
                claims,
                lines,
                state,
                self.rulebook,
                record=record,
                cache={} if hashes is None else {"_content_hash": hashes},
            )
            return status, [(range(len(claims)), claims, feats)], sent
        assert hashes is not None  # retries are known ids: hashed
        parts = []
        retried = set(retry)
        rest = [i for i in range(len(claims)) if i not in retried]
        for pos, rec in ((retry, False), (rest, record)):
            if not pos:
                continue
            part = claims.iloc[pos].reset_index(drop=True)
            part_lines = lines[lines["claim_id"].isin(part["claim_id"])].reset_index(drop=True)
            order = None
            if pos is retry:  # at their recorded place
                order = np.array(retry_order, dtype=np.int64)
            feats = compute_features(
                part,
                part_lines,
                state,
                self.rulebook,
                order=order,
                record=rec,
                cache={"_content_hash": hashes[pos]},
            )
            parts.append((pos, part, feats))
        return status, parts, sent
