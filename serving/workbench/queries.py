"""The workbench's reads and writes: worklist filters (validated from the query string), pages, claims, providers,
review changes and the dashboard's figures. Every filter is a bound parameter; sort keys come from a fixed list."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Select

from features.contract.schema import CAUSES
from serving.workbench.auth import User, now
from serving.workbench.db import OUTCOMES, STATUSES, providers, review_events, reviews, users, worklist

PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_PAGE = 100_000
MAX_TEXT = 64
MAX_NOTE = 2_000
MAX_AMOUNT = 10_000_000.0
BANDS = ("low", "medium", "high")
CARC_RE = re.compile(r"^(?:(?:CO|PI|OA|PR|CR)-?)?[A-Z]?\d{1,3}$")
#: sort keys of the worklist page: name -> column
SORTS = {
    "rank": worklist.c.rank,
    "dollars": worklist.c.expected_recoupment_dollars,
    "probability": worklist.c.recoupment_probability,
    "paid": worklist.c.paid_amount,
    "submitted": worklist.c.submitted_date,
    "claim": worklist.c.claim_id,
    "payer": worklist.c.payer_id,
    "provider": worklist.c.billing_npi,
    "cause": worklist.c.top_cause,
    "band": worklist.c.risk_band,
    "specialty": worklist.c.specialty,
}
#: the flat columns of an export, in order
EXPORT_COLUMNS = (
    "rank",
    "claim_id",
    "billing_npi",
    "provider_name",
    "specialty",
    "payer_id",
    "plan_type",
    "submitted_date",
    "paid_date",
    "paid_amount",
    "recoupment_probability",
    "risk_band",
    "top_cause",
    "top_cause_probability",
    "amount_at_risk",
    "expected_recoupment_dollars",
    "reason_1",
    "reason_2",
    "reason_3",
    "rule_hit_1",
    "rule_hit_2",
    "rule_hit_3",
    "rule_hit_count",
    "status",
    "assignee",
    "refund_amount",
)


class Invalid(ValueError):
    """A form or query field that does not validate: ``field`` and a message for people."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field, self.message = field_name, message


#: control characters refused in any text field (PostgreSQL cannot store NUL; none belongs in a filter or id);
#: a note may hold tabs and line ends
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_NOTE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _text(params: Mapping[str, str], name: str, limit: int = MAX_TEXT, multiline: bool = False) -> str | None:
    v = (params.get(name) or "").strip()
    if not v:
        return None
    if len(v) > limit:
        raise Invalid(name, f"{name}: at most {limit} characters")
    if (_CONTROL_NOTE if multiline else _CONTROL).search(v):
        raise Invalid(name, f"{name}: control characters are not allowed")
    return v


def _digits(v: str, max_len: int = 9) -> bool:
    """Whether ``v`` is a whole number of ASCII digits (``str.isdigit`` also takes '²', which int() refuses)."""
    return v.isascii() and v.isdigit() and len(v) <= max_len


def clean_id(v: str, limit: int = MAX_TEXT) -> str | None:
    """A claim id or NPI from a URL, or None when it cannot be one (too long, control characters)."""
    return None if len(v) > limit or _CONTROL.search(v) else v


def _money(params: Mapping[str, str], name: str, label: str | None = None) -> float | None:
    v = (params.get(name) or "").strip().replace(",", "").lstrip("$")
    if not v:
        return None
    try:
        x = float(v)
    except ValueError:
        raise Invalid(name, f"{label or name}: a dollar amount such as 120.50, not {v[:20]!r}") from None
    if not math.isfinite(x) or x < 0 or x > MAX_AMOUNT:
        raise Invalid(name, f"{label or name}: from 0 to {MAX_AMOUNT:,.0f} dollars")
    return round(x, 2)


def _int(params: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    v = (params.get(name) or "").strip()
    if not v:
        return default
    if not _digits(v) or not (lo <= int(v) <= hi):
        raise Invalid(name, f"{name}: a whole number from {lo} to {hi}")
    return int(v)


def _choice(params: Mapping[str, str], name: str, choices: tuple[str, ...] | list[str]) -> str | None:
    v = _text(params, name)
    if v is not None and v not in choices:
        raise Invalid(name, f"{name}: one of {', '.join(choices)}")
    return v


@dataclass
class Filters:
    """The worklist's filters, sort and page, validated (:meth:`parse`)."""

    cause: str | None = None
    payer: str | None = None
    provider: str | None = None
    specialty: str | None = None
    band: str | None = None
    min_dollars: float | None = None
    max_dollars: float | None = None
    status: str | None = None
    assignee: str | None = None  # a user id, "me" or "none"
    q: str | None = None
    sort: str = "dollars"
    order: str = "desc"
    page: int = 1
    per_page: int = PER_PAGE
    errors: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> "Filters":
        """Filters from a query string; an invalid field is dropped and its message kept in ``errors``."""
        f = cls()
        steps = (
            ("cause", lambda: _choice(params, "cause", CAUSES)),
            ("payer", lambda: _text(params, "payer")),
            ("provider", lambda: _text(params, "provider")),
            ("specialty", lambda: _text(params, "specialty", 128)),
            ("band", lambda: _choice(params, "band", BANDS)),
            ("min_dollars", lambda: _money(params, "min_dollars", "minimum dollars")),
            ("max_dollars", lambda: _money(params, "max_dollars", "maximum dollars")),
            ("status", lambda: _choice(params, "status", STATUSES)),
            ("assignee", lambda: _assignee(params)),
            ("q", lambda: _text(params, "q")),
            ("sort", lambda: _choice(params, "sort", list(SORTS)) or "dollars"),
            ("order", lambda: _choice(params, "order", ("asc", "desc")) or "desc"),
            ("page", lambda: _int(params, "page", 1, 1, MAX_PAGE)),
            ("per_page", lambda: _int(params, "per_page", PER_PAGE, 10, MAX_PER_PAGE)),
        )
        for name, step in steps:
            try:
                setattr(f, name, step())
            except Invalid as exc:
                f.errors.append(exc.message)
        if f.min_dollars is not None and f.max_dollars is not None and f.min_dollars > f.max_dollars:
            f.errors.append("minimum dollars is above maximum dollars")
            f.max_dollars = None
        return f

    def params(self, **change: Any) -> dict[str, str]:
        """The query string of these filters (non-empty values), with ``change`` applied."""
        out: dict[str, str] = {}
        for fl in fields(self):
            if fl.name == "errors":
                continue
            v = change.get(fl.name, getattr(self, fl.name))
            if v is None or v == "" or (fl.name, v) in (("sort", "dollars"), ("order", "desc"), ("page", 1)):
                continue
            if fl.name == "per_page" and v == PER_PAGE:
                continue
            out[fl.name] = str(v)
        return out


def _assignee(params: Mapping[str, str]) -> str | None:
    v = _text(params, "assignee")
    if v is not None and v not in ("me", "none") and not _digits(v):
        raise Invalid("assignee", "assignee: a user, 'me' or 'none'")
    return v


def _status_col():
    return func.coalesce(reviews.c.status, "not_reviewed")


def _base(run_id: int, f: Filters, viewer: User) -> tuple[Any, list]:
    """The FROM (worklist left join reviews) and WHERE clauses of a filtered worklist."""
    conds: list = [worklist.c.run_id == run_id]
    if f.cause:
        conds.append(worklist.c.top_cause == f.cause)
    if f.payer:
        conds.append(worklist.c.payer_id == f.payer)
    if f.provider:
        conds.append(
            or_(
                worklist.c.billing_npi == f.provider,
                worklist.c.provider_name.ilike(f"{_like(f.provider)}%", escape="\\"),  # the same on SQLite and PG
            )
        )
    if f.specialty:
        conds.append(worklist.c.specialty == f.specialty)
    if f.band:
        conds.append(worklist.c.risk_band == f.band)
    if f.min_dollars is not None:
        conds.append(worklist.c.expected_recoupment_dollars >= f.min_dollars)
    if f.max_dollars is not None:
        conds.append(worklist.c.expected_recoupment_dollars <= f.max_dollars)
    if f.q:
        # the range lets the claim_id index find the prefix; LIKE keeps the exact meaning
        conds += [
            worklist.c.claim_id >= f.q,
            worklist.c.claim_id < f.q + "\U0010ffff",
            worklist.c.claim_id.like(f"{_like(f.q)}%", escape="\\"),
        ]
    if f.status:
        conds.append(_status_col() == f.status)
    if f.assignee == "none":
        conds.append(reviews.c.assignee_id.is_(None))
    elif f.assignee == "me":
        conds.append(reviews.c.assignee_id == viewer.id)
    elif f.assignee:
        conds.append(reviews.c.assignee_id == int(f.assignee))
    if not viewer.is_lead:  # a reviewer: their own and the unassigned
        conds.append(or_(reviews.c.assignee_id.is_(None), reviews.c.assignee_id == viewer.id))
    frm = worklist.outerjoin(reviews, reviews.c.claim_id == worklist.c.claim_id)
    return frm, conds


def _like(text: str) -> str:
    return text.replace("\\", "").replace("%", "").replace("_", "\\_")[:MAX_TEXT]


LIST_COLUMNS = (
    worklist.c.rank,
    worklist.c.claim_id,
    worklist.c.billing_npi,
    worklist.c.provider_name,
    worklist.c.specialty,
    worklist.c.payer_id,
    worklist.c.submitted_date,
    worklist.c.paid_amount,
    worklist.c.recoupment_probability,
    worklist.c.risk_band,
    worklist.c.top_cause,
    worklist.c.top_cause_probability,
    worklist.c.expected_recoupment_dollars,
    worklist.c.reason_1,
    worklist.c.reason_2,
    worklist.c.reason_3,
    worklist.c.rule_hit_1,
    worklist.c.rule_hit_2,
    worklist.c.rule_hit_3,
    worklist.c.rule_hit_count,
)


def _ordered(stmt: Select, f: Filters) -> Select:
    col = SORTS[f.sort]
    key = col.desc() if f.order == "desc" else col.asc()
    # missing values last either way (SQLite puts NULLs first ascending, PostgreSQL first descending)
    return stmt.order_by(key.nulls_last(), worklist.c.rank.asc())


def worklist_page(engine: Engine, run_id: int, f: Filters, viewer: User) -> tuple[list[dict], int]:
    """(rows of the page, rows in all) of the filtered, sorted worklist."""
    frm, conds = _base(run_id, f, viewer)
    assignee = users.alias("assignee")
    stmt = (
        select(*LIST_COLUMNS, _status_col().label("status"), assignee.c.name.label("assignee"))
        .select_from(frm.outerjoin(assignee, assignee.c.id == reviews.c.assignee_id))
        .where(and_(*conds))
    )
    stmt = _ordered(stmt, f).limit(f.per_page).offset((f.page - 1) * f.per_page)
    count = select(func.count()).select_from(frm).where(and_(*conds))
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
        total = int(conn.execute(count).scalar() or 0)
    return rows, total


def export_rows(engine: Engine, run_id: int, f: Filters, viewer: User, limit: int = 1_000_000) -> list[dict]:
    """Every row of the filtered worklist (sorted like the page), flat columns of :data:`EXPORT_COLUMNS`."""
    frm, conds = _base(run_id, f, viewer)
    assignee = users.alias("assignee")
    cols = [worklist.c[c] for c in EXPORT_COLUMNS if c in worklist.c]
    stmt = (
        select(*cols, _status_col().label("status"), assignee.c.name.label("assignee"), reviews.c.refund_amount)
        .select_from(frm.outerjoin(assignee, assignee.c.id == reviews.c.assignee_id))
        .where(and_(*conds))
    )
    stmt = _ordered(stmt, f).limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def filter_options(engine: Engine, run_id: int) -> dict[str, list]:
    """The values the worklist's select boxes offer (payers, specialties, causes) for run ``run_id``."""
    out: dict[str, list] = {}
    with engine.connect() as conn:
        for name, col in (
            ("payer", worklist.c.payer_id),
            ("specialty", worklist.c.specialty),
            ("cause", worklist.c.top_cause),
        ):
            out[name] = [
                v for (v,) in conn.execute(select(col).where(worklist.c.run_id == run_id).distinct().order_by(col)) if v
            ]
    return out


# ---------------------------------------------------------------------------------------------- claims, providers
def claim(engine: Engine, run_id: int, claim_id: str) -> dict | None:
    """The worklist row of ``claim_id`` (its JSON columns parsed), with its review; None when not in the run."""
    if clean_id(claim_id) is None:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(worklist).where(worklist.c.run_id == run_id, worklist.c.claim_id == claim_id)).first()
        if row is None:
            return None
        out = dict(row._mapping)
        for k in ("causes", "reasons", "rule_hits", "details"):
            try:
                out[k] = json.loads(out[k]) if out[k] else ([] if k != "details" else {})
            except ValueError:
                out[k] = [] if k != "details" else {}
        out["review"] = review(conn, claim_id)
        out["events"] = events(conn, claim_id)
    return out


def review(conn, claim_id: str) -> dict:
    assignee = users.alias("assignee")
    row = conn.execute(
        select(reviews, assignee.c.name.label("assignee"))
        .select_from(reviews.outerjoin(assignee, assignee.c.id == reviews.c.assignee_id))
        .where(reviews.c.claim_id == claim_id)
    ).first()
    return dict(row._mapping) if row is not None else {"status": "not_reviewed", "assignee_id": None}


def events(conn, claim_id: str) -> list[dict]:
    who = users.alias("who")
    assignee = users.alias("assignee")
    stmt = (
        select(review_events, who.c.name.label("who"), assignee.c.name.label("assignee"))
        .select_from(
            review_events.join(who, who.c.id == review_events.c.user_id).outerjoin(
                assignee, assignee.c.id == review_events.c.assignee_id
            )
        )
        .where(review_events.c.claim_id == claim_id)
        .order_by(review_events.c.at.desc(), review_events.c.id.desc())
    )
    return [dict(r._mapping) for r in conn.execute(stmt)]


def claim_ids_present(engine: Engine, run_id: int, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    with engine.connect() as conn:
        return {
            r[0]
            for r in conn.execute(
                select(worklist.c.claim_id).where(worklist.c.run_id == run_id, worklist.c.claim_id.in_(ids[:100]))
            )
        }


def provider(engine: Engine, run_id: int, npi: str) -> dict | None:
    """The provider ``npi`` of run ``run_id``: name, specialty, history on file, its worklist by month and by
    cause, and peers of the same specialty (by expected dollars)."""
    if clean_id(npi, 16) is None:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(providers).where(providers.c.run_id == run_id, providers.c.npi == npi)).first()
        if row is None:
            return None
        out = dict(row._mapping)
        out["details"] = json.loads(out["details"]) if out["details"] else {}
        mine = and_(worklist.c.run_id == run_id, worklist.c.billing_npi == npi)
        month = func.substr(func.cast(worklist.c.submitted_date, _string()), 1, 7)
        out["trend"] = [
            dict(r._mapping)
            for r in conn.execute(
                select(
                    month.label("month"),
                    func.count().label("claims"),
                    func.avg(worklist.c.recoupment_probability).label("probability"),
                    func.sum(worklist.c.expected_recoupment_dollars).label("dollars"),
                )
                .where(mine)
                .group_by(month)
                .order_by(month)
            )
        ]
        out["causes"] = [
            dict(r._mapping)
            for r in conn.execute(
                select(
                    worklist.c.top_cause.label("cause"),
                    func.count().label("claims"),
                    func.sum(worklist.c.expected_recoupment_dollars).label("dollars"),
                )
                .where(mine)
                .group_by(worklist.c.top_cause)
                .order_by(func.sum(worklist.c.expected_recoupment_dollars).desc())
            )
        ]
        peers = (
            select(
                worklist.c.billing_npi.label("npi"),
                func.max(worklist.c.provider_name).label("name"),
                func.count().label("claims"),
                func.avg(worklist.c.recoupment_probability).label("probability"),
                func.sum(worklist.c.expected_recoupment_dollars).label("dollars"),
            )
            .where(worklist.c.run_id == run_id)
            .group_by(worklist.c.billing_npi)
            .order_by(func.sum(worklist.c.expected_recoupment_dollars).desc())
            .limit(25)
        )
        if row.specialty:
            peers = peers.where(worklist.c.specialty == row.specialty)
        else:
            peers = peers.where(worklist.c.specialty.is_(None))
        out["peers"] = [dict(r._mapping) for r in conn.execute(peers)]
    return out


def provider_history(engine: Engine, run_id: int, npi: str) -> dict:
    """The provider's claims and recoupments on file (from the store at load time), or {}."""
    if clean_id(npi, 16) is None:
        return {}
    with engine.connect() as conn:
        d = conn.execute(
            select(providers.c.details).where(providers.c.run_id == run_id, providers.c.npi == npi)
        ).scalar()
    return json.loads(d) if d else {}


def _string():
    from sqlalchemy import String

    return String(10)


# ---------------------------------------------------------------------------------------------- review changes
@dataclass
class Change:
    """A validated review change (:func:`parse_change`)."""

    status: str
    assignee_id: int | None = None
    refund_amount: float | None = None
    cause: str | None = None
    carc: str | None = None
    note: str | None = None


def parse_change(form: Mapping[str, str], viewer: User, user_ids: set[int]) -> tuple[Change | None, dict[str, str]]:
    """A review change from the claim page's form, or the messages of its invalid fields (field -> message)."""
    errs: dict[str, str] = {}
    status = (form.get("status") or "").strip()
    if status not in STATUSES:
        errs["status"] = "choose a status"
        return None, errs
    ch = Change(status=status)
    try:
        ch.note = _text(form, "note", MAX_NOTE, multiline=True)
    except Invalid as exc:
        errs[exc.field] = exc.message
    if status == "in_review":
        a = (form.get("assignee") or "").strip()
        if not a or a == "me":
            ch.assignee_id = viewer.id
        elif _digits(a) and int(a) in user_ids:
            ch.assignee_id = int(a)
        else:
            errs["assignee"] = "choose a user to assign"
        if ch.assignee_id not in (None, viewer.id) and not viewer.is_lead:
            errs["assignee"] = "only a lead assigns claims to others"
    if status in ("error_found", "refunded"):
        try:
            ch.refund_amount = _money(form, "refund_amount", "refund amount")
        except Invalid as exc:
            errs["refund_amount"] = exc.message
        if ch.refund_amount is None and "refund_amount" not in errs:
            errs["refund_amount"] = "refund amount: required for an error found or a refund"
        elif ch.refund_amount is not None and ch.refund_amount <= 0:
            errs["refund_amount"] = "refund amount: more than 0 dollars"
    if status in ("error_found", "refunded", "appealed_upheld"):
        cause = (form.get("cause") or "").strip()
        if cause not in CAUSES:
            errs["cause"] = f"cause: one of {', '.join(CAUSES)}"
        ch.cause = cause or None
    carc = (form.get("carc") or "").strip().upper()
    if carc and status in OUTCOMES:
        if len(carc) > 8 or not CARC_RE.match(carc) or _unknown_carc(carc):
            errs["carc"] = "CARC: a claim adjustment reason code of the packaged list, such as 45, CO-97 or B15"
        ch.carc = carc
    return (None if errs else ch), errs


def _unknown_carc(carc: str) -> bool:
    import pandas as pd

    from features.contract.schema import unknown_carcs

    return bool(unknown_carcs(pd.Series([carc]))[0])


class Conflict(Exception):
    """The review changed since the page was shown (another person saved it meanwhile): nothing was saved."""


def apply_change(
    engine: Engine,
    claim_id: str,
    ch: Change,
    viewer: User,
    predicted: float | None,
    record,
    version: int | None = None,
) -> dict:
    """Set the review of ``claim_id`` and append its event, in one transaction; an outcome is handed to ``record``
    (a callable taking the store rows as a dict) inside it, so a failed store write leaves the database as it was.
    A change from an outcome to no outcome (not reviewed, in review) records ``withdrawn``: the store's latest review
    of the claim decides, so the earlier outcome (and a refund derived from it) no longer counts. The store row is
    dated with the change's UTC time (:func:`change_time`: strictly after the claim's previous change).
    ``version``: the review's version the page showed; when the review is at another one (someone saved it
    meanwhile), :class:`Conflict` and nothing is saved. The store is written before the database rows, so the
    database's write lock (SQLite's is one for the whole file) is not held while the store is (an ingest may hold
    the store for a while). Returns the event."""
    from sqlalchemy.exc import IntegrityError

    with engine.begin() as conn:
        cur = review(conn, claim_id)
        at = int(cur.get("version") or 0)
        if version is not None and version != at:
            raise Conflict(claim_id)
        t = change_time(now(), cur.get("updated_at"))
        before = cur.get("status", "not_reviewed")
        assignee = ch.assignee_id if ch.status == "in_review" else cur.get("assignee_id")
        if ch.status == "not_reviewed":
            assignee = None
        values = {
            "status": ch.status,
            "assignee_id": assignee,
            "refund_amount": ch.refund_amount,
            "cause": ch.cause,
            "carc": ch.carc,
            "note": ch.note,
            "predicted_dollars": predicted,
            "updated_at": t,
            "updated_by": viewer.id,
            "version": at + 1,
        }
        ev = {
            "claim_id": claim_id,
            "at": t,
            "user_id": viewer.id,
            "from_status": before,
            "to_status": ch.status,
            "assignee_id": assignee,
            "amount": ch.refund_amount,
            "cause": ch.cause,
            "carc": ch.carc,
            "note": ch.note,
        }
        outcome = store_outcome(before, ch.status)
        if outcome is not None:
            withdrawn = outcome == WITHDRAWN
            record(
                {
                    "claim_id": claim_id,
                    "reviewed_at": t,
                    "outcome": outcome,
                    "refund_amount": None if withdrawn else ch.refund_amount,
                    "cause": None if withdrawn else ch.cause,
                    "carc": None if withdrawn else ch.carc,
                    "reviewer": reviewer_id(viewer),
                }
            )
        if "claim_id" in cur:  # only if nobody changed it since it was read (a row lock on PostgreSQL)
            res = conn.execute(
                update(reviews).where(reviews.c.claim_id == claim_id, reviews.c.version == at).values(**values)
            )
            if res.rowcount != 1:
                raise Conflict(claim_id)
        else:
            try:
                conn.execute(insert(reviews).values(claim_id=claim_id, **values))
            except IntegrityError:  # another first save of this claim got in first
                raise Conflict(claim_id) from None
        conn.execute(insert(review_events).values(**ev))
    return ev


#: the store outcome of a change that takes an outcome back (``features.contract.schema.REVIEW_OUTCOMES``)
WITHDRAWN = "withdrawn"


def store_outcome(before: str, after: str) -> str | None:
    """The outcome a change writes to the store: the new outcome; ``withdrawn`` when an outcome is reset (to not
    reviewed or in review); None when neither status is an outcome (nothing for the store)."""
    if after in OUTCOMES:
        return after
    return WITHDRAWN if before in OUTCOMES else None


def change_time(t: dt.datetime, previous: dt.datetime | None) -> dt.datetime:
    """The time of a change (naive UTC, to the second): ``t``, or one second after the claim's previous change when
    that is not earlier (two changes within one second, a clock set back): a claim's changes, and so its store
    reviews, are strictly ordered in time, and the store's latest review is the workbench's last change."""
    if previous is not None and t <= previous:
        return previous.replace(microsecond=0) + dt.timedelta(seconds=1)
    return t


def reviewer_id(user: User) -> str:
    """The opaque reviewer id written to the store (not a name)."""
    return f"wb-{user.id}"


# ---------------------------------------------------------------------------------------------- dashboard
FOUND = ("error_found", "refunded", "appealed_upheld")


def dashboard(engine: Engine, viewer: User, weeks: int = 12) -> dict:
    """Reviews done (an outcome set), hit rate, dollars found vs predicted: in all, per week (the last ``weeks``)
    and per reviewer (a reviewer sees only their own)."""
    done = reviews.c.status.in_(OUTCOMES)
    who = users.alias("who")
    stmt = (
        select(
            reviews.c.status,
            reviews.c.refund_amount,
            reviews.c.predicted_dollars,
            reviews.c.updated_at,
            who.c.name.label("reviewer"),
        )
        .select_from(reviews.join(who, who.c.id == reviews.c.updated_by))
        .where(done)
    )
    if not viewer.is_lead:
        stmt = stmt.where(reviews.c.updated_by == viewer.id)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
        in_review = select(func.count()).select_from(reviews).where(reviews.c.status == "in_review")
        if not viewer.is_lead:
            in_review = in_review.where(reviews.c.assignee_id == viewer.id)
        open_ = conn.execute(in_review).scalar()

    def summary(rs: list[dict]) -> dict:
        n = len(rs)
        hits = [r for r in rs if r["status"] in FOUND]
        return {
            "reviews": n,
            "hits": len(hits),
            "hit_rate": (len(hits) / n) if n else None,
            "found": round(sum(r["refund_amount"] or 0.0 for r in hits), 2),
            "predicted": round(sum(r["predicted_dollars"] or 0.0 for r in rs), 2),
        }

    def week(d: dt.datetime) -> str:
        monday = (d - dt.timedelta(days=d.weekday())).date()
        return monday.isoformat()

    by_week: dict[str, list] = {}
    for r in rows:
        by_week.setdefault(week(r["updated_at"]), []).append(r)
    by_reviewer: dict[str, list] = {}
    for r in rows:
        by_reviewer.setdefault(r["reviewer"], []).append(r)
    return {
        "total": summary(rows),
        "in_review": int(open_ or 0),
        "weeks": [{"week": w, **summary(by_week[w])} for w in sorted(by_week)[-weeks:]],
        "reviewers": [{"reviewer": k, **summary(v)} for k, v in sorted(by_reviewer.items())],
    }
