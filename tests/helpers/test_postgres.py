"""The PostgreSQL test server (tests/helpers/postgres.py) is real: SQLAlchemy connects with the test role's
password, creates a table and reads back what it wrote; a wrong password is refused."""

from __future__ import annotations

import pytest


def test_round_trip_through_sqlalchemy(postgres_url):
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    meta = sa.MetaData()
    t = sa.Table("t", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("amount", sa.Numeric(12, 2)))
    try:
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(t.insert(), [{"id": 1, "amount": "12.34"}, {"id": 2, "amount": "0.01"}])
        with engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.id, t.c.amount).order_by(t.c.id)).all()
            version = conn.execute(sa.text("select version()")).scalar_one()
        assert [(r.id, str(r.amount)) for r in rows] == [(1, "12.34"), (2, "0.01")]
        assert version.startswith("PostgreSQL")
    finally:
        meta.drop_all(engine)
        engine.dispose()


def test_password_is_required(postgres_url):
    import sqlalchemy as sa

    user_pw, _, rest = postgres_url.partition("@")
    wrong = user_pw.rsplit(":", 1)[0] + ":wrong@" + rest
    engine = sa.create_engine(wrong)
    with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
        engine.connect()
    engine.dispose()


def test_fresh_database_per_test(postgres_database):
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_database)
    with engine.connect() as conn:
        tables = conn.execute(sa.text("select count(*) from pg_tables where schemaname = 'public'")).scalar_one()
        name = conn.execute(sa.text("select current_database()")).scalar_one()
    engine.dispose()
    assert tables == 0 and name.startswith("t_")
