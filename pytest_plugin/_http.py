"""ApiClient: the sandbox's HTTP API, the one way the plugin reaches a sandbox (in-process or remote)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, unquote

import httpx


class SandboxApiError(RuntimeError):
    """The sandbox answered an API call with an error status, or could not be reached."""


class ApiClient:
    """Thin synchronous client over httpx; one instance per sandbox handle, safe for sequential threads."""

    def __init__(self, base_url: str, timeout: float = 10.0, *, token: str | None = None) -> None:
        """`base_url` may carry basic-auth credentials (http://user:pass@host:8025), a sandbox started
        with --ui-auth-file; `token` is sent as `Authorization: Bearer` (a sandbox's --api-token)."""
        url = httpx.URL(base_url.rstrip("/"))
        auth = (unquote(url.username), unquote(url.password)) if url.username else None
        url = url.copy_with(username=None, password=None)
        self.base_url = str(url).rstrip("/")  # without the password: this one appears in messages
        headers = {"Authorization": f"Bearer {token}"} if token else None
        # trust_env=False: an HTTP(S)_PROXY meant for the internet must not capture loopback calls.
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout, trust_env=False, auth=auth, headers=headers
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        ok_missing: bool = False,
    ) -> httpx.Response | None:
        try:
            response = self._client.request(method, path, params=params, json=json)
        except httpx.HTTPError as exc:
            raise SandboxApiError(f"{method} {self.base_url}{path}: {exc!r}") from exc
        if ok_missing and response.status_code == 404:
            return None
        if response.is_error:
            raise SandboxApiError(f"{method} {self.base_url}{path} -> {response.status_code}: {response.text[:500]}")
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        assert response is not None
        return response.json() if response.content else None

    # -- messages (Mailpit API v1 shapes) -------------------------------------
    def list_messages(self, start: int = 0, limit: int = 100, mailbox: str | None = None) -> dict[str, Any]:
        params: dict[str, str | int] = {"start": start, "limit": limit}
        if mailbox:
            params["mailbox"] = mailbox
        data = self._json("GET", "/api/v1/messages", params=params)
        return data if isinstance(data, dict) else {}

    def message(self, message_id: str) -> dict[str, Any]:
        data = self._json("GET", f"/api/v1/message/{quote(message_id, safe='')}")
        return data if isinstance(data, dict) else {}

    def raw(self, message_id: str) -> bytes:
        response = self.request("GET", f"/api/v1/message/{quote(message_id, safe='')}/raw")
        assert response is not None
        return response.content

    def check(self, message_id: str, name: str, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /api/v1/message/{ID}/{name} ("html-check", "link-check", "sa-check")."""
        data = self._json("GET", f"/api/v1/message/{quote(message_id, safe='')}/{name}", params=params)
        return data if isinstance(data, dict) else {}

    def trace(self, message_id: str) -> list[dict[str, Any]]:
        response = self.request("GET", f"/api/sandbox/message/{quote(message_id, safe='')}/trace", ok_missing=True)
        if response is None or not response.content:
            return []
        attempts: list[dict[str, Any]] = response.json()  # a list of Attempt (web/schema.py)
        return attempts

    def delete_messages(self, ids: Sequence[str] | None = None) -> None:
        self.request("DELETE", "/api/v1/messages", json={"IDs": list(ids)} if ids is not None else None)

    def mailboxes(self) -> Any:
        return self._json("GET", "/api/sandbox/mailboxes")

    # -- sandbox control ---------------------------------------------------------
    def info(self) -> dict[str, Any] | None:
        response = self.request("GET", "/api/v1/info", ok_missing=True)
        return response.json() if response is not None and response.content else None

    def reset(self) -> None:
        self.request("POST", "/api/sandbox/reset")

    def dns_records(self) -> list[dict[str, Any]]:
        data = self._json("GET", "/api/sandbox/dns/records")
        if isinstance(data, dict):
            data = data.get("records", data.get("Records", []))
        # The API writes Name/Type/Value/TTL; the plugin speaks lower case.
        rows = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
        return [{str(k).lower(): v for k, v in r.items()} for r in rows]

    def auth(self, message_id: str, mailbox: str | None = None) -> dict[str, Any]:
        """GET /api/sandbox/message/{ID}/auth: the message's SPF, DKIM, DMARC and ARC results (of the copy
        `mailbox` received, with the relay's hops' changes, when given)."""
        params = {"mailbox": mailbox} if mailbox else None
        data = self._json("GET", f"/api/sandbox/message/{quote(message_id, safe='')}/auth", params=params)
        return data if isinstance(data, dict) else {}

    def dns_add(self, record: Mapping[str, Any]) -> None:
        self.request("POST", "/api/sandbox/dns/records", json=dict(record))

    def dns_remove(self, record: Mapping[str, Any]) -> bool:
        """False when no such record was there (404)."""
        return self.request("DELETE", "/api/sandbox/dns/records", json=dict(record), ok_missing=True) is not None

    def hosts(self) -> dict[str, dict[str, Any]]:
        """Every host with a behaviour set, by lower-cased name."""
        data = self._json("GET", "/api/sandbox/hosts")
        if not isinstance(data, dict):
            return {}
        return {str(k).lower(): v for k, v in data.items() if isinstance(v, dict)}

    def host(self, name: str) -> dict[str, Any] | None:
        response = self.request("GET", f"/api/sandbox/hosts/{quote(name, safe='')}", ok_missing=True)
        if response is None or not response.content:
            return None
        data = response.json()
        return data if isinstance(data, dict) else None

    def set_host(self, name: str, behaviour: Mapping[str, Any]) -> None:
        self.request("PUT", f"/api/sandbox/hosts/{quote(name, safe='')}", json=dict(behaviour))

    def delete_host(self, name: str) -> None:
        self.request("DELETE", f"/api/sandbox/hosts/{quote(name, safe='')}", ok_missing=True)

    def clock(self, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        data = self._json("POST" if body is not None else "GET", "/api/sandbox/clock", json=body)
        return data if isinstance(data, dict) else {}

    def chaos(self, body: Mapping[str, Any] | None = None, *, reset: bool = False) -> dict[str, Any]:
        """GET /api/sandbox/chaos; with `body`, PUT it first (Rules, RateLimit, Triggers); `reset`: DELETE."""
        method = "DELETE" if reset else "PUT" if body is not None else "GET"
        data = self._json(method, "/api/sandbox/chaos", json=dict(body) if body is not None else None)
        return data if isinstance(data, dict) else {}
