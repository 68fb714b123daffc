"""Users, passwords, sessions, CSRF tokens and the login rate limit of the workbench.

- Passwords: ``hashlib.scrypt`` (n=2**14, r=8, p=1) with a random 16-byte salt per user, stored as
  ``scrypt$n$r$p$salt$hash`` (base64); compared in constant time. An unknown name costs one hash too.
- Sessions: a random 32-byte token in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS); only its SHA-256
  is stored. A session ends after ``RECOUP_WORKBENCH_IDLE_MINUTES`` without a request (default 480, 5-1440) and
  ``RECOUP_WORKBENCH_MAX_HOURS`` after login whatever happens (default 24, 1-168).
- CSRF: one random token per session, in every POST form, compared in constant time.
- Login: at most :data:`MAX_FAILURES` failed attempts per name in :data:`FAILURE_WINDOW_S` (then 429 until the
  oldest leaves the window); kept in this process (one uvicorn process serves the workbench)."""

from __future__ import annotations

import base64
import collections
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from features.errors import RecoupError
from serving.workbench.db import ROLES, sessions, users

SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_LEN = 2**14, 8, 1, 32
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_PASSWORD, MAX_PASSWORD = 10, 256
MAX_FAILURES, FAILURE_WINDOW_S = 5, 15 * 60
MAX_TRACKED_NAMES = 10_000
COOKIE = "recoup_wb"
LOGIN_COOKIE = "recoup_wb_login"  # the login form's CSRF token (double submit), before there is a session
_DUMMY = None  # a hash to compare against when the name is unknown (same work either way)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` of ``password`` with a new random salt (or ``salt``)."""
    salt = salt if salt is not None else os.urandom(16)
    h = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_LEN, maxmem=64 << 20
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(h)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison; a malformed hash never matches)."""
    try:
        kind, n, r, p, salt, h = stored.split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(h)
        got = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(want),
            maxmem=64 << 20,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def check_password_rules(password: str) -> None:
    if not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise RecoupError(f"the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")


def now() -> dt.datetime:
    """UTC now, naive (stored as such in SQLite and PostgreSQL alike), to the second."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def add_user(engine: Engine, name: str, role: str, password: str) -> int:
    """Create user ``name`` with ``role``; returns its id. A taken name, a bad name/role/password: RecoupError."""
    if not NAME_RE.match(name or ""):
        raise RecoupError(f"user name {name[:70]!r} must be 1-64 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise RecoupError(f"role must be one of {', '.join(ROLES)}, not {role[:20]!r}")
    check_password_rules(password)
    with engine.begin() as conn:
        if conn.execute(select(users.c.id).where(users.c.name == name)).first():
            raise RecoupError(f"a user named {name!r} exists")
        res = conn.execute(
            insert(users).values(
                name=name, password_hash=hash_password(password), role=role, active=True, created_at=now()
            )
        )
        return int(res.inserted_primary_key[0])  # type: ignore[index]


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str

    @property
    def is_lead(self) -> bool:
        return self.role == "lead"


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class Limits:
    """Session lifetimes, from the environment (bounded)."""

    idle: dt.timedelta = dt.timedelta(hours=8)
    absolute: dt.timedelta = dt.timedelta(hours=24)

    @classmethod
    def from_env(cls) -> "Limits":
        def bounded(var: str, default: int, lo: int, hi: int, unit: str) -> int:
            raw = os.environ.get(var, "").strip()
            if not raw:
                return default
            if not raw.isdigit() or not (lo <= int(raw) <= hi):
                raise RecoupError(f"{var} must be a whole number of {unit} from {lo} to {hi}, not {raw[:20]!r}")
            return int(raw)

        return cls(
            idle=dt.timedelta(minutes=bounded("RECOUP_WORKBENCH_IDLE_MINUTES", 480, 5, 1440, "minutes")),
            absolute=dt.timedelta(hours=bounded("RECOUP_WORKBENCH_MAX_HOURS", 24, 1, 168, "hours")),
        )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class LoginLimiter:
    """Failed logins per name in a sliding window (this process); bounded number of names tracked."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S):
        self.max, self.window = max_failures, window_s
        self._fails: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, name: str, t: float) -> collections.deque:
        q = self._fails.get(name, collections.deque())
        while q and t - q[0] > self.window:
            q.popleft()
        return q

    def blocked_for(self, name: str, t: float | None = None) -> float:
        """Seconds until ``name`` may try again (0: now)."""
        t = time.monotonic() if t is None else t
        with self._lock:
            q = self._recent(name.lower(), t)
            return max(0.0, self.window - (t - q[0])) if len(q) >= self.max else 0.0

    def failed(self, name: str, t: float | None = None) -> None:
        t = time.monotonic() if t is None else t
        key = name.lower()[:64]
        with self._lock:
            q = self._recent(key, t)
            q.append(t)
            self._fails[key] = q
            self._fails.move_to_end(key)
            while len(self._fails) > MAX_TRACKED_NAMES:
                self._fails.popitem(last=False)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._fails.pop(name.lower(), None)


def _dummy() -> str:
    """A hash to compare against when the name is unknown (made once)."""
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = hash_password("not a password of anyone")
    return _DUMMY


def authenticate(engine: Engine, name: str, password: str) -> User | None:
    """The active user ``name`` if ``password`` is theirs, else None (the same scrypt work either way)."""
    if not NAME_RE.match(name or ""):  # never a user's name (and PostgreSQL refuses a NUL): the same work
        verify_password(password, _dummy())
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(users.c.id, users.c.name, users.c.role, users.c.password_hash, users.c.active).where(
                users.c.name == name
            )
        ).first()
    if row is None or not row.active:
        verify_password(password, _dummy())
        return None
    return User(row.id, row.name, row.role) if verify_password(password, row.password_hash) else None


def start_session(engine: Engine, user: User, limits: Limits) -> tuple[str, Session]:
    """A new session of ``user``: (the cookie's token, the session). Expired sessions are removed on the way."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    t = now()
    expires = t + limits.absolute
    with engine.begin() as conn:
        conn.execute(delete(sessions).where(sessions.c.expires_at < t))
        conn.execute(delete(sessions).where(sessions.c.last_seen < t - limits.idle))
        conn.execute(
            insert(sessions).values(
                token_hash=token_hash(token),
                user_id=user.id,
                csrf_token=csrf,
                created_at=t,
                last_seen=t,
                expires_at=expires,
            )
        )
    return token, Session(user, csrf, expires)


def lookup_session(engine: Engine, token: str | None, limits: Limits, at: dt.datetime | None = None) -> Session | None:
    """The live session of cookie ``token`` (its idle clock restarted), else None (and an expired one is deleted)."""
    if not token or len(token) > 128:
        return None
    t = at or now()
    th = token_hash(token)
    with engine.begin() as conn:
        row = conn.execute(
            select(
                sessions.c.id,
                sessions.c.csrf_token,
                sessions.c.last_seen,
                sessions.c.expires_at,
                users.c.id.label("uid"),
                users.c.name,
                users.c.role,
                users.c.active,
            )
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.token_hash == th)
        ).first()
        if row is None:
            return None
        if t >= row.expires_at or t - row.last_seen > limits.idle or not row.active:
            conn.execute(delete(sessions).where(sessions.c.id == row.id))
            return None
        if (t - row.last_seen).total_seconds() >= 30:  # not a write per request
            conn.execute(update(sessions).where(sessions.c.id == row.id).values(last_seen=t))
    return Session(User(row.uid, row.name, row.role), row.csrf_token, row.expires_at)


def end_session(engine: Engine, token: str | None) -> None:
    if token and len(token) <= 128:
        with engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash(token)))


def csrf_ok(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of a form's CSRF token with the session's (both present)."""
    if not expected or not given or len(given) > 128:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def user_list(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(users.c.id, users.c.name, users.c.role).where(users.c.active.is_(True)).order_by(users.c.name)
        ).all()
    return [User(r.id, r.name, r.role) for r in rows]
