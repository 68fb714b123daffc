"""The service's HTML pages, served without the internet (hospital networks often have none).

- ``GET /``: what this service is (name, model version, as-of date), with links to the API docs, the
  model, the OpenAPI document and the contract;
- ``GET /docs``: Swagger UI, its script, style sheet and icon served by the service itself from the
  copy that BentoML ships (``bentoml/_internal/server/static_content``, read at run time: nothing of
  Swagger UI is copied into this repository). FastAPI's default page loads them from a CDN;
- ``GET /contract``: docs/contract.md (when the checkout or the Bento has it), rendered in the browser
  by the ``marked`` script BentoML ships alongside Swagger UI.

No page refers to any host but the service's own. The routes are wired in ``serving.service``.
"""

from __future__ import annotations

import functools
import html
from importlib import resources
from pathlib import Path
from typing import Any

#: where the pages' assets are served: ``/docs/assets/<name>``
ASSET_PREFIX = "/docs/assets/"
#: the assets served, from BentoML's static content, with their media types
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-light-32x32.png": "image/png",
    "marked.min.js": "text/javascript; charset=utf-8",
}
#: the contract, relative to the project root (the checkout's, or a Bento's ``src``)
CONTRACT_DOC = Path("docs") / "contract.md"
TITLE = "recoup scoring service"


@functools.cache
def asset(name: str) -> bytes:
    """One of :data:`ASSETS`, read once per process from the installed BentoML package."""
    if name not in ASSETS:
        raise KeyError(name)
    return (resources.files("bentoml._internal.server") / "static_content" / name).read_bytes()


def contract_path() -> Path | None:
    """docs/contract.md of the project this service runs from, or None (e.g. installed as a wheel)."""
    p = Path(__file__).resolve().parent.parent / CONTRACT_DOC
    return p if p.is_file() else None


def docs_html(openapi_url: str = "/openapi.json") -> str:
    """Swagger UI over ``openapi_url``, every asset from :data:`ASSET_PREFIX` (no CDN, no online validator)."""
    from fastapi.openapi.docs import get_swagger_ui_html

    page = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{TITLE}: API docs",
        swagger_js_url=ASSET_PREFIX + "swagger-ui-bundle.js",
        swagger_css_url=ASSET_PREFIX + "swagger-ui.css",
        swagger_favicon_url=ASSET_PREFIX + "favicon-light-32x32.png",
        oauth2_redirect_url=None,
        swagger_ui_parameters={"validatorUrl": None, "defaultModelsExpandDepth": 0},
    )
    return bytes(page.body).decode()


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "table{border-collapse:collapse}td{padding:.2rem .8rem .2rem 0;vertical-align:top}"
    "td:first-child{color:#666}code{background:#f3f3f3;padding:0 .2rem}"
)


def _page(title: str, body: str, head: str = "") -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<link rel="icon" href="{ASSET_PREFIX}favicon-light-32x32.png"><style>{_STYLE}</style>{head}</head>'
        f"<body>{body}</body></html>"
    )


def index_html(info: dict[str, Any]) -> str:
    """The home page: the service, the model being served (``GET /model``'s fields) and where to go next."""
    e = html.escape
    rows = [
        ("model", f"{info.get('name')} version {info.get('version')}"),
        ("trained as of", info.get("as_of")),
        ("horizon", f"{info.get('horizon_days')} days" if info.get("horizon_days") is not None else None),
        ("rulebook", info.get("rulebook_version")),
        ("loaded from", info.get("source")),
    ]
    table = "".join(f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in rows if v not in (None, ""))
    contract = (
        '<li><a href="/contract">the contract</a>: what a CLAIM and a SCORE are (docs/contract.md)</li>'
        if contract_path() is not None
        else "<li>the contract: docs/contract.md of the recoup repository</li>"
    )
    body = (
        f"<h1>{e(TITLE)}</h1>"
        "<p>Recoupment risk of US healthcare claims: the probability that a claim's payment is taken back, "
        "the expected amount, likely causes and plain-language reasons.</p>"
        f'<table id="model">{table}</table>'
        "<ul>"
        '<li><a href="/docs">API docs</a> (Swagger UI): <code>POST /score</code>, <code>POST /score_batch</code>, '
        "<code>GET /model</code>, <code>POST /refresh</code>, with example requests and answers</li>"
        '<li><a href="/model">/model</a>: the model, its metrics and the state of its history (JSON)</li>'
        '<li><a href="/openapi.json">/openapi.json</a>: the OpenAPI document, for client generators</li>'
        f"{contract}"
        '<li><a href="/readyz">/readyz</a>, <a href="/livez">/livez</a>, <a href="/metrics">/metrics</a>: '
        "probes and Prometheus metrics</li>"
        "</ul>"
    )
    return _page(f"{TITLE}: {info.get('name')} v{info.get('version')}", body)


def contract_html(markdown: str) -> str:
    """docs/contract.md as a page: the text in a ``<pre>`` (readable without scripts), rendered by marked."""
    body = (
        '<p><a href="/">home</a> · <a href="/docs">API docs</a></p>'
        f'<pre id="doc" style="white-space:pre-wrap">{html.escape(markdown)}</pre>'
        f'<script src="{ASSET_PREFIX}marked.min.js"></script>'
        "<script>const d=document.getElementById('doc');"
        "if(window.marked){const m=document.createElement('main');m.innerHTML=marked.parse(d.textContent);"
        "d.replaceWith(m);}</script>"
    )
    return _page(f"{TITLE}: the contract", body)
