"""Audit reviews in a store (features/store/reviews.py, features/contract/reviews.py): recorded as one unit per call,
idempotent, refused for unknown claims; read back as the store's reviews and, for refunds, as recoupments without
counting a claim's money twice; all or nothing when killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from features.contract import load_history, write_history
from features.contract.reviews import apply_reviews, net_of_refunds, refund_recoupments
from features.errors import RecoupError
from features.store.ingest import ingest
from features.store.reviews import record_reviews

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def store(tmp_path, history_dir) -> Path:
    s = tmp_path / "store"
    ingest([history_dir], s)
    return s


def paid_ids(history, n: int, without_recoupment: bool = True) -> list[str]:
    c = history.claims[history.claims["paid_date"].notna()]
    if without_recoupment:
        c = c[~c["claim_id"].isin(history.recoupments["claim_id"])]
    return c["claim_id"].astype(str).head(n).tolist()


def reviews(rows: list[tuple]) -> pd.DataFrame:
    cols = ["claim_id", "reviewed_at", "outcome", "refund_amount", "cause", "carc", "reviewer"]
    return pd.DataFrame(rows, columns=cols)


def recouped(history, claim_id: str) -> pd.DataFrame:
    r = history.recoupments
    return r[r["claim_id"].astype(str) == claim_id].sort_values("recouped_date").reset_index(drop=True)


def test_record_read_back_and_refunds_become_recoupments(store, history_small):
    a, b, c = paid_ids(history_small, 3)
    out = record_reviews(
        store,
        reviews(
            [
                (a, "2024-03-01", "no_issue", None, None, None, "u1"),
                (b, "2024-03-02", "error_found", 120.5, "units", None, "u2"),
                (c, "2024-03-03", "refunded", 80.0, None, "CO-97", "u2"),
            ]
        ),
    )
    assert (out["reviews_added"], out["reviews_replaced"], out["reviews_already"]) == (3, 0, 0)
    h = load_history(store)
    assert sorted(h.reviews["claim_id"].astype(str)) == sorted([a, b, c])
    assert recouped(h, a).empty  # no issue: evidence, not a recoupment
    rb, rc = recouped(h, b), recouped(h, c)
    assert rb[["recouped_amount", "cause"]].astype(object).values.tolist() == [[120.5, "units"]]
    assert rb["recouped_date"].iloc[0] == pd.Timestamp("2024-03-02")
    assert (rc["recouped_amount"].iloc[0], rc["cause"].iloc[0], rc["carc"].iloc[0]) == (80.0, "bundling", "CO-97")
    assert len(h.recoupments) == len(history_small.recoupments) + 2


def test_recording_again_is_idempotent_and_a_correction_replaces(store, history_small):
    (a,) = paid_ids(history_small, 1)
    rows = reviews([(a, "2024-03-02", "error_found", 100.0, "units", None, "u2")])
    first = record_reviews(store, rows)
    again = record_reviews(store, rows)
    assert again["reviews_added"] == 0 and again["files_already"] == 1
    with_other = pd.concat([rows, reviews([(a, "2024-03-01", "no_issue", None, None, None, "u3")])])  # earlier
    mixed = record_reviews(store, with_other)  # a new call holding an old row and a new one
    assert (mixed["reviews_added"], mixed["reviews_already"]) == (1, 1)
    fixed = record_reviews(store, rows.assign(refund_amount=90.0))  # same claim, time, outcome: other amount
    assert (fixed["reviews_added"], fixed["reviews_replaced"]) == (0, 1)
    h = load_history(store)
    assert len(h.reviews) == 2
    assert recouped(h, a)["recouped_amount"].tolist() == [90.0]
    assert first["ingest"] < fixed["ingest"]


def test_reviews_of_unknown_claims_are_refused_and_nothing_is_written(store, history_small):
    (a,) = paid_ids(history_small, 1)
    rows = reviews(
        [
            (a, "2024-03-02", "no_issue", None, None, None, "u1"),
            ("NO-SUCH-CLAIM", "2024-03-02", "no_issue", None, None, None, "u1"),
        ]
    )
    with pytest.raises(
        RecoupError,
        match=r"row 2: column 'claim_id': expected a claim_id present in claims \(review of an unknown claim\)",
    ) as e:
        record_reviews(store, rows)
    assert "NO-SUCH-CLAIM" not in str(e.value)  # ids are not echoed
    assert load_history(store).reviews is None


@pytest.mark.parametrize(
    "row, message",
    [
        (("X", "2024-03-02", "refunded", None, None, None, "u1"), "refund_amount > 0 for a 'refunded' review"),
        (("X", "2024-03-02", "no_issue", 5.0, None, None, "u1"), "no refund_amount"),
        (("X", "2024-03-02", "error_found", 5.0, None, "CO-99999", "u1"), "a CARC of the packaged code list"),
        (("X", "2024-03-02", "maybe", None, None, None, "u1"), "column 'outcome': expected one of no_issue"),
        (("X", "2024-03-02", "error_found", 2e8, None, None, "u1"), "at most 100,000,000"),
        (("X", "3024-03-02", "no_issue", None, None, None, "u1"), "years 1900 to 2199"),
        (("X", "2024-03-02", "no_issue", None, None, None, "u" * 65), "at most 64 characters"),
    ],
)
def test_review_rows_are_checked_by_the_contract(store, history_small, row, message):
    (a,) = paid_ids(history_small, 1)
    with pytest.raises(RecoupError, match="nothing was recorded") as e:
        record_reviews(store, reviews([(a, *row[1:])]))
    assert message in str(e.value)


def test_a_payer_recoupment_after_a_refund_counts_only_beyond_it():
    refunds = pd.DataFrame(
        {
            "claim_id": ["A", "B"],
            "recouped_date": pd.to_datetime(["2024-03-01", "2024-03-01"]),
            "recouped_amount": [100.0, 100.0],
            "carc": [None, None],
            "cause": ["units", "units"],
        }
    )
    payer = pd.DataFrame(
        {
            "claim_id": ["A", "A", "A", "B", "C"],
            "recouped_date": pd.to_datetime(["2024-01-01", "2024-04-01", "2024-05-01", "2024-06-01", "2024-06-01"]),
            "recouped_amount": [30.0, 60.0, 70.0, 100.0, 50.0],
            "carc": ["CO-151"] * 5,
            "cause": ["units"] * 5,
        }
    )
    net, counts = net_of_refunds(payer, refunds)
    # A: the one before the refund stands; after it, 60 + 70 = 130 of which 100 was the refund: 30 left (the later one)
    # B: exactly the refund again: dropped; C: no refund, untouched
    got = net[["claim_id", "recouped_amount"]].values.tolist()
    assert got == [["A", 30.0], ["A", 30.0], ["C", 50.0]]
    assert counts == {"recoupments_reduced_by_refunds": 1, "recoupments_dropped_as_refunded": 2}


def test_one_refund_per_claim_and_an_overturned_appeal_cancels_it():
    r = reviews(
        [
            ("A", "2024-03-01", "error_found", 100.0, "units", None, "u1"),
            ("A", "2024-03-20", "refunded", 95.0, None, None, "u1"),  # the amount actually refunded
            ("B", "2024-03-01", "refunded", 40.0, None, "CO-16", "u1"),
            ("B", "2024-05-01", "appealed_overturned", None, None, None, "u2"),
            ("C", "2024-03-01", "refunded", 10.0, None, None, "u1"),
            ("C", "2024-05-01", "appealed_upheld", None, None, None, "u2"),
            ("D", "2024-03-01", "error_found", None, "units", None, "u1"),  # amount not known yet: no recoupment
        ]
    ).assign(reviewed_at=lambda d: pd.to_datetime(d["reviewed_at"]))
    out, counts = refund_recoupments(r.sample(frac=1, random_state=3))  # the order of rows does not matter
    out = out.set_index("claim_id")
    assert sorted(out.index) == ["A", "C"]
    assert (out.loc["A", "recouped_date"], out.loc["A", "recouped_amount"], out.loc["A", "cause"]) == (
        pd.Timestamp("2024-03-01"),
        95.0,
        "units",
    )
    assert out.loc["C", "cause"] == "other"
    assert counts == {"refunds": 2, "refunds_cancelled_by_appeal": 1, "refunds_withdrawn": 0}


def test_the_latest_review_decides_a_later_no_issue_or_withdrawn_cancels_the_refund():
    r = reviews(
        [
            ("A", "2024-03-02T10:00:00Z", "error_found", 100.0, "units", None, "u1"),
            ("A", "2024-03-02T15:30:00Z", "no_issue", None, None, None, "u1"),  # same day, later: nothing found
            ("B", "2024-03-02T10:00:00Z", "error_found", 100.0, "units", None, "u1"),
            ("B", "2024-03-02T10:00:01Z", "withdrawn", None, None, None, "u1"),
            ("C", "2024-03-02T10:00:00Z", "no_issue", None, None, None, "u1"),
            ("C", "2024-03-02T11:00:00Z", "error_found", 50.0, "units", None, "u1"),  # a finding after no issue
            ("D", "2024-03-02T10:00:00Z", "error_found", 70.0, "units", None, "u1"),
            ("D", "2024-03-03T09:00:00Z", "withdrawn", None, None, None, "u1"),
            ("D", "2024-03-04T16:20:00Z", "refunded", 60.0, None, None, "u1"),  # a new outcome after the reset
            ("E", "2024-03-02T10:00:00Z", "error_found", 20.0, "units", None, "u1"),
            ("E", "2024-03-05T10:00:00Z", "appealed_upheld", None, None, None, "u1"),  # keeps the refund
        ]
    )
    from features.contract import validate_table

    typed, problems, _ = validate_table(r, "reviews", "reviews")
    assert not problems and typed["reviewed_at"].iloc[1] == pd.Timestamp("2024-03-02 15:30:00")
    out, counts = refund_recoupments(typed.sample(frac=1, random_state=5))
    out = out.set_index("claim_id")
    assert sorted(out.index) == ["C", "D", "E"]
    assert out["recouped_amount"].to_dict() == {"C": 50.0, "D": 60.0, "E": 20.0}
    # a recoupment is dated by the day of the first refund after the last cancelling review
    assert out["recouped_date"].to_dict() == {
        "C": pd.Timestamp("2024-03-02"),
        "D": pd.Timestamp("2024-03-04"),
        "E": pd.Timestamp("2024-03-02"),
    }
    assert counts == {"refunds": 3, "refunds_cancelled_by_appeal": 0, "refunds_withdrawn": 2}


def test_store_read_after_error_found_then_no_issue_the_same_day(store, history_small):
    a, b = paid_ids(history_small, 2)
    record_reviews(store, reviews([(a, "2024-03-02T10:00:00Z", "error_found", 100.0, "units", None, "u1")]))
    record_reviews(store, reviews([(b, "2024-03-02T10:00:00Z", "error_found", 100.0, "units", None, "u1")]))
    assert recouped(load_history(store), a)["recouped_amount"].tolist() == [100.0]
    out = record_reviews(store, reviews([(a, "2024-03-02T15:30:00Z", "no_issue", None, None, None, "u1")]))
    assert out["reviews_added"] == 1
    h = load_history(store)
    assert recouped(h, a).empty and len(h.reviews) == 3
    assert len(h.recoupments) == len(history_small.recoupments) + 1  # b's refund only
    assert h.reviews["reviewed_at"].dtype == "datetime64[s]"
    assert sorted(h.reviews.loc[h.reviews["claim_id"].astype(str) == a, "reviewed_at"]) == [
        pd.Timestamp("2024-03-02 10:00:00"),
        pd.Timestamp("2024-03-02 15:30:00"),
    ]
    record_reviews(store, reviews([(b, "2024-03-02T10:05:00Z", "withdrawn", None, None, None, "u1")]))
    h = load_history(store)
    assert recouped(h, b).empty and len(h.recoupments) == len(history_small.recoupments)


def test_recording_with_times_is_idempotent_to_the_second(store, history_small):
    (a,) = paid_ids(history_small, 1)
    row = reviews([(a, "2024-03-02T10:00:00Z", "error_found", 100.0, "units", None, "u1")])
    assert record_reviews(store, row)["reviews_added"] == 1
    again = record_reviews(store, row.assign(reviewed_at="2024-03-02 10:00:00"))  # the same time written otherwise
    assert (again["reviews_added"], again["reviews_replaced"], again["files_already"]) == (0, 0, 1)  # same rows
    fixed = record_reviews(store, row.assign(refund_amount=90.0))  # same claim, time and outcome: a correction
    assert (fixed["reviews_added"], fixed["reviews_replaced"]) == (0, 1)
    later = record_reviews(store, row.assign(reviewed_at="2024-03-02T10:00:01Z", refund_amount=80.0))
    assert later["reviews_added"] == 1  # one second later: another review
    midnight = record_reviews(store, row.assign(reviewed_at="2024-03-02T00:00:00Z"))
    assert midnight["reviews_added"] == 1
    day = record_reviews(store, pd.concat([row.assign(reviewed_at="2024-03-02"), row.assign(reviewed_at="2024-03-03")]))
    assert (day["reviews_added"], day["reviews_already"]) == (1, 1)  # a date is its midnight: the same review
    h = load_history(store)
    assert len(h.reviews) == 4
    assert recouped(h, a)[["recouped_date", "recouped_amount"]].values.tolist() == [[pd.Timestamp("2024-03-02"), 100.0]]


def test_date_only_reviews_keep_their_keys_and_read_as_before(store, history_small):
    """Stores written before times existed keyed a review by its day's text: a date-only review still has that key
    (recording it again is "already recorded"), and date-only reviews of one day keep the lifecycle order."""
    from features.contract import validate_table
    from features.store.ingest import review_keys

    a, b = paid_ids(history_small, 2)
    rows = reviews(
        [
            (a, "2024-03-02", "no_issue", None, None, None, "u1"),
            (a, "2024-03-02", "error_found", 100.0, "units", None, "u1"),  # same day: later in the lifecycle
            (b, "2024-03-02", "refunded", 40.0, None, None, "u1"),
            (b, "2024-03-09", "appealed_overturned", None, None, None, "u2"),
        ]
    )
    typed = validate_table(rows, "reviews", "reviews")[0]
    old_key = pd.DataFrame(
        {
            "claim_id": typed["claim_id"].astype("string"),
            "date": typed["reviewed_at"].dt.strftime("%Y-%m-%d"),
            "outcome": typed["outcome"].astype("string"),
        }
    )
    assert (review_keys(typed)[0] == pd.util.hash_pandas_object(old_key, index=False).to_numpy().view("int64")).all()
    record_reviews(store, rows)
    h = load_history(store)
    assert recouped(h, a)[["recouped_date", "recouped_amount"]].values.tolist() == [[pd.Timestamp("2024-03-02"), 100.0]]
    assert recouped(h, b).empty
    d = store.parent / "view"
    write_history(h, d)
    assert "2024-03-02," in (d / "reviews.csv").read_text() and "T00:00" not in (d / "reviews.csv").read_text()


def test_times_round_trip_through_a_contract_folder(tmp_path, history_small):
    (a,) = paid_ids(history_small, 1)
    d = tmp_path / "with_reviews"
    write_history(history_small, d)
    reviews(
        [
            (a, "2024-03-02T10:00:00Z", "error_found", 12.0, "duplicate", None, "u1"),
            (a, "2024-03-02T10:00:05Z", "withdrawn", None, None, None, "u1"),
        ]
    ).to_csv(d / "reviews.csv", index=False)
    folder = load_history(d)
    assert folder.reviews["reviewed_at"].tolist() == [
        pd.Timestamp("2024-03-02 10:00:00"),
        pd.Timestamp("2024-03-02 10:00:05"),
    ]
    out = tmp_path / "out"
    write_history(folder, out)
    text = (out / "reviews.csv").read_text()
    assert "2024-03-02T10:00:00Z" in text and "2024-03-02T10:00:05Z" in text
    ingest([d], tmp_path / "s")
    h = load_history(tmp_path / "s")
    assert len(h.reviews) == 2 and recouped(h, a).empty


def test_no_double_count_through_the_store(store, history_small, tmp_path):
    """A claim refunded by its reviewer, then recouped by the payer (a recoupments file ingested later) for more:
    the store counts the refund and the difference only."""
    (a,) = paid_ids(history_small, 1)
    record_reviews(store, reviews([(a, "2024-03-02", "refunded", 100.0, "units", None, "u2")]))
    later = tmp_path / "later"
    later.mkdir()
    pd.DataFrame(
        {
            "claim_id": [a, a],
            "recouped_date": ["2024-04-01", "2024-05-01"],
            "recouped_amount": [100.0, 25.0],
            "carc": ["CO-151"] * 2,
        }
    ).to_csv(later / "recoupments.csv", index=False)
    ingest([later / "recoupments.csv"], store)
    r = recouped(load_history(store), a)
    assert r["recouped_amount"].tolist() == [100.0, 25.0]
    assert r["recouped_date"].tolist() == [pd.Timestamp("2024-03-02"), pd.Timestamp("2024-05-01")]


def test_reviews_csv_ingested_from_a_contract_folder(tmp_path, history_small):
    a, b = paid_ids(history_small, 2)
    d = tmp_path / "with_reviews"
    write_history(history_small, d)
    reviews(
        [
            (a, "2024-03-01", "no_issue", None, None, None, "u1"),
            (b, "2024-03-01", "refunded", 12.0, "duplicate", None, "u1"),
        ]
    ).to_csv(d / "reviews.csv", index=False)
    folder = load_history(d)  # a folder keeps its reviews as evidence; its recoupments are as given
    assert len(folder.reviews) == 2 and len(folder.recoupments) == len(history_small.recoupments)
    summary = ingest([d], tmp_path / "s")
    assert summary.reviews_added == 2 and "reviews: 2 added" in str(summary)
    h = load_history(tmp_path / "s")
    assert len(h.reviews) == 2
    assert recouped(h, b)["recouped_amount"].tolist() == [12.0]
    again = ingest([d], tmp_path / "s")
    assert again.files_already == 6


def test_apply_reviews_without_recoupments_and_ranged_reads(store, history_small):
    from features.store.read import read_store

    (a,) = paid_ids(history_small, 1)
    record_reviews(store, reviews([(a, "2024-03-02", "refunded", 10.0, None, None, "u2")]))
    month = str(history_small.claims.set_index("claim_id").loc[a, "submitted_date"])[:7]
    ranged = read_store(store, since=month, until=month)
    assert a in set(ranged.reviews["claim_id"].astype(str)) and a in set(ranged.recoupments["claim_id"].astype(str))
    h = load_history(store)
    bare, counts = apply_reviews(
        type(h)(claims=h.claims, claim_lines=h.claim_lines, recoupments=None, reviews=h.reviews)
    )
    assert counts["refunds"] == 1 and bare.recoupments["claim_id"].astype(str).tolist() == [a]


def test_record_reviews_killed_before_its_commit_leaves_the_store_as_it_was(store, history_small):
    """A real process recording reviews is killed (SIGKILL) after staging its part, before the manifest commit."""
    (a,) = paid_ids(history_small, 1)
    before = load_history(store)
    code = (
        "import pandas as pd, sys\n"
        "from features.store.reviews import record_reviews\n"
        f"record_reviews(sys.argv[1], pd.DataFrame({{'claim_id': [{a!r}], 'reviewed_at': ['2024-03-02'], "
        "'outcome': ['refunded'], 'refund_amount': [10.0], 'reviewer': ['u1']}))\n"
    )
    env = {**os.environ, "RECOUP_STORE_TEST_PAUSE": "staged:30", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(store)], env=env)
    try:
        deadline = time.time() + 60
        while not list(store.rglob(".part-*.parquet.tmp")):
            assert proc.poll() is None and time.time() < deadline, "the recording did not reach its staged point"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    after = load_history(store)
    assert after.reviews is None and len(after.recoupments) == len(before.recoupments)
    out = record_reviews(
        store,
        pd.DataFrame(
            {
                "claim_id": [a],
                "reviewed_at": ["2024-03-02"],
                "outcome": ["refunded"],
                "refund_amount": [10.0],
                "reviewer": ["u1"],
            }
        ),
    )
    assert out["reviews_added"] == 1 and not list(store.rglob(".part-*.parquet.tmp"))
