"""Who may call the scoring service, and what is logged about each call.

- **API keys** (``recoup keys create|list|revoke``): random 32-byte keys, shown once; the key file
  (``RECOUP_API_KEYS_FILE``, default ``$RECOUP_HOME/service/api_keys.json``, mode 0600, written
  atomically) keeps only each key's SHA-256, its name and dates. The service re-reads the file when it
  changes (checked at most once a second), so a revoked key stops working without a restart.
- **Guard**: the ASGI app around the whole BentoML app (so BentoML's metrics never see an unknown
  path): Host allow-list (400), optional CORS (exact origins), API key (401), unknown path (404),
  non-JSON POST (415), one access-log line per request without patient data, and no exception text
  (which may hold claim values) reaching any log.

See docs/service.md, "Security".
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from features.errors import RecoupError

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

log = logging.getLogger("recoup.service")
access_log = logging.getLogger("recoup.access")

KEY_PREFIX = "rk_"
KEY_BYTES = 32
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RELOAD_EVERY_S = 1.0
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
OPEN_PATHS = ("/readyz", "/livez")  # probes: no key, no access-log line
METHODS = ("GET", "POST", "OPTIONS", "HEAD")  # others are logged as "other" (bounded values)
MAX_HEADER_CHARS = 512  # an API key or Host header longer than this is refused unread


# --------------------------------------------------------------------------------------
# key file
# --------------------------------------------------------------------------------------


def keys_file() -> Path:
    """``RECOUP_API_KEYS_FILE``, else ``$RECOUP_HOME/service/api_keys.json``."""
    p = os.environ.get("RECOUP_API_KEYS_FILE")
    if p:
        return Path(p).resolve()
    from features.settings import recoup_home

    return recoup_home() / "service" / "api_keys.json"


def key_hash(key: str) -> str:
    """SHA-256 of a key (hex). Keys are 256 random bits: a fast hash is enough, a salt adds nothing."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def read_keys(path: Path | None = None) -> list[dict]:
    """Every entry of the key file (active and revoked); [] when there is no file.

    A file that exists but cannot be read as a key file, or that other users may write (they could add
    a key of their own), raises RecoupError naming it."""
    path = path or keys_file()
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RecoupError(f"{path}: cannot read the API key file ({exc.strerror})") from None
    if mode & 0o022:
        raise RecoupError(
            f"{path}: the API key file is writable by other users (mode {mode:o}), who could add "
            f"a key of their own; chmod 600 {path}"
        )
    try:
        doc = json.loads(raw)
        keys = doc["keys"]
        if not isinstance(keys, list) or not all(
            isinstance(k, dict)
            and isinstance(k.get("name"), str)
            and isinstance(k.get("sha256"), str)
            and len(k["sha256"]) == 64
            for k in keys
        ):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise RecoupError(f'{path}: not an API key file (expected {{"keys": [{{"name", "sha256", ...}}]}})') from None
    return keys


def active_keys(keys: list[dict]) -> list[dict]:
    return [k for k in keys if not k.get("revoked")]


def write_keys(keys: list[dict], path: Path | None = None) -> None:
    """Write the key file atomically (``features.outputs.write_file``: temp file in the same folder, fsync,
    rename), mode 0600 from its creation on."""
    from features.outputs import write_file

    path = path or keys_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = json.dumps({"version": 1, "keys": keys}, indent=2).encode() + b"\n"

    def write(tmp: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(body)

    write_file(path, write)


def _locked(fn: Callable[[Path], Any]) -> Any:
    """Run a read-modify-write of the key file under an exclusive lock (two `recoup keys` at once)."""
    import fcntl

    path = keys_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.parent / ".api_keys.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fn(path)
    finally:
        os.close(fd)


def create_key(name: str) -> str:
    """A new key named ``name``; returns the key (the only time it is seen: only its hash is kept)."""
    if not NAME_RE.match(name or ""):
        raise RecoupError(f"key name {name[:70]!r} must be 1-64 letters, digits, '.', '_' or '-'")

    def go(path: Path) -> str:
        keys = read_keys(path)
        if any(k["name"] == name for k in active_keys(keys)):
            raise RecoupError(
                f"an active key named {name!r} exists; revoke it first "
                f"(recoup keys revoke {name}) or choose another name"
            )
        key = KEY_PREFIX + base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode().rstrip("=")
        keys.append({"name": name, "sha256": key_hash(key), "prefix": key[:7], "created": _now(), "revoked": None})
        write_keys(keys, path)
        return key

    return _locked(go)


def revoke_key(name: str) -> None:
    """Mark the active key ``name`` revoked (kept in the file, with the date, for the record)."""

    def go(path: Path) -> None:
        keys = read_keys(path)
        hits = [k for k in active_keys(keys) if k["name"] == name]
        if not hits:
            raise RecoupError(f"no active key named {name[:70]!r} in {path} (recoup keys list)")
        for k in hits:
            k["revoked"] = _now()
        write_keys(keys, path)

    _locked(go)


def list_keys() -> list[dict]:
    """Name, prefix, created, revoked of every key (never a hash)."""
    return [{k: e.get(k) for k in ("name", "prefix", "created", "revoked")} for e in read_keys()]


def keys_create_cli(name: str) -> None:
    """``recoup keys create NAME``: the key on stdout (once), where it is stored and how to send it on stderr."""
    key = create_key(name)
    print(key)
    print(
        f"API key {name!r} created in {keys_file()}; it is shown only this once. Clients send "
        f"'Authorization: Bearer KEY' (or 'X-API-Key: KEY').",
        file=sys.stderr,
    )


def keys_list_cli() -> None:
    """``recoup keys list``: one line per key, tab-separated (never a key or its hash)."""
    keys = list_keys()
    if not keys:
        print(f"no API keys in {keys_file()}")
    for k in keys:
        state = f"revoked {k['revoked']}" if k["revoked"] else "active"
        print(f"{k['name']}\t{k['prefix']}...\tcreated {k['created']}\t{state}")


def keys_revoke_cli(name: str) -> None:
    """``recoup keys revoke NAME``."""
    revoke_key(name)
    print(f"API key {name!r} revoked")


class KeyStore:
    """The active keys' hashes, re-read when the file changes (stat at most once per ``every`` s).

    An unreadable or broken file fails closed: no key is accepted until it is fixed."""

    def __init__(self, path: Path, every: float = RELOAD_EVERY_S):
        self.path, self.every = path, every
        self._seen: tuple | None = None
        self._checked = -1e18
        self.hashes: list[tuple[bytes, str]] = []  # (sha256 digest, name)
        self.broken = False
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.every:
            return
        self._checked = now
        try:
            st = self.path.stat()
            sig: tuple | None = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)  # mode: chmod is seen
        except FileNotFoundError:
            sig = None
        except OSError:
            sig = ("unreadable",)
        if sig == self._seen and not force:
            return
        self._seen = sig
        try:
            keys = active_keys(read_keys(self.path))
            self.hashes = [(bytes.fromhex(k["sha256"]), k["name"]) for k in keys]
            self.broken = False
        except (RecoupError, ValueError) as exc:
            log.error("API keys: %s; every request with a key is refused until it is fixed", exc)
            self.hashes, self.broken = [], True
        log.info("API keys: %d active in %s", len(self.hashes), self.path)

    @property
    def required(self) -> bool:
        """Keys are required as soon as the file has one (or is broken: fail closed)."""
        return bool(self.hashes) or self.broken

    def name_of(self, key: str) -> str | None:
        """The name of the active key ``key``; every stored hash is compared (constant time)."""
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        found = None
        for h, name in self.hashes:
            if hmac.compare_digest(h, digest):
                found = name
        return found


# --------------------------------------------------------------------------------------
# hosts
# --------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_all_interfaces(host: str) -> bool:
    return host.strip().strip("[]") in ("0.0.0.0", "::", "")


def split_hosts(text: str | None) -> list[str]:
    return [h.strip().lower() for h in (text or "").split(",") if h.strip()]


def allowed_hosts(bind_host: str, extra: list[str]) -> list[str]:
    """Host header names accepted: the loopback names, the bind address if it is one, and ``extra``."""
    names = list(LOOPBACK_NAMES) + [h.lower() for h in extra]
    b = bind_host.strip().strip("[]").lower()
    if b and not is_all_interfaces(b):
        names.append(b)
    return sorted(set(names))


def host_of(header: str) -> str:
    """The name of a Host header without its port: ``a.b:3000`` -> ``a.b``, ``[::1]:3000`` -> ``::1``.
    A header whose port is not digits (``localhost:1@evil.org``) is returned whole: no allowed name."""
    h = header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        name, port = (h[1:end], h[end + 1 :]) if end > 0 else (h, "")
        return name if port == "" or (port[:1] == ":" and _is_port(port[1:])) else h
    if h.count(":") == 1:
        name, port = h.rsplit(":", 1)
        return name if _is_port(port) else h
    return h


def _is_port(text: str) -> bool:
    return text == "" or (text.isascii() and text.isdigit() and len(text) <= 5)


# --------------------------------------------------------------------------------------
# the guard
# --------------------------------------------------------------------------------------


@dataclass
class GuardConfig:
    """What the guard enforces; from the environment ``recoup serve`` sets (:meth:`from_env`)."""

    bind_host: str = "127.0.0.1"
    hosts: list[str] = field(default_factory=lambda: list(LOOPBACK_NAMES))  # ["*"]: any
    cors_origins: list[str] = field(default_factory=list)
    keys_path: Path | None = None

    @classmethod
    def from_env(cls) -> "GuardConfig":
        bind = os.environ.get("RECOUP_SERVICE_HOST", "127.0.0.1")
        return cls(
            bind_host=bind,
            hosts=allowed_hosts(bind, split_hosts(os.environ.get("RECOUP_ALLOWED_HOSTS"))),
            cors_origins=[o.strip() for o in os.environ.get("RECOUP_CORS_ORIGINS", "").split(",") if o.strip()],
            keys_path=keys_file(),
        )


def _json_error(
    status: int,
    kind: str,
    message: str,
    field_name: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, list, bytes]:
    fields = [{"field": field_name, "message": message}] if field_name else []
    body = json.dumps(
        {"claim_id": None, "error": {"type": kind, "message": message, "fields": fields}}, separators=(",", ":")
    ).encode()
    hs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return status, hs + (headers or []), body


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return v.decode("latin-1")
    return None


def presented_key(scope: Scope) -> str | None:
    """``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    auth = _header(scope, b"authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    key = _header(scope, b"x-api-key")
    return key.strip() if key else None


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    mt = content_type.split(";", 1)[0].strip().lower()
    return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))


class Guard:
    """ASGI app around the BentoML app: hosts, CORS, keys, known paths, JSON content type, access log.

    ``known`` is the set of paths served (anything else is a JSON 404 answered here, so BentoML's
    metrics are labelled with these paths only)."""

    def __init__(self, app: Any, known: set[str], config: GuardConfig | None = None):
        self.config = config or GuardConfig.from_env()
        top = logging.getLogger("recoup")
        if top.level == logging.NOTSET:  # BentoML's root level is WARNING: keep the access log and key reloads
            top.setLevel(logging.INFO)
        self.app, self.known = app, set(known) | set(OPEN_PATHS)
        self.any_host = "*" in self.config.hosts
        self.hosts = set(self.config.hosts)
        self.keys = KeyStore(self.config.keys_path or keys_file())
        # any Host allowed: a web page that rebinds its name to 127.0.0.1 would be a "local" caller
        self.local_only = is_loopback(self.config.bind_host) and not self.any_host
        self.inner: Any = self._guarded
        if self.config.cors_origins:
            from starlette.middleware.cors import CORSMiddleware

            self.inner = CORSMiddleware(
                self._guarded,
                allow_origins=self.config.cors_origins,
                allow_methods=["GET", "POST"],
                allow_credentials=False,
                allow_headers=["authorization", "content-type", "x-api-key"],
                max_age=600,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        path, method = scope.get("path", ""), scope.get("method", "")
        endpoint = path if path in self.known else "other"
        note: dict = {"claims": None, "key": None}
        scope["recoup"] = note
        status = [0]

        async def send_noting(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            host = _header(scope, b"host") or ""
            if not self.any_host and (len(host) > MAX_HEADER_CHARS or host_of(host) not in self.hosts):
                await self._send(
                    send_noting, *_json_error(400, "bad_host", "Host header not allowed (see --allowed-host)", "host")
                )
            else:
                await self.inner(scope, receive, send_noting)  # CORS (when configured), then _guarded
        except Exception as exc:  # noqa: BLE001 - the message may hold claim values: log the class only
            log.error(
                "internal error %s on %s %s (message not logged: it may hold claim data)",
                type(exc).__name__,
                method,
                endpoint,
            )
            if status[0] == 0:
                await self._send(
                    send_noting,
                    *_json_error(500, "internal", f"internal error ({type(exc).__name__}); see the service log"),
                )
        finally:
            access_log.info(
                "%s key=%s method=%s endpoint=%s status=%s claims=%s ms=%.1f",
                dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
                note["key"] or "-",
                method if method in METHODS else "other",
                endpoint,
                status[0] or "-",
                "-" if note["claims"] is None else note["claims"],
                (time.perf_counter() - t0) * 1e3,
            )

    def _who(self, scope: Scope) -> tuple[str | None, tuple[int, str, str] | None]:
        """(key name or None, refusal or None) for a request to a path that needs a key."""
        self.keys.refresh()
        key = presented_key(scope)
        if self.keys.required:
            if not key:
                return None, (401, "unauthorized", "an API key is required: Authorization: Bearer KEY")
            name = self.keys.name_of(key) if len(key) <= MAX_HEADER_CHARS else None
            if name is None:
                return None, (401, "unauthorized", "invalid or revoked API key")
            return name, None
        # no key configured: open only to this machine, when served on loopback and not through a proxy
        client = (scope.get("client") or ("", 0))[0]
        proxied = any(_header(scope, h) for h in (b"x-forwarded-for", b"forwarded", b"x-real-ip"))
        if not (self.local_only and is_loopback(client)) or proxied:
            return None, (
                401,
                "unauthorized",
                "no API key is configured: only local calls are accepted (create one with: recoup keys create NAME)",
            )
        return None, None

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Key, known path, JSON content type; then the BentoML app."""
        name, refused = self._who(scope)
        scope["recoup"]["key"] = name
        if refused is not None:
            await self._send(
                send,
                *_json_error(refused[0], refused[1], refused[2], "authorization", [(b"www-authenticate", b"Bearer")]),
            )
        elif scope.get("path") not in self.known:
            await self._send(send, *_json_error(404, "not_found", "Not Found"))
        elif scope.get("method") in ("POST", "PUT", "PATCH") and not _is_json(_header(scope, b"content-type")):
            await self._send(
                send,
                *_json_error(
                    415,
                    "unsupported_media_type",
                    "the body must be JSON (Content-Type: application/json)",
                    "content-type",
                ),
            )
        else:
            await self.app(scope, receive, send)

    @staticmethod
    async def _send(send: Callable, status: int, headers: list, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def note_claims(scope: Scope, n: int | None) -> None:
    """Tell the access log how many claims the request carried (the guard put ``scope['recoup']``)."""
    note = scope.get("recoup")
    if isinstance(note, dict):
        note["claims"] = n
