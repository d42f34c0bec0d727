"""An HTTP JSON API as a system of record.

``GET {base}/{resource}/{id}`` reads; ``PATCH`` (update, reply, pay), ``PUT``
(create) and ``DELETE`` write, with an ``Idempotency-Key`` header the server
must honour: a repeated key returns the first answer. The server answers a
write with ``{"before": ..., "after": ...}``.
"""

from __future__ import annotations

from typing import Any

import httpx

from govflow.activities.connectors.connector import ConnectorError, Record, RecordCheck, WriteRequest, WriteResult

_METHOD = {"update": "PATCH", "reply": "PATCH", "pay": "PATCH", "create": "PUT", "delete": "DELETE"}


class HttpJsonConnector:
    """A system of record behind an HTTP JSON API: a record is ``/{resource}/{record_id}``, read with ``GET``
    and written with ``PATCH``, ``PUT`` or ``DELETE``, the idempotency key in an ``Idempotency-Key`` header."""

    def __init__(self, system: str, client: httpx.AsyncClient) -> None:
        self.system = system
        self._client = client

    def _url(self, resource: str, record_id: str) -> str:
        return f"/{resource}/{httpx.URL(record_id).raw_path.decode()}"

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectorError(f"{self.system}: {method} {url} failed: {exc}", retryable=True) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise ConnectorError(f"{self.system}: {method} {url} answered {response.status_code}", retryable=True)
        return response

    async def read(self, resource: str, record_id: str) -> Record | None:
        """The record as the API returns it, or None on 404."""
        url = self._url(resource, record_id)
        response = await self._call("GET", url)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ConnectorError(f"{self.system}: GET {url} answered {response.status_code}", retryable=False)
        return _object(self.system, url, response)

    async def write(self, request: WriteRequest, check: RecordCheck) -> WriteResult:
        """Check the record as it is now, then write it once under the request's idempotency key."""
        url = self._url(request.resource, request.record_id)
        # The server cannot run our check inside its write, so check the current
        # record first; a record that moved out of scope in between is the
        # server's to refuse (a conditional write), which this API does not offer.
        check(await self.read(request.resource, request.record_id))
        response = await self._call(
            _METHOD[request.operation],
            url,
            json=request.fields,
            headers={"Idempotency-Key": request.idempotency_key},
        )
        if response.status_code not in (200, 201):
            raise ConnectorError(
                f"{self.system}: {_METHOD[request.operation]} {url} answered {response.status_code}: "
                f"{response.text[:200]}",
                retryable=False,
            )
        body = _object(self.system, url, response)
        before, after = body.get("before"), body.get("after")
        if not (before is None or isinstance(before, dict)) or not (after is None or isinstance(after, dict)):
            raise ConnectorError(
                f"{self.system}: {url} answered without before/after objects: {str(body)[:200]}",
                retryable=False,
            )
        return WriteResult(before=before, after=after, replayed=response.headers.get("Idempotent-Replayed") == "true")


def _object(system: str, url: str, response: httpx.Response) -> Record:
    try:
        body = response.json()
    except ValueError:
        raise ConnectorError(f"{system}: {url} did not answer JSON", retryable=False) from None
    if not isinstance(body, dict):
        raise ConnectorError(f"{system}: {url} answered {type(body).__name__}, not an object", retryable=False)
    return body
