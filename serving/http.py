"""The HTTP protocol of the service's workers: uvicorn's httptools protocol with a bound on the request
head (request line and headers).

uvicorn's httptools protocol (what BentoML's workers run when httptools is installed) reads request
heads of any size: a caller without a key could send a 50 MB header and the worker held it in memory
before any check of ours ran (h11, the other protocol, stops at 16 KiB). Here the bytes received while a
request's head is incomplete are counted (after each read is parsed, so the start of a body that
arrives with its head is not), and past :data:`MAX_HEAD_BYTES` the connection gets ``431`` and is
closed: the parser never holds more than the bound plus one read (asyncio reads 256 KiB at most).

:func:`install` makes it uvicorn's ``auto`` protocol; ``serving.service`` calls it at import, which
happens in each worker before uvicorn builds its configuration.
"""

from __future__ import annotations

from typing import Any

#: the largest request head (request line + headers) accepted: nginx's default buffers hold 32 KiB,
#: h11 stops at 16 KiB; an API key, a Host and a few proxy headers need well under 2 KiB
MAX_HEAD_BYTES = 64 * 1024

_BODY = (
    b'{"claim_id":null,"error":{"type":"headers_too_large","message":"request line and headers over '
    + str(MAX_HEAD_BYTES).encode()
    + b' bytes","fields":[{"field":"headers","message":"at most '
    + str(MAX_HEAD_BYTES).encode()
    + b' bytes"}]}}'
)
_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\nconnection: close\r\n\r\n" + _BODY
)


def _protocol_class() -> type:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """httptools, with the request head bounded to :data:`MAX_HEAD_BYTES`."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_head = True
            self._head_bytes = 0

        def data_received(self, data: bytes) -> None:
            # parse first: a chunk that completes the head and carries the start of the body (a large
            # POST arrives that way) is not head; only bytes read while the head is still incomplete count
            super().data_received(data)
            if self._in_head and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self._in_head = False
                    self.transport.write(_RESPONSE)
                    self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._head_bytes = 0

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

    return BoundedHttpToolsProtocol


def install() -> None:
    """Make the bounded protocol uvicorn's ``auto`` HTTP protocol (no-op without httptools: h11 bounds
    heads itself)."""
    try:
        import httptools  # noqa: F401
        from uvicorn import config
    except ImportError:
        return
    global BoundedHttpToolsProtocol
    BoundedHttpToolsProtocol = _protocol_class()
    config.HTTP_PROTOCOLS["auto"] = f"{__name__}:BoundedHttpToolsProtocol"
    config.HTTP_PROTOCOLS["httptools"] = f"{__name__}:BoundedHttpToolsProtocol"


BoundedHttpToolsProtocol: type | None = None
