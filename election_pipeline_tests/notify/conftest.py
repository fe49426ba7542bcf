"""Local receivers for the notification tests: an HTTP server (``http.server`` in a thread)
that records every webhook call and answers with the status it is told, and an SMTP server
(aiosmtpd) that records every message. Both listen on free ports of 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from election_pipeline_tests.servers import free_port
from election_pipeline_tests.stages.conftest import workspace_factory, ws  # noqa: F401


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    """A webhook receiver on ``port``; ``url`` carries a token-like path, as a Slack URL does.
    ``statuses`` are the answers to the next calls (then 200); calls are recorded either way.
    Not listening until :meth:`start` (a call before gets "connection refused")."""

    port: int = field(default_factory=free_port)
    path: str = "/services/T0SECRET/B0SECRET/xoxTokenSecret123"
    statuses: list[int] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    delay: float = 0.0
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def accepted(self) -> list[Call]:
        """The calls answered with a 2xx."""
        return [c for c in self.calls if c.headers.get("x-answered", "200").startswith("2")]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                time.sleep(receiver.delay)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                headers = {k.lower(): v for k, v in self.headers.items()} | {"x-answered": str(status)}
                receiver.calls.append(Call(self.path, headers, body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver, listening."""
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def make_receiver() -> Iterator[Any]:
    """More receivers (``make_receiver(start=False)``: one that is down until started)."""
    made: list[Receiver] = []

    def make(start: bool = True) -> Receiver:
        r = Receiver()
        made.append(r.start() if start else r)
        return r

    try:
        yield make
    finally:
        for r in made:
            r.stop()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


@dataclass
class Smtp:
    host: str
    port: int
    inbox: _Inbox

    @property
    def messages(self) -> list[tuple[str, list[str], EmailMessage]]:
        return self.inbox.messages


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    """A local SMTP server (aiosmtpd) that keeps every message it receives."""
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Smtp("127.0.0.1", port, inbox)
    finally:
        controller.stop()


@pytest.fixture
def workspace(tmp_path):
    """The Dagster-level tests' workspace (folders in ``tmp_path/ws``)."""
    from election_pipeline_tests.builders import make_workspace

    return make_workspace(tmp_path / "ws")


@pytest.fixture
def instance(tmp_path):
    """A real, persistent Dagster instance in a temporary DAGSTER_HOME."""
    from dagster import DagsterInstance

    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as inst:
        yield inst
