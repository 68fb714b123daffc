"""Fixtures of the service tests: one in-process service for every module that needs it (the app
registers its metrics once per process, so two instances cannot coexist)."""

from __future__ import annotations

import os
import warnings

import pytest

warnings.filterwarnings("ignore", message=".*httpx.*")
from starlette.testclient import TestClient  # noqa: E402

from tests.helpers.claims import recent_claims  # noqa: E402


def new_claims(trained, n: int, tag: str, shift_days: int) -> list[dict]:
    """n claims of the history, renamed and moved after the end of the data (so they are new)."""
    return recent_claims(trained["history"], n, tag, shift_days, skip=400)


@pytest.fixture(scope="session")
def client(trained, tmp_path_factory):
    """The service's ASGI app in process, called as a local caller on a loopback Host (the service's
    Host allow-list and open-to-local-calls rule), with its own journal folder (recorded claims persist)."""
    os.environ.pop("RECOUP_BUNDLE_DIR", None)  # the model comes from the BentoML store of RECOUP_HOME
    os.environ["RECOUP_JOURNAL_DIR"] = str(tmp_path_factory.mktemp("journal"))
    from serving.service import RecoupService

    try:
        with TestClient(
            RecoupService.to_asgi(),
            raise_server_exceptions=False,
            base_url="http://localhost",
            client=("127.0.0.1", 50000),
        ) as c:
            yield c
    finally:
        os.environ.pop("RECOUP_JOURNAL_DIR", None)


@pytest.fixture(scope="session")
def good(trained):
    """One valid new claim (not in the history)."""
    return new_claims(trained, 1, "GOOD", 20)[0]
