"""Chaos: Mailpit's GET/PUT /api/v1/chaos, and our rules and rate limits at /api/sandbox/chaos."""

from __future__ import annotations

from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mailsandbox.web.inputs import error, json_value, plain
from mailsandbox.web.workers import Workers

NOT_ENABLED = "Chaos is not enabled"  # Mailpit's words, as its 400


# The web layer does not import sandbox/chaos (tests/test_layers.py): the composition root hands it in.
class ChaosLike(Protocol):
    enabled: bool

    def mailpit_json(self) -> dict[str, Any]: ...

    def set_mailpit_json(self, data: Any) -> None: ...

    def json(self) -> dict[str, Any]: ...

    def set_json(self, data: Any) -> None: ...

    def reset(self) -> None: ...


def chaos_routes(chaos: ChaosLike, workers: Workers) -> list[Route]:
    async def get_mailpit(request: Request) -> Response:
        if not chaos.enabled:
            return plain(400, NOT_ENABLED)
        return JSONResponse(chaos.mailpit_json())

    async def put_mailpit(request: Request) -> Response:
        """As Mailpit: the triggers given are set, those left out go back to their defaults (off)."""
        if not chaos.enabled:
            return plain(400, NOT_ENABLED)
        try:
            chaos.set_mailpit_json(await json_value(request, workers, empty={}))
        except ValueError as exc:
            return plain(400, str(exc))
        return JSONResponse(chaos.mailpit_json())

    async def get_ours(request: Request) -> Response:
        return JSONResponse(chaos.json())

    async def put_ours(request: Request) -> Response:
        """Rules and RateLimit replace what was set; Triggers (Mailpit's shape) too when given."""
        if not chaos.enabled:
            return error(400, "chaos is not enabled: start with --enable-chaos")
        try:
            chaos.set_json(await json_value(request, workers, empty={}))
        except ValueError as exc:
            return error(400, str(exc))
        return JSONResponse(chaos.json())

    async def delete_ours(request: Request) -> Response:
        """Every rule, rate limit and trigger off (chaos stays enabled)."""
        if not chaos.enabled:
            return error(400, "chaos is not enabled: start with --enable-chaos")
        chaos.reset()
        return JSONResponse(chaos.json())

    return [
        Route("/api/v1/chaos", get_mailpit, methods=["GET"]),
        Route("/api/v1/chaos", put_mailpit, methods=["PUT"]),
        Route("/api/sandbox/chaos", get_ours, methods=["GET"]),
        Route("/api/sandbox/chaos", put_ours, methods=["PUT"]),
        Route("/api/sandbox/chaos", delete_ours, methods=["DELETE"]),
    ]
