"""The history state: everything history features need, built from a claims history directory.

Storage choice: Parquet files plus an in-memory index (events sorted by key and time, with prefix
sums; see :mod:`features.events`). A query is a dictionary lookup plus a binary search — microseconds,
with no database process or driver — and the same arrays answer millions of training queries at once.
The state is saved next to the model (a folder of Parquet files and a JSON manifest) and updated in
memory with newly scored claims and new recoupments (appended to a small delta, merged on save).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.claim import SMALL, prepare_lines
from features.contract import History
from features.errors import RecoupError
from features.events import EventTable, Vocab
from features.history import (KEYED_ENTITIES, KeyCoder, Tables, build_tables, table_values, claim_entity_keys, claim_events,
                              recoupment_events)
from features.rulebook import Rulebook

UNKNOWN_SPECIALTY = "unknown"


def submission_order(claims: pd.DataFrame) -> np.ndarray:
    """Order of each claim in submission sequence: by submitted date, then by row position."""
    day = claims["submitted_date"].to_numpy(dtype="datetime64[D]").astype("int64")
    order = np.empty(len(claims), dtype=np.int64)
    order[np.lexsort((np.arange(len(claims)), day))] = np.arange(len(claims))
    return order


@dataclass
class HistoryState:
    """Event tables, claim keys, provider specialties and coverage spans, as of the last event."""

    tables: Tables  # dict of EventTable, with the key coder of the line tables (``tables.coder``)
    claim_keys: pd.DataFrame  # index claim_id; columns provider, patient, payer, specialty
    specialty_of: dict[str, str]
    coverage: pd.DataFrame | None
    next_order: int = 0
    extra_claim_keys: list[pd.DataFrame] = field(default_factory=list)
    _coverage_by_patient: dict | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_history(cls, history: History, rulebook: Rulebook, order: np.ndarray | None = None,
                     la: pd.DataFrame | None = None, cache: dict | None = None) -> "HistoryState":
        """Build the state holding every claim and recoupment of ``history``."""
        claims, lines = history.claims, history.claim_lines
        specialty_of = {}
        if history.providers is not None and len(history.providers):
            p = history.providers
            specialty_of = dict(zip(p["npi"].astype(str), p["taxonomy_code"].astype("string").fillna(UNKNOWN_SPECIALTY)))
        state = cls(tables={}, claim_keys=pd.DataFrame(), specialty_of=specialty_of,
                    coverage=history.coverage)
        order = submission_order(claims) if order is None else order
        specialty = state.specialty_for(claims)
        la = prepare_lines(claims, lines, rulebook) if la is None else la
        coder = KeyCoder()
        parts = [claim_events(claims, lines, la, specialty, order, cache, coder)]
        state.claim_keys = state._keys_frame(claims, specialty, la, cache)
        if history.recoupments is not None and len(history.recoupments):
            parts.append(recoupment_events(history.recoupments, state.claim_keys))
        state.tables = build_tables(parts, coder)
        del parts
        state.next_order = int(order.max()) + 1 if len(order) else 0
        return state

    @staticmethod
    def _keys_frame(claims: pd.DataFrame, specialty: np.ndarray, la, cache: dict | None = None) -> pd.DataFrame:
        keys = claim_entity_keys(claims, specialty, cache, la)
        ids = cache["claim_id"] if cache is not None and "claim_id" in cache else \
            claims["claim_id"].astype(str).to_numpy(dtype=object)
        return pd.DataFrame({k: keys[k] for k in KEYED_ENTITIES},
                            index=pd.Index(ids, name="claim_id", dtype=object))

    def specialty_for(self, claims: pd.DataFrame, cache: dict | None = None) -> np.ndarray:
        """The specialty of each claim's billing provider. For a few claims with a per-call ``cache``
        (see :func:`features.pipeline.compute_features`) the NPIs are read from it and the result is
        kept there (``_specialty``), so recording the claims afterwards does not look them up again."""
        if len(claims) <= SMALL:
            if cache is not None and "_specialty" in cache:
                return cache["_specialty"]
            get = self.specialty_of.get
            npi = cache["billing_npi"] if cache is not None and "billing_npi" in cache else \
                claims["billing_npi"].astype(str).to_numpy(dtype=object)
            out = np.array([get(k, UNKNOWN_SPECIALTY) for k in npi.tolist()], dtype=object)
            if cache is not None:
                cache["_specialty"] = out
            return out
        npi = claims["billing_npi"].astype(str)
        return npi.map(self.specialty_of).fillna(UNKNOWN_SPECIALTY).to_numpy(dtype=object)

    def coverage_for(self, patient_ids: pd.Series) -> pd.DataFrame | None:
        """The coverage spans of these patients (all of them when many are asked)."""
        if self.coverage is None:
            return None
        if len(patient_ids) > 1000:
            return self.coverage
        if self._coverage_by_patient is None:
            cov = self.coverage.reset_index(drop=True)
            self._coverage_by_patient = {
                k: v for k, v in cov.groupby(cov["patient_id"].astype(str), sort=False).indices.items()
            }
        rows = [self._coverage_by_patient.get(p) for p in patient_ids.astype(str)]
        rows = [r for r in rows if r is not None]
        if not rows:
            return self.coverage.iloc[0:0]
        return self.coverage.iloc[np.concatenate(rows)]

    # ------------------------------------------------------------------ updating
    def add_claims(self, claims: pd.DataFrame, lines: pd.DataFrame, la: pd.DataFrame,
                   order: np.ndarray, cache: dict | None = None) -> None:
        """Record scored claims (so a later duplicate or same-day pair is caught)."""
        specialty = self.specialty_for(claims, cache)
        for name, (keys, times, vals, payload) in claim_events(claims, lines, la, specialty, order,
                                                               cache, self._coder()).items():
            self.tables[name].append(keys, times, table_values(name, vals), payload)
        keys = claim_entity_keys(claims, specialty, cache, la)
        self.extra_claim_keys.append(  # turned into a frame lazily (see all_claim_keys)
            {"claim_id": claims["claim_id"].astype(str).to_numpy(dtype=object),
             **{k: keys[k] for k in KEYED_ENTITIES}})
        self.next_order = max(self.next_order, int(np.max(order)) + 1 if len(order) else 0)

    def _coder(self) -> KeyCoder:
        if not isinstance(self.tables, Tables):
            self.tables = Tables(self.tables)
        return self.tables.coder

    def all_claim_keys(self) -> pd.DataFrame:
        if self.extra_claim_keys:
            extra = [e if isinstance(e, pd.DataFrame) else pd.DataFrame(
                {k: v for k, v in e.items() if k != "claim_id"},
                index=pd.Index(e["claim_id"], name="claim_id")) for e in self.extra_claim_keys]
            self.claim_keys = pd.concat([self.claim_keys, *extra])
            self.claim_keys = self.claim_keys[~self.claim_keys.index.duplicated(keep="last")]
            self.extra_claim_keys = []
        return self.claim_keys

    def add_recoupments(self, recoupments: pd.DataFrame) -> int:
        """Record new recoupments of known claims; returns how many were recorded."""
        events = recoupment_events(recoupments, self.all_claim_keys())
        n = 0
        for name, (keys, times, vals, payload) in events.items():
            self.tables[name].append(keys, times, table_values(name, vals), payload)
            n = len(keys)
        return n

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, table in self.tables.items():
            table.to_frame().to_parquet(directory / f"events_{name}.parquet", index=False)
        coder = self._coder()
        for name, vocab in coder.vocabs.items():
            vocab.to_frame().to_parquet(directory / f"vocab_{name}.parquet", index=False)
        self.all_claim_keys().reset_index().to_parquet(directory / "claim_keys.parquet", index=False)
        if self.coverage is not None:
            self.coverage.to_parquet(directory / "coverage.parquet", index=False)
        manifest = {"next_order": self.next_order, "tables": sorted(self.tables), "vocabs": sorted(coder.vocabs),
                    "specialty_of": self.specialty_of, "has_coverage": self.coverage is not None}
        (directory / "state.json").write_text(json.dumps(manifest))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "HistoryState":
        directory = Path(directory)
        manifest = json.loads((directory / "state.json").read_text())
        if "vocabs" not in manifest:
            raise RecoupError(f"the history state in {directory} was saved by an older version (string keys); "
                              "rebuild it from the history (retrain or HistoryState.from_history)")
        coder = KeyCoder({name: Vocab.from_frame(pd.read_parquet(directory / f"vocab_{name}.parquet"))
                          for name in manifest["vocabs"]})
        tables = Tables({name: EventTable.from_frame(pd.read_parquet(directory / f"events_{name}.parquet"))
                         for name in manifest["tables"]}, coder=coder)
        keys = pd.read_parquet(directory / "claim_keys.parquet").set_index("claim_id")
        coverage = pd.read_parquet(directory / "coverage.parquet") if manifest["has_coverage"] else None
        if coverage is not None:
            for c in ("coverage_start", "coverage_end"):
                coverage[c] = coverage[c].astype("datetime64[s]")
        return cls(tables=tables, claim_keys=keys, specialty_of=manifest["specialty_of"],
                   coverage=coverage, next_order=int(manifest["next_order"]))
