"""Relay, queue, clock, fake DNS and release endpoints: validate, call the relay/zone, serialize."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from mailsandbox.models import Attempt, StoredMessage
from mailsandbox.store import QueueItem, Store
from mailsandbox.web import schema
from mailsandbox.web.inputs import error, json_object, json_value, not_found, ok, plain
from mailsandbox.web.routes import build
from mailsandbox.web.workers import Workers

SETTLE_SECONDS = 10.0  # how long a clock or retry request waits for the queue to finish its pass
MAX_TTL = 2**31 - 1  # RFC 2181 §8


# The web layer imports no relay, zone or clock module (tests/test_layers.py): it states what it
# needs of them here, and the composition root hands in the real objects.
class RelayLike(Protocol):
    retry_interval: float
    warn_after: float
    give_up_after: float

    def trace(self, message: StoredMessage) -> list[Attempt]: ...
    def queued(self, message_id: str, recipient: str | None = None) -> list[QueueItem]: ...
    async def retry(self, message_id: str, recipient: str | None = None) -> int: ...
    async def drop(self, message_id: str, recipient: str | None = None) -> int: ...
    def advance(self, seconds: float) -> float: ...
    def skip_to_next_retry(self) -> float | None: ...
    def next_retry(self) -> float | None: ...
    async def settle(self, timeout: float = ...) -> None: ...
    def zone_changed(self) -> None: ...
    def hosts(self) -> dict[str, dict[str, Any]]: ...
    def host(self, name: str) -> dict[str, Any]: ...
    def set_host(self, name: str, data: Any) -> dict[str, Any]: ...
    def remove_host(self, name: str) -> bool: ...
    async def release(self, message_id: str, recipients: Any) -> dict[str, Any]: ...


class ReleaserLike(Protocol):
    async def release(self, message_id: str, recipients: Any) -> dict[str, Any]: ...


class ZoneLike(Protocol):
    def records(self) -> list[dict[str, object]]: ...
    def add_record(self, name: str, rdtype: str, value: str, ttl: int = ...) -> None: ...
    def remove_record(self, name: str, rdtype: str, value: str | None = ...) -> int: ...


class ClockLike(Protocol):
    def now(self) -> float: ...
    def advance(self, seconds: float) -> float: ...

    @property
    def offset(self) -> float: ...


_iso = schema.iso_or_none


async def _body(request: Request, workers: Workers) -> dict[str, Any]:
    """A JSON object with its keys lower-cased (Mailpit writes "To", scripts write "to")."""
    data = await json_object(request, workers)  # ValueError -> 400 in _guard
    return {str(k).lower().replace("-", "_"): v for k, v in data.items()}


def _ttl(value: object) -> int:
    """A record's TTL: a whole number of seconds, 0 to 2**31 - 1 (JSON's 1e400 is inf, NaN is NaN)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TTL:
        raise ValueError(f"TTL must be a whole number of seconds from 0 to {MAX_TTL}")
    return value


Handler = Callable[[Request], Awaitable[Response]]


def _guard(handler: Handler) -> Handler:
    """Bad JSON or values become 400 with a JSON error, as the rest of the API does (OverflowError:
    a number too large for what it names)."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except (ValueError, TypeError, OverflowError) as exc:
            return error(400, str(exc) or "bad request")

    return guarded


class RelayApi:
    """The endpoints hold only explicit collaborators; `relay` is None when the relay is off. Store reads
    (the queue, traces) run on `workers`; what changes the relay, zone or clock stays on the loop."""

    def __init__(
        self, *, store: Store, relay: RelayLike | None, zone: ZoneLike | None, clock: ClockLike,
        releaser: ReleaserLike | None = None, workers: Workers,
    ) -> None:
        self.store = store
        self.relay = relay
        self.zone = zone
        self.clock = clock
        self.releaser = releaser
        self.workers = workers

    wrap = staticmethod(_guard)  # web/routes.py puts each handler of this group inside it

    # -- trace and queue ---------------------------------------------------------------------

    async def trace(self, request: Request) -> Response:
        """GET /api/v1/message/{ID}/trace: every hop and attempt, oldest first."""
        return await self.workers.run(self._trace, request.path_params["id"])

    def _trace(self, message_id: str) -> Response:
        message = self.store.get(message_id)
        if message is None:
            return error(404, "message not found")
        if self.relay is None:
            return JSONResponse([schema.attempt(a) for a in self.store.trace(message.id)])
        return JSONResponse([schema.attempt(a) for a in self.relay.trace(message)])

    async def queue(self, request: Request) -> Response:
        """GET /api/sandbox/queue: deferred recipients, soonest retry first."""
        return JSONResponse(await self.workers.run(self._queue_json, self.store.queue))

    def _queue_json(self, items: Callable[[], list[QueueItem]]) -> list[dict[str, Any]]:
        found = items()
        messages = {i.message_id: self.store.get(i.message_id) for i in found}
        return [schema.queue_item(i, messages[i.message_id]) for i in found]

    async def retry(self, request: Request) -> Response:
        """POST /api/sandbox/queue/{ID}/retry[?recipient=]: try now; answers with what is still queued."""
        if self.relay is None:
            return error(404, "the relay is off")
        relay = self.relay
        message_id, recipient = request.path_params["id"], request.query_params.get("recipient")
        if not await self.workers.run(relay.queued, message_id, recipient):
            return error(404, "nothing of that message is queued")
        tried = await relay.retry(message_id, recipient)
        await self._settle()  # its DSNs, if any, are delivered too
        left = await self.workers.run(self._queue_json, lambda: relay.queued(message_id))
        return JSONResponse({"Tried": tried, "Queued": left})

    async def drop(self, request: Request) -> Response:
        """DELETE /api/sandbox/queue/{ID}[?recipient=]: take it out of the queue, no bounce."""
        if self.relay is None:
            return error(404, "the relay is off")
        dropped = await self.relay.drop(request.path_params["id"], request.query_params.get("recipient"))
        if not dropped:
            return error(404, "nothing of that message is queued")
        return JSONResponse({"Dropped": dropped})

    # -- the clock -------------------------------------------------------------------------------

    async def _clock_json(self) -> dict[str, Any]:
        now = self.clock.now()
        out: dict[str, Any] = {"Now": now, "Time": _iso(now), "Offset": self.clock.offset}
        if self.relay is not None:
            items = await self.workers.run(self.store.queue)
            upcoming = min((i.next_attempt for i in items), default=None)  # the relay's next_retry
            out.update({
                "NextRetry": upcoming, "NextRetryTime": _iso(upcoming), "Queued": len(items),
                "RetryInterval": self.relay.retry_interval, "WarnAfter": self.relay.warn_after,
                "GiveUpAfter": self.relay.give_up_after,
            })
        return out

    async def get_clock(self, request: Request) -> Response:
        """GET /api/sandbox/clock: the sandbox's time, its offset from real time, the next retry."""
        return JSONResponse(await self._clock_json())

    async def set_clock(self, request: Request) -> Response:
        """POST /api/sandbox/clock {"advance": SECONDS} or {"next_retry": true}: move time forward,
        then answer once the queue has worked through everything that came due."""
        data = await _body(request, self.workers)
        if "advance" in data:
            seconds = float(data["advance"])
            if not 0 <= seconds <= 10 * 365 * 86400:
                raise ValueError("advance must be between 0 and ten years of seconds")
            if self.relay is not None:
                self.relay.advance(seconds)
            else:
                self.clock.advance(seconds)
        elif data.get("next_retry"):
            if self.relay is None:
                return error(404, "the relay is off")
            upcoming = await self.workers.run(self.relay.next_retry)  # skip_to_next_retry, its read off the loop
            if upcoming is not None:
                self.relay.advance(max(0.0, upcoming - self.clock.now()))
        else:
            raise ValueError('give {"advance": seconds} or {"next_retry": true}')
        await self._settle()
        return JSONResponse(await self._clock_json())

    async def _settle(self) -> None:
        """Wait for the queue's pass; a huge queue still answers, with the state so far."""
        if self.relay is not None:
            with contextlib.suppress(TimeoutError):
                await self.relay.settle(SETTLE_SECONDS)

    # -- fake DNS --------------------------------------------------------------------------------

    async def records(self, request: Request) -> Response:
        """GET /api/sandbox/dns/records: every record of every zone."""
        if self.zone is None:
            return error(404, "the fake DNS is off")
        return JSONResponse([_record_json(r) for r in self.zone.records()])

    async def add_records(self, request: Request) -> Response:
        """POST /api/sandbox/dns/records {"Name", "Type", "Value", "TTL"} (or {"Records": [...]})."""
        if self.zone is None:
            return error(404, "the fake DNS is off")
        data = await _body(request, self.workers)
        items = data.get("records", [data])
        if not isinstance(items, list) or not items:
            raise ValueError("Records must be a non-empty list")
        added = []
        for item in items:
            name, rdtype, value = _record_args(item)
            assert value is not None
            ttl = _ttl({str(k).lower(): v for k, v in item.items()}.get("ttl", 300))
            self.zone.add_record(name, rdtype, value, ttl=ttl)  # ZoneError is a ValueError: 400
            added.append({"Name": name, "Type": rdtype.upper(), "Value": value, "TTL": ttl})
        self._zone_changed()
        return JSONResponse(added, status_code=201)

    async def remove_records(self, request: Request) -> Response:
        """DELETE /api/sandbox/dns/records with {"Name", "Type", "Value"?} as JSON or query."""
        if self.zone is None:
            return error(404, "the fake DNS is off")
        data = await _body(request, self.workers) or {k.lower(): v for k, v in request.query_params.items()}
        name, rdtype, value = _record_args(data, value_required=False)
        removed = self.zone.remove_record(name, rdtype, value)
        self._zone_changed()
        if not removed:
            return error(404, "no such record")
        return JSONResponse({"Removed": removed})

    def _zone_changed(self) -> None:
        if self.relay is not None:
            self.relay.zone_changed()

    # -- simulated hosts ---------------------------------------------------------------------------

    async def list_hosts(self, request: Request) -> Response:
        """GET /api/sandbox/hosts: every host with a behaviour; others accept everything."""
        if self.relay is None:
            return error(404, "the relay is off")
        return JSONResponse(self.relay.hosts())

    async def get_host(self, request: Request) -> Response:
        if self.relay is None:
            return error(404, "the relay is off")
        return JSONResponse(self.relay.host(request.path_params["name"]))

    async def put_host(self, request: Request) -> Response:
        """PUT /api/sandbox/hosts/{name} {"behaviour": "tempfail", "reply": "451 4.3.0 ...", ...}."""
        if self.relay is None:
            return error(404, "the relay is off")
        data = await json_value(request, self.workers, {})
        # off the loop: a signing host without a key gets an RSA key made
        return JSONResponse(await self.workers.run(self.relay.set_host, request.path_params["name"], data))

    async def delete_host(self, request: Request) -> Response:
        if self.relay is None:
            return error(404, "the relay is off")
        if not self.relay.remove_host(request.path_params["name"]):
            return error(404, "that host has no behaviour set")
        return JSONResponse({"Removed": request.path_params["name"]})

    # -- release -----------------------------------------------------------------------------------

    async def release(self, request: Request) -> Response:
        """POST /api/v1/message/{ID}/release {"To": ["someone@example.com"]} (Mailpit's shape)."""
        if self.releaser is None:
            return plain(400, "SMTP error: release is not configured")
        try:
            data = await _body(request, self.workers)
        except ValueError as exc:
            return plain(400, str(exc))
        try:
            await self.releaser.release(request.path_params["id"], data.get("to"))
        except KeyError:
            return not_found()
        # Mailpit answers every refusal with a 400 and its text: "Failed: ..." for the allow-list,
        # "SMTP error: ..." when the upstream did not take it.
        except PermissionError as exc:
            return plain(400, f"Failed: {exc}")
        except ConnectionError as exc:
            return plain(400, f"SMTP error: {exc}")
        except ValueError as exc:
            return plain(400, str(exc))
        return ok()


def _record_json(record: dict[str, object]) -> dict[str, object]:
    return {"Zone": record.get("zone"), "Name": record.get("name"), "Type": record.get("type"),
            "TTL": record.get("ttl"), "Value": record.get("value")}


def _record_args(item: Any, value_required: bool = True) -> tuple[str, str, str | None]:
    if not isinstance(item, dict):
        raise ValueError("a record is a JSON object")
    item = {str(k).lower(): v for k, v in item.items()}
    name, rdtype, value = item.get("name"), item.get("type"), item.get("value")
    if not isinstance(name, str) or not name or not isinstance(rdtype, str) or not rdtype:
        raise ValueError("a record needs Name and Type")
    if value is None and value_required:
        raise ValueError("a record needs a Value")
    if value is not None and not isinstance(value, str):
        raise ValueError("Value must be a string in zone-file syntax")
    return name, rdtype, value


def relay_routes(
    *, store: Store, relay: RelayLike | None, zone: ZoneLike | None, clock: ClockLike,
    releaser: ReleaserLike | None = None, workers: Workers | None = None,
) -> list[BaseRoute]:
    """The routes the composition root mounts: the Relay (None when it is off), the Zone, the
    ManualClock; `releaser` defaults to the relay (pass a Releaser to release with the relay off);
    `workers` are the HTTP layer's threads (share create_app's)."""
    api = RelayApi(
        store=store, relay=relay, zone=zone, clock=clock, releaser=releaser or relay, workers=workers or Workers()
    )
    return build({"relay": api})
