"""Helpers of the tests that start a real server: a free TCP port on 127.0.0.1, and a GraphQL
query to a running Dagster webserver (``POST /graphql``)."""

from __future__ import annotations

import json
import socket
import urllib.request
from typing import Any


def free_port() -> int:
    """A port nothing listens on now (the OS picks it; the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def graphql_payload(url: str, query: str, variables: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    """The whole JSON answer of the webserver at ``url`` to ``query`` (``data`` and ``errors``)."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def graphql_data(url: str, query: str, variables: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    """The ``data`` of :func:`graphql_payload`; an AssertionError when the answer has errors."""
    payload = graphql_payload(url, query, variables, timeout)
    if payload.get("errors"):
        raise AssertionError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]
