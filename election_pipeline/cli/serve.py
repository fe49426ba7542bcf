"""``election-pipeline serve``: the HTTP API (docs/api.md), served by uvicorn.

Bound to ``ELECTION_API_HOST`` (default 127.0.0.1) and ``ELECTION_API_PORT`` (default 8000),
or ``--host``/``--port``. An address that is not the loopback is refused unless
``ELECTION_API_ALLOW_REMOTE=1``: tokens travel in clear over plain HTTP, so put a
TLS-terminating proxy in front first. The access log shows method, path and status, never
the Authorization header.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from election_pipeline.api import create_app
    from election_pipeline.settings import load_settings

    settings = load_settings()
    host = args.host or settings.api_host
    port = args.port or settings.api_port
    if not is_loopback(host) and not settings.api_allow_remote:
        print(
            f"election-pipeline: error: refusing to serve the API on {host!r}, which is not a loopback address: "
            "put a TLS-terminating proxy in front (tokens travel in clear over HTTP) and set "
            "ELECTION_API_ALLOW_REMOTE=1",
            file=sys.stderr,
        )
        return 2
    app = create_app(settings.database_url)
    print(f"election-pipeline API on http://{host}:{port} (docs: /docs, schema: /openapi.json)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=args.log_level, server_header=False, proxy_headers=False)
    return 0


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535 (got {text[:20]!r})")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API (uvicorn)", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", help="address to bind (default: ELECTION_API_HOST, 127.0.0.1)")
    p.add_argument("--port", type=_port, help="port (default: ELECTION_API_PORT, 8000)")
    p.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"), default="info")
    p.set_defaults(func=cmd_serve)
