"""What the routes depend on: the database session, the caller (a bearer token, or the
public when ``ELECTION_API_PUBLIC_READ=1`` opens the reads), and HTTP caching (ETag).

The ETag of a read is the SHA-256 of the request (path and query) and of the database's
*data version*: the latest writes of the pipeline and of the analysts (the newest
``updated_at`` of elections, constituencies, hourly stats, election metrics and alerts,
the newest file job, the row counts of those tables and of the audit trail; rejected
lines are published in the same transaction as their file's job and removed with it, so the
file jobs' figures cover them without counting a table that can grow large). A request
with ``If-None-Match`` equal to the current ETag gets ``304 Not Modified`` without the
figures being read; any materialisation or alert change gives every read a new ETag.

On PostgreSQL the aggregates are not re-run while nothing was written: the data version is
kept with the snapshot it was read under (``pg_current_snapshot()``: the transactions
finished and in progress at that instant, PostgreSQL 13 or later), and a read whose own
snapshot is the same sees exactly the same committed data, so it reuses that version
(:class:`SnapshotShortcut`). Any write transaction in the cluster, even in another
database, changes the snapshot and the aggregates run again: they decide the version, so a
write elsewhere changes no ETag.

Because the ETag names the request and the data version, the rendered answer of a read is
the same for every request with that ETag: :func:`cached_json` keeps the rendered JSON of
the reads whose figures cost the most (the dashboard summary, the alert list, the metrics
of an election or a constituency, the hourly stats) in :class:`ResponseCache`,
keyed by the ETag, so that a repeated read costs the token check and the data-version query
but neither the figures nor their serialisation. A change in the data changes the data
version, hence the key: the next request computes the figures afresh.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import TypeAdapter
from sqlalchemy import ColumnClause, Engine, func, literal_column, select
from sqlalchemy.orm import Session

from election_pipeline.api.tokens import Role, authenticate, may
from election_pipeline.db.models import (
    Alert,
    AlertEvent,
    Constituency,
    Election,
    ElectionMetrics,
    FileProcessingJob,
    HourlyStats,
)

bearer = HTTPBearer(auto_error=False, description="a token from `election-pipeline tokens create`")


class ApiError(Exception):
    """An error answered as JSON ``{"detail": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class NotModified(Exception):
    """The client's copy (``If-None-Match``) is current: answer 304."""

    def __init__(self, etag: str) -> None:
        super().__init__(etag)
        self.etag = etag


@dataclass(frozen=True)
class Caller:
    """Who is asking: a token's name and role, or the public (``name`` None)."""

    name: str | None
    role: str | None


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_db(request: Request) -> Iterator[Session]:
    """A session on the operational database for one request."""
    with Session(engine_of(request), expire_on_commit=False) as db:
        yield db


DB = Annotated[Session, Depends(get_db)]


def _caller(request: Request, credentials: HTTPAuthorizationCredentials | None, db: Session) -> Caller | None:
    if credentials is None:
        if request.headers.get("authorization"):
            raise ApiError(401, "the Authorization header must be `Bearer <token>`", {"WWW-Authenticate": "Bearer"})
        return None
    token = authenticate(db, credentials.credentials)
    if token is None:
        raise ApiError(401, "the token is not valid (unknown or revoked)", {"WWW-Authenticate": "Bearer"})
    return Caller(name=token.name, role=token.role)


def require(role: Role, *, public: bool = False) -> Any:
    """A dependency letting through callers whose token has at least ``role``; with
    ``public``, also callers without a token when ``ELECTION_API_PUBLIC_READ=1``."""

    def dependency(
        request: Request,
        db: DB,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        caller = _caller(request, credentials, db)
        if caller is None:
            if public and request.app.state.public_read:
                return Caller(name=None, role=None)
            raise ApiError(
                401, "a bearer token is needed (Authorization: Bearer <token>)", {"WWW-Authenticate": "Bearer"}
            )
        if not may(caller.role, role):
            raise ApiError(403, f"the role {caller.role} may not do this: it needs {role.value} or above")
        return caller

    return Depends(dependency)


#: Reads: an observer token (or none, when the reads are public).
Reader = Annotated[Caller, require(Role.OBSERVER, public=True)]
#: Alert triage: an analyst token.
Analyst = Annotated[Caller, require(Role.ANALYST)]
#: Token management: an admin token.
Admin = Annotated[Caller, require(Role.ADMIN)]


def _data_version_parts() -> list[Any]:
    return [
        select(func.max(Election.updated_at)).scalar_subquery(),
        select(func.count()).select_from(Election).scalar_subquery(),
        select(func.max(Constituency.updated_at)).scalar_subquery(),
        select(func.count()).select_from(Constituency).scalar_subquery(),
        select(func.max(HourlyStats.updated_at)).scalar_subquery(),
        select(func.count()).select_from(HourlyStats).scalar_subquery(),
        select(func.max(ElectionMetrics.updated_at)).scalar_subquery(),
        select(func.max(Alert.updated_at)).scalar_subquery(),
        select(func.count()).select_from(Alert).scalar_subquery(),
        select(func.count()).select_from(AlertEvent).scalar_subquery(),
        select(func.max(FileProcessingJob.started_at)).scalar_subquery(),
        select(func.max(FileProcessingJob.completed_at)).scalar_subquery(),
        select(func.count()).select_from(FileProcessingJob).scalar_subquery(),
    ]


def data_version(db: Session) -> str:
    """The database's data version (see the module docstring), as text."""
    return _version_text(db.execute(select(*_data_version_parts())).one())


def _version_text(values: Any) -> str:
    return "|".join(str(v) for v in values)


#: The snapshot of the running statement, as text (PostgreSQL 13 or later).
PG_SNAPSHOT: ColumnClause[str] = literal_column("pg_current_snapshot()::text")


class SnapshotShortcut:
    """The data version on PostgreSQL without its aggregates while nothing was written.

    The last version read is kept with the snapshot of the statement that read it. A
    snapshot names every transaction finished before it and every one still running, so two
    statements with the same snapshot see the same committed rows: the kept version is
    still exact. One query, with no table read, replaces the 13 aggregates (two of them
    counts over tables that grow with the election). Not thread-safe on its own: the
    :class:`DataVersionGate` runs one version query at a time."""

    def __init__(self) -> None:
        self._snapshot: str | None = None
        self._version = ""
        #: How many versions were answered by the snapshot alone, and by the aggregates.
        self.reused = 0
        self.computed = 0

    def version(self, db: Session) -> str:
        """The data version as :func:`data_version` computes it, read through ``db``."""
        if db.get_bind().dialect.name != "postgresql":
            self.computed += 1
            return data_version(db)
        snapshot = db.execute(select(PG_SNAPSHOT)).scalar_one()
        if snapshot == self._snapshot:
            self.reused += 1
            return self._version
        # The snapshot and the aggregates in one statement: both under the same snapshot.
        row = db.execute(select(PG_SNAPSHOT, *_data_version_parts())).one()
        self._snapshot, self._version = row[0], _version_text(row[1:])
        self.computed += 1
        return self._version


class DataVersionGate:
    """One data-version query at a time for all the requests that want one.

    Under load every read would run :func:`data_version` (13 aggregates, two of them counts
    over tables that grow with the election) at the same moment, each on its own connection.
    Instead a request takes the answer of the first query that *starts after it arrived*: if
    none is running it runs one itself; if one is running it waits for the next one, which the
    first waiting request runs for all the others that came meanwhile. So the database answers
    at most one such query at a time, and no request gets a version older than its own arrival:
    a change committed before a request arrived (by the pipeline, the CLI or the API) is always
    in its ETag."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._started = 0
        self._finished = 0
        self._running = False
        self._value = ""
        #: How many queries were run (for the tests and the load benchmark).
        self.queries = 0

    def get(self, compute: Callable[[], str]) -> str:
        """The data version from ``compute()``, run here or by a request that started it after this one came."""
        with self._cond:
            wanted = self._started + 1
            while self._finished < wanted:
                if not self._running:
                    self._running = True
                    self._started += 1
                    mine = self._started
                    break
                self._cond.wait()
            else:
                return self._value
        try:
            value = compute()
        except BaseException:
            with self._cond:
                self._running = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._value, self._finished, self._running = value, mine, False
            self.queries += 1
            self._cond.notify_all()
        return value


def _fresh_data_version(db: Session, shortcut: SnapshotShortcut) -> str:
    # End the session's read transaction first: on SQLite its snapshot dates from the token
    # check, which may be older than a request waiting on this query.
    db.commit()
    return shortcut.version(db)


def etag(request: Request, response: Response, db: DB, caller: Reader) -> str:
    """Set the response's ``ETag``; raise :class:`NotModified` when ``If-None-Match`` holds it."""
    gate: DataVersionGate = request.app.state.version_gate
    shortcut: SnapshotShortcut = request.app.state.version_shortcut
    version = gate.get(lambda: _fresh_data_version(db, shortcut))
    # Give the request's connection back to the pool: routes that read through the engine
    # (the reports take an engine) would otherwise hold two connections each, and as many
    # concurrent requests as the pool has connections wait for a second one for ever (32
    # clients on a pool of 5 + 10 did). The session takes a connection again if used.
    db.close()
    key = f"{version}\n{request.url.path}\n{sorted(request.query_params.multi_items())}"
    tag = '"' + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32] + '"'
    wanted = request.headers.get("if-none-match")
    if wanted and (wanted.strip() == "*" or tag in [t.strip().removeprefix("W/") for t in wanted.split(",")]):
        raise NotModified(tag)
    response.headers.update(_cache_headers(tag))
    return tag


def _cache_headers(tag: str) -> dict[str, str]:
    return {"ETag": tag, "Cache-Control": "private, no-cache"}


#: A cached read: the caller checked, the ETag set (304 when the client's copy is current).
Cached = Annotated[str, Depends(etag)]


class ResponseCache:
    """The rendered JSON bodies of reads, keyed by their ETag; the ``size`` most recently
    used are kept (thread-safe: sync routes run in the threadpool)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, tag: str) -> bytes | None:
        with self._lock:
            body = self._bodies.get(tag)
            if body is not None:
                self._bodies.move_to_end(tag)
            return body

    def put(self, tag: str, body: bytes) -> None:
        with self._lock:
            self._bodies[tag] = body
            self._bodies.move_to_end(tag)
            while len(self._bodies) > self.size:
                self._bodies.popitem(last=False)

    def __len__(self) -> int:
        return len(self._bodies)


def cached_json(request: Request, tag: str, model: Any, build: Callable[[], Any]) -> Response:
    """The answer of a read with ETag ``tag``: from the app's :class:`ResponseCache`, or
    ``build()`` validated and serialised as ``model`` (as FastAPI does for a
    ``response_model``) and kept there."""
    cache: ResponseCache = request.app.state.response_cache
    body = cache.get(tag)
    if body is None:
        adapter: TypeAdapter[Any] = TypeAdapter(model)
        value = adapter.validate_python(build(), from_attributes=True)
        body = bytes(JSONResponse(jsonable_encoder(adapter.dump_python(value, mode="json", by_alias=True))).body)
        cache.put(tag, body)
    return Response(content=body, media_type="application/json", headers=_cache_headers(tag))


#: The operational database's engine (for the report functions, which take an engine).
EngineDep = Annotated[Engine, Depends(engine_of)]


def known_query(request: Request) -> None:
    """A 422 for a query parameter the route does not take, or one given twice: a misspelt
    filter (``?constituency=`` for ``?constituency_id=``) would otherwise be ignored silently
    and answer with everything, and of a repeated one only the last would count."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed: set[str] = set()
    pending = [dependant]
    while pending:
        node = pending.pop()
        allowed.update(p.alias for p in node.query_params)
        pending.extend(node.dependencies)
    unknown = sorted({k for k in request.query_params if k not in allowed})
    repeated = sorted({k for k, _ in request.query_params.multi_items() if len(request.query_params.getlist(k)) > 1})
    if repeated:
        raise ApiError(422, f"query parameter(s) {', '.join(repr(k[:40]) for k in repeated[:5])} given more than once")
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        accepted = ", ".join(sorted(allowed)) or "none"
        raise ApiError(422, f"unknown query parameter(s) {shown}: this endpoint takes {accepted}")
