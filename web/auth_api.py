"""GET /api/sandbox/message/{ID}/auth: a message's SPF, DKIM, DMARC and ARC results (our extra path)."""

from __future__ import annotations

from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from mailsandbox.executors import ExecutorBusy
from mailsandbox.web import schema
from mailsandbox.web.inputs import error
from mailsandbox.web.routes import build


# The web layer does not import sandbox/auth (tests/test_layers.py): the composition root hands in the checker.
class AuthCheckerLike(Protocol):
    async def report(self, message_id: str, mailbox: str | None = None) -> dict[str, Any] | None: ...


class AuthApi:
    """GET /api/sandbox/message/{ID}/auth (web/routes.py)."""

    def __init__(self, checker: AuthCheckerLike) -> None:
        self.checker = checker

    async def message_auth(self, request: Request) -> Response:
        """The stored results, or the checks run now for a message that has none yet. With
        ?mailbox=ADDRESS: the copy that mailbox received, as the relay's hops left it."""
        message_id = request.path_params["id"]
        mailbox = request.query_params.get("mailbox") or None
        try:
            report = await self.checker.report(message_id, mailbox)
        except ExecutorBusy:
            return error(503, "the authentication checks are busy: try again", {"Retry-After": "1"})
        if report is None:
            return error(404, f"message not found in {mailbox}" if mailbox else "message not found")
        return JSONResponse(schema.auth(report))


def auth_routes(checker: AuthCheckerLike) -> list[BaseRoute]:
    return build({"auth": AuthApi(checker)})
