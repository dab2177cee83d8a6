"""The OpenAPI document covers every route the app serves and is reachable over HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from starlette.routing import Route, WebSocketRoute

import mailsandbox.web.app
from mailsandbox.clock import ManualClock
from mailsandbox.events import EventBus
from mailsandbox.store.sqlite import SqliteStore
from mailsandbox.web.auth_api import auth_routes
from mailsandbox.web.openapi import OPENAPI_PATH, document
from mailsandbox.web.relay_api import relay_routes
from mailsandbox.web.send_api import Outgoing, send_routes
from mailsandbox.web.workers import Workers


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    s = SqliteStore(":memory:")
    yield s
    s.close()


async def _reset() -> None:
    return None


async def _submit(outgoing: Outgoing, peer: str) -> str:
    return ""


def test_every_route_is_documented(store: SqliteStore) -> None:
    relay = relay_routes(store=store, relay=None, zone=None, clock=ManualClock())
    send = send_routes(_submit, Workers(), 0)
    extra = [*relay, *auth_routes(None), *send]  # type: ignore[arg-type]  # the routes only, never called
    app = mailsandbox.web.app.create_app(store, EventBus(), info=dict, reset=_reset, extra_routes=extra)
    served = {_shape(r.path) for r in app.routes if isinstance(r, Route | WebSocketRoute) and r.path != "/"}
    documented = {_shape(p) for p in document()["paths"]}
    assert served - documented == set()


def test_document_is_served_and_refs_resolve(client: httpx.Client) -> None:
    doc = client.get(OPENAPI_PATH).json()
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', str(doc).replace("'", '"')))
    assert refs and refs <= set(schemas)
