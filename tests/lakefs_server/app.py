"""A lakeFS-API-compatible test server (Starlette) backed by the embedded LocalDataStore.

lakeFS cannot run on these machines, so the lakeFS backend is tested over real HTTP, through
the real SDK, against this server. It serves under /api/v1 only the endpoints the backend uses
(plus GET /config, which the high-level ``lakefs`` package reads), with lakeFS's JSON shapes,
status codes, ``{"message": ...}`` error bodies, pagination objects and HTTP Basic auth.
Shapes and codes follow treeverse/lakeFS api/swagger.yml and pkg/api/controller.go.

Like lakeFS, writes to a branch are *staged* (uploads, deletes) until a commit; reads at a
branch name see staged changes, reads at a commit id do not.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ml_platform.data.store import Commit, DataStore
from ml_platform.errors import (
    ConfigError,
    ConflictError,
    CorruptStoreError,
    DataStoreError,
    NotFoundError,
)

Handler = Callable[[Request], Awaitable[Response]]

# lakeFS's validators (pkg/validator/validate.go).
_REPOSITORY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
_BRANCH_ID = re.compile(r"^\w[-\w]*$")
_DEFAULT_PAGE, _MAX_PAGE = 100, 1000
_CHUNK = 256 * 1024


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Faults:
    """Injected failures, consumed per request before auth (like a proxy in front of lakeFS).

    ``match`` limits a fault to requests whose "METHOD /api/v1/route-template" contains it."""

    fail_next: int = 0
    status: int = 503
    fail_match: str = ""
    delay_next: int = 0
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail(self, count: int, status: int = 503, *, match: str = "") -> None:
        with self.lock:
            self.fail_next, self.status, self.fail_match = count, status, match

    def delay(self, count: int, seconds: float) -> None:
        with self.lock:
            self.delay_next, self.delay_s = count, seconds

    def take(self, route: str) -> tuple[int | None, float]:
        with self.lock:
            status = None
            if self.fail_next > 0 and self.fail_match in route:
                self.fail_next -= 1
                status = self.status
            delay = 0.0
            if self.delay_next > 0:
                self.delay_next -= 1
                delay = self.delay_s
            return status, delay


@dataclass
class ServerState:
    """Everything one test sees; the fixture swaps it per test while the server keeps running."""

    store: DataStore
    access_key_id: str
    secret_access_key: str
    user: str = "admin"
    faults: Faults = field(default_factory=Faults)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, route template)
    staging: dict[tuple[str, str], dict[str, bytes | None]] = field(default_factory=dict)
    namespaces: dict[str, str] = field(default_factory=dict)
    # lakeFS caps pages at 1000; tests lower the cap to exercise pagination with few items.
    max_per_page: int = _MAX_PAGE


def create_app(get_state: Callable[[], ServerState]) -> Starlette:
    """The ASGI app; ``get_state`` returns the current test's state."""
    prefix = "/api/v1"
    api = _Api(get_state)
    routes = [
        Route(prefix + path, _wrap(get_state, path, handler), methods=[method])
        for method, path, handler in api.routes()
    ]
    return Starlette(routes=routes)


def _wrap(get_state: Callable[[], ServerState], template: str, handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        state = get_state()
        state.requests.append((request.method, "/api/v1" + template))
        status, delay = state.faults.take(f"{request.method} /api/v1{template}")
        if delay:
            await asyncio.sleep(delay)
        if status is not None:
            return _error(status, "injected fault")
        if not _authorized(request, state):
            return _error(401, "error authenticating request")
        try:
            return await handler(request)
        except ApiError as e:
            return _error(e.status, e.message)
        except NotFoundError as e:
            return _error(404, f"not found: {e}")
        except ConflictError as e:
            return _error(409, f"not unique: {e}")
        except ConfigError as e:  # the embedded store's validation: lakeFS's ErrInvalidValue
            return _error(400, f"invalid value: validation error: {e}")
        except CorruptStoreError as e:
            return _error(500, f"internal error: {e}")
        except DataStoreError as e:  # e.g. an ambiguous commit prefix
            return _error(400, str(e))

    return endpoint


def _authorized(request: Request, state: ServerState) -> bool:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        key, _, secret = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return (key, secret) == (state.access_key_id, state.secret_access_key)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def _page(items: list[dict[str, Any]], key: str, request: Request, cap: int) -> dict[str, Any]:
    """lakeFS pagination over items sorted by ``key``: results strictly after ``after``."""
    after = request.query_params.get("after", "")
    amount = min(_amount(request), cap)
    remaining = [i for i in items if i[key] > after] if after else items
    return _paged(remaining, amount, key)


def _paged(remaining: list[dict[str, Any]], amount: int, key: str) -> dict[str, Any]:
    results = remaining[:amount]
    has_more = len(remaining) > amount
    return {
        "pagination": {
            "has_more": has_more,
            "next_offset": results[-1][key] if has_more else "",
            "results": len(results),
            "max_per_page": _MAX_PAGE,
        },
        "results": results,
    }


def _amount(request: Request) -> int:
    raw = request.query_params.get("amount")
    if raw is None or raw == "-1":
        return _DEFAULT_PAGE
    try:
        value = int(raw)
    except ValueError as e:
        raise ApiError(400, f"invalid amount '{raw}'") from e
    if not 0 <= value <= _MAX_PAGE:
        raise ApiError(400, f"amount must be between 0 and {_MAX_PAGE}")
    return value or _DEFAULT_PAGE


def _commit_json(commit: Commit) -> dict[str, Any]:
    return {
        "id": commit.id,
        "parents": list(commit.parents),
        "committer": commit.author,
        "message": commit.message,
        "creation_date": int(commit.created_at.timestamp()),
        "meta_range_id": "",
        "metadata": dict(commit.metadata),
    }


def _object_stats(path: str, data_size: int, checksum: str) -> dict[str, Any]:
    return {
        "path": path,
        "path_type": "object",
        "physical_address": f"local://test-server/{checksum}",
        "checksum": checksum,
        "size_bytes": data_size,
        "mtime": 0,
        "metadata": {},
        "content_type": "application/octet-stream",
    }


def _query(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if value is None:
        raise ApiError(400, f'parameter "{name}" in query has an error: value is required')
    return value


def _query_bool(request: Request, name: str) -> bool:
    """A boolean query parameter parsed like Go's strconv.ParseBool, as lakeFS does.

    Matters: lakefs_sdk 1.88 sends Python's ``str(True)``, i.e. ``first_parent=True``."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return False
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ApiError(400, f'parameter "{name}" in query has an error: invalid syntax')


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as e:
        raise ApiError(400, "request body has an error: invalid JSON") from e
    if not isinstance(body, dict):
        raise ApiError(400, "request body has an error: expected an object")
    return body


class _Api:
    """The endpoint handlers; each maps one lakeFS operation onto the DataStore."""

    def __init__(self, get_state: Callable[[], ServerState]) -> None:
        self._state = get_state

    def routes(self) -> list[tuple[str, str, Handler]]:
        r = "/repositories/{repository}"
        return [
            ("GET", "/config", self.get_config),
            ("POST", "/repositories", self.create_repository),
            ("GET", r, self.get_repository),
            ("GET", r + "/branches", self.list_branches),
            ("POST", r + "/branches", self.create_branch),
            ("GET", r + "/branches/{branch}", self.get_branch),
            ("POST", r + "/branches/{branch}/commits", self.commit),
            ("PUT", r + "/branches/{branch}/hard_reset", self.hard_reset_branch),
            ("POST", r + "/branches/{branch}/objects", self.upload_object),
            ("DELETE", r + "/branches/{branch}/objects", self.delete_object),
            ("GET", r + "/commits/{commit_id}", self.get_commit),
            ("GET", r + "/refs/{ref}/commits", self.log_commits),
            ("GET", r + "/refs/{ref}/objects", self.get_object),
            ("GET", r + "/refs/{ref}/objects/ls", self.list_objects),
            ("GET", r + "/refs/{left}/diff/{right}", self.diff_refs),
            ("POST", r + "/refs/{source}/merge/{destination}", self.merge_into_branch),
        ]

    # -- helpers -----------------------------------------------------------------------------

    def _repo(self, request: Request) -> str:
        repository = request.path_params["repository"]
        if not self._state().store.repository_exists(repository):
            raise ApiError(404, "repository not found")
        return repository

    def _branch(self, repository: str, branch: str) -> str:
        if branch not in self._state().store.list_branches(repository):
            raise ApiError(404, "branch not found")
        return branch

    def _staged(self, repository: str, ref: str) -> dict[str, bytes | None]:
        """Staged changes when ``ref`` is a branch name (lakeFS reads see them), else none."""
        return self._state().staging.get((repository, ref), {})

    def _repository_json(self, repository: str) -> dict[str, Any]:
        state = self._state()
        branches = state.store.list_branches(repository)
        default = "main" if "main" in branches else min(branches, default="main")
        return {
            "id": repository,
            "creation_date": 0,
            "default_branch": default,
            "storage_namespace": state.namespaces.get(repository, f"local://{repository}"),
            "read_only": False,
        }

    # -- config and repositories -------------------------------------------------------------

    async def get_config(self, request: Request) -> Response:
        return JSONResponse(
            {
                "version_config": {"version": "1.0.0-test-server"},
                "storage_config": {
                    "blockstore_type": "local",
                    "blockstore_namespace_example": "local://path",
                    "blockstore_namespace_ValidityRegex": "^local://",
                    "default_namespace_prefix": "local://",
                    "pre_sign_support": False,
                    "pre_sign_support_ui": False,
                    "import_support": False,
                    "import_validity_regex": "^local://",
                    "pre_sign_multipart_upload": False,
                },
            }
        )

    async def create_repository(self, request: Request) -> Response:
        body = await _json_body(request)
        name = str(body.get("name", ""))
        namespace = str(body.get("storage_namespace", ""))
        default_branch = str(body.get("default_branch") or "main")
        if not _REPOSITORY_ID.match(name):
            raise ApiError(400, "repository id: invalid value: validation error")
        if not namespace:
            raise ApiError(400, "storage namespace: invalid value: validation error")
        if not _BRANCH_ID.match(default_branch):
            raise ApiError(400, "branch id: invalid value: validation error")
        state = self._state()
        if state.store.repository_exists(name):
            raise ApiError(409, "not unique")
        state.store.create_repository(name, default_branch)
        state.namespaces[name] = namespace
        return JSONResponse(self._repository_json(name), status_code=201)

    async def get_repository(self, request: Request) -> Response:
        return JSONResponse(self._repository_json(self._repo(request)))

    # -- branches ----------------------------------------------------------------------------

    async def list_branches(self, request: Request) -> Response:
        repository = self._repo(request)
        prefix = request.query_params.get("prefix", "")
        refs = [
            {"id": name, "commit_id": head}
            for name, head in sorted(self._state().store.list_branches(repository).items())
            if name.startswith(prefix)
        ]
        return JSONResponse(_page(refs, "id", request, self._state().max_per_page))

    async def create_branch(self, request: Request) -> Response:
        repository = self._repo(request)
        body = await _json_body(request)
        name, source = str(body.get("name", "")), str(body.get("source", ""))
        if not _BRANCH_ID.match(name):
            raise ApiError(400, "branch id: invalid value: validation error")
        state = self._state()
        if name in state.store.list_branches(repository):
            raise ApiError(409, "branch already exists: not unique")
        head = state.store.create_branch(repository, name, source)
        return PlainTextResponse(head, status_code=201)

    async def get_branch(self, request: Request) -> Response:
        repository = self._repo(request)
        branch = request.path_params["branch"]
        heads = self._state().store.list_branches(repository)
        if branch not in heads:
            raise ApiError(404, "branch not found")
        return JSONResponse({"id": branch, "commit_id": heads[branch]})

    async def hard_reset_branch(self, request: Request) -> Response:
        # lakeFS: 204 No Content; refuses a dirty branch unless force=true (then drops staging).
        repository = self._repo(request)
        branch = self._branch(repository, request.path_params["branch"])
        ref = _query(request, "ref")
        state = self._state()
        if state.staging.get((repository, branch)):
            if not _query_bool(request, "force"):
                raise ApiError(400, "uncommitted changes (dirty branch)")
            state.staging.pop((repository, branch), None)
        state.store.reset_branch(repository, branch, state.store.resolve_ref(repository, ref))
        return Response(status_code=204)

    # -- commits -----------------------------------------------------------------------------

    async def get_commit(self, request: Request) -> Response:
        repository = self._repo(request)
        commit_id = request.path_params["commit_id"]
        store = self._state().store
        return JSONResponse(
            _commit_json(store.get_commit(repository, store.resolve_ref(repository, commit_id)))
        )

    async def log_commits(self, request: Request) -> Response:
        repository = self._repo(request)
        if not _query_bool(request, "first_parent"):
            # lakeFS then walks every parent; the embedded store only knows first parents.
            raise ApiError(400, "test server: only first_parent=true is implemented")
        commits = [
            _commit_json(c) for c in self._state().store.log(repository, request.path_params["ref"])
        ]
        after = request.query_params.get("after", "")
        if after:
            ids = [c["id"] for c in commits]
            commits = commits[ids.index(after) + 1 :] if after in ids else []
        amount = min(_amount(request), self._state().max_per_page)
        return JSONResponse(_paged(commits, amount, "id"))

    async def commit(self, request: Request) -> Response:
        repository = self._repo(request)
        branch = self._branch(repository, request.path_params["branch"])
        body = await _json_body(request)
        state = self._state()
        staged = state.staging.get((repository, branch), {})
        if not staged:
            raise ApiError(400, "commit: no changes")
        try:
            commit = state.store.commit(
                repository,
                branch,
                dict(staged),
                message=str(body.get("message", "")),
                author=state.user,  # lakeFS records the credential's user as committer
                metadata=dict(body.get("metadata") or {}),
            )
        except ConflictError as e:
            raise ApiError(400, "commit: no changes") from e
        state.staging.pop((repository, branch), None)
        return JSONResponse(_commit_json(commit), status_code=201)

    async def merge_into_branch(self, request: Request) -> Response:
        repository = self._repo(request)
        destination = self._branch(repository, request.path_params["destination"])
        body = await _json_body(request) if await request.body() else {}
        if body.get("strategy") != "source-wins":
            raise ApiError(400, "test server: only strategy 'source-wins' is implemented")
        state = self._state()
        if state.staging.get((repository, destination)):
            raise ApiError(400, "uncommitted changes (dirty branch)")
        source = request.path_params["source"]
        message = str(body.get("message") or f"Merge '{source}' into '{destination}'")
        try:
            commit = state.store.merge(
                repository,
                source,
                destination,
                message=message,
                author=state.user,
                metadata=dict(body.get("metadata") or {}),
            )
        except ConflictError as e:  # the embedded store's "nothing to merge"
            raise ApiError(400, "merge: no changes") from e
        return JSONResponse({"reference": commit.id})

    # -- objects -----------------------------------------------------------------------------

    async def upload_object(self, request: Request) -> Response:
        repository = self._repo(request)
        branch = self._branch(repository, request.path_params["branch"])
        path = _query(request, "path")
        data = await _upload_content(request)
        self._state().staging.setdefault((repository, branch), {})[path] = data
        checksum = hashlib.md5(data).hexdigest()  # lakeFS's local blockstore ETag
        return JSONResponse(_object_stats(path, len(data), checksum), status_code=201)

    async def delete_object(self, request: Request) -> Response:
        repository = self._repo(request)
        branch = self._branch(repository, request.path_params["branch"])
        path = _query(request, "path")
        # lakeFS: "Missing objects will not return a NotFound error".
        self._state().staging.setdefault((repository, branch), {})[path] = None
        return Response(status_code=204)

    async def get_object(self, request: Request) -> Response:
        repository = self._repo(request)
        ref, path = request.path_params["ref"], _query(request, "path")
        staged = self._staged(repository, ref)
        if path in staged:
            data = staged[path]
            if data is None:
                raise ApiError(404, "object not found")
            return Response(data, media_type="application/octet-stream")
        store = self._state().store
        size = self._committed_files(repository, ref).get(path)
        if size is None:
            raise ApiError(404, "object not found")
        stream = store.open(repository, ref, path)
        headers = {"Content-Length": str(size)}
        return StreamingResponse(
            _chunks(stream), media_type="application/octet-stream", headers=headers
        )

    async def list_objects(self, request: Request) -> Response:
        repository = self._repo(request)
        ref = request.path_params["ref"]
        prefix = request.query_params.get("prefix", "")
        if request.query_params.get("delimiter"):
            raise ApiError(400, "test server: delimiter listing is not implemented")
        files: dict[str, int | None] = dict(self._committed_files(repository, ref, prefix))
        for path, data in self._staged(repository, ref).items():
            if path.startswith(prefix):
                files[path] = None if data is None else len(data)
        objects = [
            _object_stats(path, size, "")
            for path, size in sorted(files.items())
            if size is not None
        ]
        return JSONResponse(_page(objects, "path", request, self._state().max_per_page))

    async def diff_refs(self, request: Request) -> Response:
        repository = self._repo(request)
        if request.query_params.get("type", "three_dot") != "two_dot":
            raise ApiError(400, "test server: only type=two_dot is implemented")
        changes = self._state().store.diff(
            repository, request.path_params["left"], request.path_params["right"]
        )
        prefix = request.query_params.get("prefix", "")
        diffs = [
            {"type": c.type, "path": c.path, "path_type": "object", "size_bytes": c.size_bytes}
            for c in sorted(changes, key=lambda c: c.path)
            if c.path.startswith(prefix)
        ]
        return JSONResponse(_page(diffs, "path", request, self._state().max_per_page))

    def _committed_files(self, repository: str, ref: str, prefix: str = "") -> dict[str, int]:
        return self._state().store.list_files(repository, ref, prefix)


async def _upload_content(request: Request) -> bytes:
    """The object's bytes from a raw application/octet-stream body.

    lakeFS also accepts multipart/form-data; parsing it needs python-multipart, which is not
    installed, and the backend sends raw bodies, so the test server refuses it plainly."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(501, "test server: multipart upload is not implemented")
    return await request.body()


def _chunks(stream: Any) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(_CHUNK):
            yield chunk
