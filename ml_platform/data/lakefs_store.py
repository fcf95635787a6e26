"""The lakeFS backend of :class:`~ml_platform.data.store.DataStore`, over the maintained lakefs_sdk.

Mapping to lakeFS (see docs/lakefs.md):
- ``commit`` stages every change through the objects API, then commits the branch. lakeFS
  commits *everything* staged on the branch, so two writers on one branch mix their changes:
  give each writer its own branch and ``merge``.
- ``expected_head`` is checked just before staging. lakeFS has no compare-and-swap on commit,
  so a commit that lands between that check and ours is not detected (the window is the time
  it takes to upload the changes). The embedded store closes that window; lakeFS cannot.
- lakeFS records the credential's user as committer; the platform's ``author`` travels in the
  commit metadata under :data:`AUTHOR_METADATA_KEY` and is taken out again on read.
- Failures: 401/403 -> AuthError, 404 -> NotFoundError, 409 -> ConflictError; 5xx, 429,
  timeouts and connection errors are retried with exponential backoff, then raise
  BackendUnavailableError. Non-idempotent calls (commit, merge, creates) are retried only when
  the server cannot have applied them (connection never made, 429, 503).
"""

from __future__ import annotations

import io
import json
import os
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO, TypeVar

import lakefs_sdk
import urllib3
from lakefs_sdk.client import LakeFSClient
from lakefs_sdk.exceptions import ApiException

from ml_platform.data.store import Change, ChangeType, Commit
from ml_platform.errors import (
    AuthError,
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    DataStoreError,
    MLPlatformError,
    NotFoundError,
)

T = TypeVar("T")

AUTHOR_METADATA_KEY = "ml_platform.author"
ENV_ENDPOINT = "LAKECTL_SERVER_ENDPOINT_URL"
ENV_ACCESS_KEY_ID = "LAKECTL_CREDENTIALS_ACCESS_KEY_ID"
ENV_SECRET_ACCESS_KEY = "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY"
# Optional: where create_repository puts data, e.g. "s3://bucket/lakefs/{repository}".
ENV_STORAGE_NAMESPACE = "ML_PLATFORM_LAKEFS_STORAGE_NAMESPACE"
DEFAULT_STORAGE_NAMESPACE = "local://{repository}"
_PAGE_SIZE = 1000  # lakeFS's maximum page size
_STREAM_CHUNK = 1024 * 1024
_CHANGE_TYPES: dict[str, ChangeType] = {
    "added": "added",
    "removed": "removed",
    "changed": "changed",
}
# Statuses that say "try again": the request was not applied (503, 429) or may be transient.
_RETRY_ALWAYS = frozenset({429, 503})


class LakeFSDataStore:
    """A DataStore backed by a lakeFS server (``kind = "lakefs"``)."""

    kind = "lakefs"

    def __init__(
        self,
        host: str,
        access_key_id: str,
        secret_access_key: str,
        *,
        timeout_s: float = 30,
        retries: int = 3,
        backoff_s: float = 0.5,
        sleeper: Callable[[float], None] = time.sleep,
        storage_namespace: str = DEFAULT_STORAGE_NAMESPACE,
    ) -> None:
        config = lakefs_sdk.Configuration(
            host=host, username=access_key_id, password=secret_access_key
        )
        # We retry ourselves (with backoff and the injected sleeper); urllib3's own silent
        # retries would multiply attempts and hide failures from the retry policy.
        config.retries = 0  # type: ignore[assignment]  # generated stub annotates it as None
        self._client = LakeFSClient(config)  # appends /api/v1 when the host has no path
        self._endpoint = _without_userinfo(self._client.objects_api.api_client.configuration.host)
        self._access_key_id = access_key_id
        self._timeout_s = timeout_s
        self._retries = retries
        self._backoff_s = backoff_s
        self._sleep = sleeper
        self._storage_namespace = storage_namespace

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> LakeFSDataStore:
        """Build from LAKECTL_SERVER_ENDPOINT_URL and LAKECTL_CREDENTIALS_* variables."""
        env = os.environ if environ is None else environ
        values = []
        for name in (ENV_ENDPOINT, ENV_ACCESS_KEY_ID, ENV_SECRET_ACCESS_KEY):
            value = env.get(name, "").strip()
            if not value:
                raise ConfigError(
                    f"{name} is not set; the lakeFS backend needs {ENV_ENDPOINT}, "
                    f"{ENV_ACCESS_KEY_ID} and {ENV_SECRET_ACCESS_KEY} (see docs/lakefs.md)",
                    field=name,
                )
            values.append(value)
        if env.get(ENV_STORAGE_NAMESPACE):
            kwargs.setdefault("storage_namespace", env[ENV_STORAGE_NAMESPACE])
        return cls(values[0], values[1], values[2], **kwargs)

    def __repr__(self) -> str:
        return (
            f"LakeFSDataStore(endpoint={self._endpoint!r}, access_key_id={self._access_key_id!r})"
        )

    # -- repositories and branches -------------------------------------------------------------

    def create_repository(self, repository: str, default_branch: str = "main") -> None:
        creation = _request_model(
            lakefs_sdk.RepositoryCreation,
            {
                "name": repository,
                "storage_namespace": self._storage_namespace.format(repository=repository),
                "default_branch": default_branch,
            },
            what=f"repository '{repository}'",
        )
        self._call(
            f"create repository '{repository}'",
            lambda: self._client.repositories_api.create_repository(creation, **self._kw()),
            idempotent=False,
        )

    def repository_exists(self, repository: str) -> bool:
        try:
            self._call(
                f"get repository '{repository}'",
                lambda: self._client.repositories_api.get_repository(repository, **self._kw()),
            )
        except NotFoundError:
            return False
        return True

    def create_branch(self, repository: str, branch: str, source_ref: str) -> str:
        creation = _request_model(
            lakefs_sdk.BranchCreation, {"name": branch, "source": source_ref}, what=f"branch '{branch}'"
        )
        head = self._call(
            f"create branch '{branch}' from '{source_ref}' in repository '{repository}'",
            lambda: self._client.branches_api.create_branch(repository, creation, **self._kw()),
            idempotent=False,
        )
        return str(head).strip()  # lakeFS answers with the new head's commit id as plain text

    def list_branches(self, repository: str) -> dict[str, str]:
        def page(after: str) -> tuple[list[Any], Any]:
            refs = self._client.branches_api.list_branches(
                repository, after=after, amount=_PAGE_SIZE, **self._kw()
            )
            return refs.results, refs.pagination

        what = f"list branches of repository '{repository}'"
        return {ref.id: ref.commit_id for ref in self._paginate(what, page)}

    def branch_head(self, repository: str, branch: str) -> str:
        ref = self._call(
            f"get branch '{branch}' of repository '{repository}'",
            lambda: self._client.branches_api.get_branch(repository, branch, **self._kw()),
        )
        return str(ref.commit_id)

    def resolve_ref(self, repository: str, ref: str) -> str:
        # The log endpoint resolves branches, tags, full and abbreviated commit ids alike.
        commits = self._call(
            f"resolve ref '{ref}' in repository '{repository}'",
            lambda: self._client.refs_api.log_commits(
                repository, ref, amount=1, first_parent=True, **self._kw()
            ),
        )
        if not commits.results:
            raise NotFoundError(f"ref '{ref}' in repository '{repository}' has no commits")
        return str(commits.results[0].id)

    # -- commits -------------------------------------------------------------------------------

    def get_commit(self, repository: str, commit_id: str) -> Commit:
        raw = self._call(
            f"get commit '{commit_id}' of repository '{repository}'",
            lambda: self._client.commits_api.get_commit(repository, commit_id, **self._kw()),
        )
        return _to_commit(repository, raw)

    def commit(
        self,
        repository: str,
        branch: str,
        changes: Mapping[str, bytes | None],
        *,
        message: str,
        author: str,
        metadata: Mapping[str, str] | None = None,
        expected_head: str | None = None,
    ) -> Commit:
        if expected_head is not None:
            self._check_head(repository, branch, expected_head)
        if not changes:
            raise ConflictError(f"nothing to commit on branch '{branch}' of '{repository}'")
        for path in sorted(changes):
            data = changes[path]
            if data is None:
                self._delete_object(repository, branch, path)
            else:
                self._upload_object(repository, branch, path, data)
        creation = lakefs_sdk.CommitCreation.from_dict(
            {"message": message, "metadata": {**(metadata or {}), AUTHOR_METADATA_KEY: author}}
        )
        raw = self._call(
            f"commit branch '{branch}' of repository '{repository}'",
            lambda: self._client.commits_api.commit(repository, branch, creation, **self._kw()),
            idempotent=False,
        )
        return _to_commit(repository, raw)

    def log(self, repository: str, ref: str, limit: int | None = None) -> list[Commit]:
        def page(after: str) -> tuple[list[Any], Any]:
            amount = _PAGE_SIZE if limit is None else max(1, min(_PAGE_SIZE, limit))
            commits = self._client.refs_api.log_commits(
                repository, ref, after=after, amount=amount, first_parent=True, **self._kw()
            )
            return commits.results, commits.pagination

        out: list[Commit] = []
        for raw in self._paginate(f"log of '{ref}' in repository '{repository}'", page):
            if limit is not None and len(out) >= limit:
                break
            out.append(_to_commit(repository, raw))
        return out

    def reset_branch(self, repository: str, branch: str, commit_id: str) -> str:
        # lakeFS's hard reset (experimental API: PUT .../branches/{b}/hard_reset?ref=): it refuses
        # a branch with uncommitted changes; we never force, so staged data is not thrown away.
        # Idempotent (same target, same result), so it is retried like a read.
        target = self.resolve_ref(repository, commit_id)
        self._call(
            f"reset branch '{branch}' of repository '{repository}' to '{commit_id}'",
            lambda: self._client.experimental_api.hard_reset_branch(
                repository, branch, target, **self._kw()
            ),
        )
        return target

    def merge(
        self,
        repository: str,
        source_ref: str,
        destination_branch: str,
        *,
        message: str,
        author: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Commit:
        body = lakefs_sdk.Merge.from_dict(
            {
                "message": message,
                "metadata": {**(metadata or {}), AUTHOR_METADATA_KEY: author},
                "strategy": "source-wins",
            }
        )
        result = self._call(
            f"merge '{source_ref}' into '{destination_branch}' in repository '{repository}'",
            lambda: self._client.refs_api.merge_into_branch(
                repository, source_ref, destination_branch, body, **self._kw()
            ),
            idempotent=False,
        )
        return self.get_commit(repository, str(result.reference))

    # -- files ---------------------------------------------------------------------------------

    def list_files(self, repository: str, ref: str, prefix: str = "") -> dict[str, int]:
        def page(after: str) -> tuple[list[Any], Any]:
            listing = self._client.objects_api.list_objects(
                repository, ref, after=after, amount=_PAGE_SIZE, prefix=prefix, **self._kw()
            )
            return listing.results, listing.pagination

        what = f"list files under '{prefix}' at '{ref}' in repository '{repository}'"
        return {
            o.path: int(o.size_bytes or 0)
            for o in self._paginate(what, page)
            if o.path_type == "object"
        }

    def open(self, repository: str, ref: str, path: str) -> BinaryIO:
        response = self._call(
            f"read '{path}' at '{ref}' in repository '{repository}'",
            lambda: self._raw_request(
                "GET",
                "/repositories/{repository}/refs/{ref}/objects",
                {"repository": repository, "ref": ref},
                {"path": path},
                stream=True,
            ),
        )
        raw = _StreamingBody(response, f"{self._endpoint} ({repository}@{ref}:{path})")
        return io.BufferedReader(raw, buffer_size=_STREAM_CHUNK)

    def read(self, repository: str, ref: str, path: str) -> bytes:
        with self.open(repository, ref, path) as stream:
            return stream.read()

    def diff(self, repository: str, left_ref: str, right_ref: str) -> list[Change]:
        def page(after: str) -> tuple[list[Any], Any]:
            # two_dot: what turns left into right; lakeFS's default three_dot would be the
            # changes on right since the merge base.
            diffs = self._client.refs_api.diff_refs(
                repository,
                left_ref,
                right_ref,
                after=after,
                amount=_PAGE_SIZE,
                type="two_dot",
                **self._kw(),
            )
            return diffs.results, diffs.pagination

        what = f"diff '{left_ref}'..'{right_ref}' in repository '{repository}'"
        changes = [
            Change(path=d.path, type=_CHANGE_TYPES[d.type], size_bytes=d.size_bytes)
            for d in self._paginate(what, page)
            if d.path_type == "object" and d.type in _CHANGE_TYPES
        ]
        return sorted(changes, key=lambda c: c.path)

    # -- internals -----------------------------------------------------------------------------

    def _kw(self) -> dict[str, Any]:
        return {"_request_timeout": self._timeout_s}

    def _check_head(self, repository: str, branch: str, expected_head: str) -> None:
        head = self.branch_head(repository, branch)
        if head != expected_head:
            raise ConflictError(
                f"branch '{branch}' of '{repository}' moved: expected head {expected_head}, "
                f"found {head}; re-read the branch and retry"
            )

    def _upload_object(self, repository: str, branch: str, path: str, data: bytes) -> None:
        self._call(
            f"upload '{path}' to branch '{branch}' of repository '{repository}'",
            lambda: self._raw_request(
                "POST",
                "/repositories/{repository}/branches/{branch}/objects",
                {"repository": repository, "branch": branch},
                {"path": path},
                body=data,
            ),
        )

    def _delete_object(self, repository: str, branch: str, path: str) -> None:
        self._call(
            f"delete '{path}' on branch '{branch}' of repository '{repository}'",
            lambda: self._client.objects_api.delete_object(repository, branch, path, **self._kw()),
        )

    def _raw_request(
        self,
        method: str,
        resource_path: str,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        *,
        body: bytes | None = None,
        stream: bool = False,
    ) -> Any:
        """One request through the SDK's ApiClient (auth, status -> ApiException, pool).

        Why not the generated methods: ``get_object_with_http_info(_preload_content=False)``
        still reads the whole body into ``ApiResponse.raw_data``, and ``upload_object`` cannot
        send an empty file (it drops falsy content). lakeFS accepts a raw
        application/octet-stream upload body, as the high-level ``lakefs`` package sends it."""
        api = self._client.objects_api.api_client
        safe = api.configuration.safe_chars_for_path_param
        for key, value in path_params.items():
            resource_path = resource_path.replace(
                "{" + key + "}", urllib.parse.quote(value, safe=safe)
            )
        headers = {"Accept": "application/octet-stream" if stream else "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        api.update_params_for_auth(headers, None, ["basic_auth"], resource_path, method, body)
        url = f"{api.configuration.host}{resource_path}?{urllib.parse.urlencode(query)}"
        return api.request(
            method,
            url,
            headers=headers,
            body=body,
            _preload_content=not stream,
            _request_timeout=self._timeout_s,
        )

    def _paginate(self, what: str, fetch: Callable[[str], tuple[list[Any], Any]]) -> Iterator[Any]:
        after = ""
        while True:
            results, pagination = self._call(what, lambda a=after: fetch(a))  # type: ignore[misc]
            yield from results
            if not pagination.has_more or not pagination.next_offset:
                return
            after = pagination.next_offset

    def _call(self, what: str, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run one API call, mapping lakeFS failures to the platform's errors (with retries)."""
        attempt = 0
        while True:
            try:
                return fn()
            except ApiException as e:
                if not _retryable_status(e.status, idempotent):
                    raise self._api_error(what, e) from e
                cause = f"HTTP {e.status} {_server_message(e)}".strip()
            except urllib3.exceptions.HTTPError as e:
                reason = e.reason if isinstance(e, urllib3.exceptions.MaxRetryError) else None
                reason = reason or e
                cause = f"{type(reason).__name__}: {reason}"
                if not idempotent and not _never_sent(reason):
                    raise self._unavailable(what, cause, maybe_applied=True) from e
            if attempt >= self._retries:
                raise self._unavailable(what, cause, maybe_applied=False)
            self._sleep(self._backoff_s * (2**attempt))
            attempt += 1

    def _api_error(self, what: str, e: ApiException) -> MLPlatformError:
        said = _server_message(e)
        detail = f"lakeFS at {self._endpoint}: {what} failed: {said or e.reason}"
        if e.status in (401, 403):
            return AuthError(
                f"{detail} (HTTP {e.status}); check {ENV_ACCESS_KEY_ID} and "
                f"{ENV_SECRET_ACCESS_KEY} and the user's lakeFS policies"
            )
        if e.status == 404:
            return NotFoundError(f"{detail} (not found)")
        if e.status == 409:
            return ConflictError(f"{detail} (conflict)")
        if e.status == 400 and "no changes" in said:
            return ConflictError(f"{detail}: nothing to commit or merge")
        if e.status == 400 and ("invalid" in said or "validation" in said):
            return ConfigError(f"{detail} (HTTP 400: lakeFS rejected a name, path or value)")
        if e.status is not None and e.status >= 500:
            return self._unavailable(what, f"HTTP {e.status} {said}", maybe_applied=True)
        return DataStoreError(f"{detail} (HTTP {e.status})")

    def _unavailable(
        self, what: str, cause: str, *, maybe_applied: bool
    ) -> BackendUnavailableError:
        if maybe_applied:
            advice = "the change may or may not have been applied: check the branch log"
            tries = "not retried (not idempotent)"
        else:
            advice = f"check that lakeFS is running and reachable at {self._endpoint}"
            tries = f"after {self._retries + 1} attempts"
        return BackendUnavailableError(
            f"lakeFS at {self._endpoint}: {what} failed {tries}: {cause}; {advice} "
            f"(and {ENV_ENDPOINT})"
        )


class _StreamingBody(io.RawIOBase):
    """An unread urllib3 response as a raw binary stream; errors become platform errors."""

    def __init__(self, response: Any, where: str) -> None:
        self._response = response
        self._where = where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._response.read(len(buffer))
        except urllib3.exceptions.HTTPError as e:
            raise BackendUnavailableError(
                f"lakeFS stream {self._where} broke: {type(e).__name__}"
            ) from e
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._response.release_conn()
        super().close()


def _to_commit(repository: str, raw: Any) -> Commit:
    metadata = dict(raw.metadata or {})
    author = metadata.pop(AUTHOR_METADATA_KEY, raw.committer)
    return Commit(
        id=raw.id,
        repository=repository,
        parents=tuple(raw.parents),
        message=raw.message,
        author=author,
        created_at=datetime.fromtimestamp(raw.creation_date, tz=UTC),
        metadata=metadata,
    )


def _retryable_status(status: int | None, idempotent: bool) -> bool:
    if status is None or status == 0:  # the SDK's own SSL / request-building failures
        return False
    if status in _RETRY_ALWAYS:
        return True
    return idempotent and status >= 500


def _never_sent(reason: BaseException) -> bool:
    # NewConnectionError (refused, DNS) subclasses ConnectTimeoutError: nothing reached lakeFS.
    return isinstance(reason, urllib3.exceptions.ConnectTimeoutError)


def _server_message(e: ApiException) -> str:
    """The ``message`` of lakeFS's JSON error body, or the body text when it is not JSON."""
    body = e.body
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if not body:
        return ""
    try:
        parsed = json.loads(body)
    except ValueError:
        return str(body)[:200]
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return parsed["message"]
    return str(body)[:200]


def _without_userinfo(url: str) -> str:
    """Drop any ``user:password@`` from an endpoint URL before it appears in a message."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _request_model(model: Any, data: dict[str, Any], *, what: str) -> Any:
    """Build an SDK request model; its own validation (pydantic v1, a ValueError) becomes ConfigError
    so a bad name fails the same way on both backends."""
    try:
        return model.from_dict(data)
    except ValueError as e:
        raise ConfigError(
            f"invalid {what}: {str(e).splitlines()[-1].strip()}; lakeFS repository names match "
            "[a-z0-9][a-z0-9-]{2,62} and branch names \\w[-\\w]*",
            field="name",
        ) from e
