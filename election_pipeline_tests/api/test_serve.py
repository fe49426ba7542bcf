"""``election-pipeline serve`` as a user starts it: a real process on a free port, queried over
HTTP; and its refusal to bind a non-loopback address without ELECTION_API_ALLOW_REMOTE=1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from election_pipeline.cli import main
from election_pipeline.cli.serve import is_loopback
from election_pipeline_tests.servers import free_port

from .conftest import E1, Api

BIN = Path(sys.executable).parent / "election-pipeline"


@pytest.mark.slow
def test_serve_answers_over_http_with_a_token(api: Api, tmp_path: Path):
    port = free_port()
    env = os.environ | {"ELECTION_DATABASE_URL": api.url, "ELECTION_API_PORT": str(port)}
    env.pop("ELECTION_API_HOST", None)
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen([str(BIN), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, Path(log.name).read_text()
                assert time.monotonic() < deadline, "the API did not start within 60 s"
                time.sleep(0.2)
        assert health.status_code == 200 and health.json()["database"] == "reachable"
        assert httpx.get(f"{base}/api/elections").status_code == 401
        summary = httpx.get(f"{base}/api/metrics/election/{E1}", headers=api.headers())
        assert summary.status_code == 200 and summary.json()["votes_cast"] == 6
        assert "server" not in summary.headers
    finally:
        process.terminate()
        process.wait(timeout=30)
    output = Path(log.name).read_text()
    assert f"http://127.0.0.1:{port}" in output
    assert api.tokens["observer"] not in output  # the token is never logged


def test_serve_refuses_a_remote_address_without_allow_remote(monkeypatch, capsys, tmp_path: Path):
    monkeypatch.setenv("ELECTION_DATABASE_URL", f"sqlite:///{tmp_path / 'ops.db'}")
    monkeypatch.delenv("ELECTION_API_ALLOW_REMOTE", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "not a loopback address" in err and "TLS" in err and "ELECTION_API_ALLOW_REMOTE=1" in err
    monkeypatch.setenv("ELECTION_API_HOST", "192.0.2.10")
    assert main(["serve"]) == 2
    assert "'192.0.2.10'" in capsys.readouterr().err


def test_loopback_addresses():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.5.6.7")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.10") and not is_loopback("::")
    assert not is_loopback("no-such-host.invalid")
