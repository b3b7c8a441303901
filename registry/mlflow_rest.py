"""A small client for an MLflow tracking server's REST API, over httpx.

Only what ``MLflowRegistry`` needs: registered models, model versions, their tags
and aliases, runs (a registered version's files are logged to a run), and the
tracking server's artifact proxy (``mlflow-artifacts:/``, which ``mlflow server``
serves by default). Talking REST rather than importing the ``mlflow`` package keeps
MLflow's dependency tree out of modelreg: it fronts any MLflow server.

Errors (every one names the tracking URI)::

    MLflowError(RegistryError)
    ├── MLflowUnavailable(MLflowError, ConnectionError)  cannot connect / timed out
    ├── MLflowNotFound(MLflowError, LookupError)         RESOURCE_DOES_NOT_EXIST
    └── MLflowRequestFailed(MLflowError)                 any other refusal (code, status)
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from registry import names
from registry.errors import InvalidInput, RegistryError

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
PAGE = 1000


class MLflowError(RegistryError):
    """The tracking server did not do what was asked."""


class MLflowUnavailable(MLflowError, ConnectionError):
    """The tracking server cannot be reached (refused, timed out, DNS)."""


class MLflowNotFound(MLflowError, LookupError):
    """The server answered that the model, version, alias or artifact does not exist."""


class MLflowRequestFailed(MLflowError):
    """The server refused a request; ``code`` is MLflow's error code."""

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class ArtifactEntry:
    path: str
    is_dir: bool
    size: int | None


def proxy_path(artifact_uri: str) -> str:
    """The artifact proxy's path for an ``mlflow-artifacts:`` URI (``mlflow-artifacts:/0/x``
    or ``mlflow-artifacts://host:port/0/x``); other schemes are not served by the proxy."""
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme != "mlflow-artifacts":
        raise InvalidInput(
            f"artifact location {artifact_uri!r} is not served by the tracking server's "
            "artifact proxy (mlflow-artifacts:/); start `mlflow server` with artifact serving"
        )
    path = parsed.path.strip("/")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise InvalidInput(f"artifact location {artifact_uri!r} is not a plain path")
    return path


class MLflowClient:
    """Typed calls to one tracking server; ``http`` is injectable (tests, pooling)."""

    def __init__(
        self, tracking_uri: str, *, http: httpx.Client | None = None, timeout: float = 30.0
    ) -> None:
        parsed = urllib.parse.urlparse(tracking_uri)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInput(
                f"MLflow tracking URI must be http(s)://host[:port], got {tracking_uri!r}"
            )
        self.uri = tracking_uri.rstrip("/")
        self._http = http or httpx.Client(timeout=timeout)
        self._own_http = http is None

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    # -- plumbing -------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        content: bytes | Iterator[bytes] | None = None,
    ) -> httpx.Response:
        try:
            response = self._http.request(
                method, self.uri + path, params=params, json=json, content=content
            )
        except httpx.TransportError as exc:
            raise MLflowUnavailable(
                f"MLflow tracking server {self.uri} is unreachable: {type(exc).__name__}: {exc}"
            ) from None
        if response.status_code >= 400:
            raise self._error(method, path, response)
        return response

    def _error(self, method: str, path: str, response: httpx.Response) -> MLflowError:
        try:
            body = response.json()
            code, message = str(body.get("error_code", "")), str(body.get("message", ""))
        except ValueError:
            code, message = "", response.text[:200].strip()
        text = (
            f"MLflow {self.uri}: {method} {path} failed ({response.status_code} {code}): {message}"
        )
        # An unknown alias comes back as INVALID_PARAMETER_VALUE "... not found".
        if (
            code == "RESOURCE_DOES_NOT_EXIST"
            or response.status_code == 404
            or (code == "INVALID_PARAMETER_VALUE" and message.endswith("not found."))
        ):
            return MLflowNotFound(text)
        return MLflowRequestFailed(text, code, response.status_code)

    def _get(self, endpoint: str, **params: Any) -> dict[str, Any]:
        data: dict[str, Any] = self._send("GET", f"{API}/{endpoint}", params=params).json()
        return data

    def _post(self, endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self._send("POST", f"{API}/{endpoint}", json=body).json()
        return data

    def _delete(self, endpoint: str, body: Mapping[str, Any]) -> None:
        self._send("DELETE", f"{API}/{endpoint}", json=body)

    # -- registered models ------------------------------------------------------------

    def get_registered_model(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._get("registered-models/get", name=name)[
                "registered_model"
            ]
        except MLflowNotFound:
            return None
        return found

    def create_registered_model(self, name: str) -> bool:
        """Create it; False if it already existed."""
        try:
            self._post("registered-models/create", {"name": name})
        except MLflowRequestFailed as exc:
            if exc.code == "RESOURCE_ALREADY_EXISTS":
                return False
            raise
        return True

    def delete_registered_model(self, name: str) -> None:
        self._delete("registered-models/delete", {"name": name})

    def search_registered_models(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"max_results": PAGE}
            if token:
                params["page_token"] = token
            page = self._get("registered-models/search", **params)
            out.extend(page.get("registered_models", []))
            token = page.get("next_page_token")
            if not token:
                return out

    # -- model versions -----------------------------------------------------------------

    def get_model_version(self, name: str, version: int) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._get(
                "model-versions/get", name=name, version=str(version)
            )["model_version"]
        except MLflowNotFound:
            return None
        return found

    def search_model_versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of ``name`` (all pages), as the server returns them."""
        quoted = name.replace("'", "\\'")
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"filter": f"name='{quoted}'", "max_results": PAGE}
            if token:
                params["page_token"] = token
            page = self._get("model-versions/search", **params)
            out.extend(page.get("model_versions", []))
            token = page.get("next_page_token")
            if not token:
                return out

    def create_model_version(
        self,
        name: str,
        source: str,
        *,
        run_id: str | None,
        tags: Mapping[str, str],
        description: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name,
            "source": source,
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        }
        if run_id:
            body["run_id"] = run_id
        if description:
            body["description"] = description
        created: dict[str, Any] = self._post("model-versions/create", body)["model_version"]
        return created

    def delete_model_version(self, name: str, version: int) -> None:
        self._delete("model-versions/delete", {"name": name, "version": str(version)})

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self._post(
            "model-versions/set-tag",
            {"name": name, "version": str(version), "key": key, "value": value},
        )

    def download_uri(self, name: str, version: int) -> str:
        return str(
            self._get("model-versions/get-download-uri", name=name, version=str(version))[
                "artifact_uri"
            ]
        )

    # -- aliases ---------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._post(
            "registered-models/alias", {"name": name, "alias": alias, "version": str(version)}
        )

    def delete_alias(self, name: str, alias: str) -> None:
        try:
            self._delete("registered-models/alias", {"name": name, "alias": alias})
        except MLflowNotFound:
            return

    def version_by_alias(self, name: str, alias: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._get("registered-models/alias", name=name, alias=alias)[
                "model_version"
            ]
        except MLflowNotFound:
            return None
        return found

    # -- experiments and runs ---------------------------------------------------------------

    def experiment_id(self, name: str) -> str:
        """The id of the experiment called ``name``, created if missing."""
        try:
            return str(
                self._get("experiments/get-by-name", experiment_name=name)["experiment"][
                    "experiment_id"
                ]
            )
        except MLflowNotFound:
            pass
        try:
            return str(self._post("experiments/create", {"name": name})["experiment_id"])
        except MLflowRequestFailed as exc:
            if exc.code != "RESOURCE_ALREADY_EXISTS":
                raise
        return str(
            self._get("experiments/get-by-name", experiment_name=name)["experiment"][
                "experiment_id"
            ]
        )

    def create_run(
        self, experiment_id: str, run_name: str, tags: Mapping[str, str], start_ms: int
    ) -> tuple[str, str]:
        """A new run; returns (run id, artifact URI)."""
        info = self._post(
            "runs/create",
            {
                "experiment_id": experiment_id,
                "run_name": run_name,
                "start_time": start_ms,
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            },
        )["run"]["info"]
        return str(info["run_id"]), str(info["artifact_uri"])

    def end_run(self, run_id: str, status: str, end_ms: int) -> None:
        self._post("runs/update", {"run_id": run_id, "status": status, "end_time": end_ms})

    def delete_run(self, run_id: str) -> None:
        self._post("runs/delete", {"run_id": run_id})

    # -- artifacts (through the tracking server's proxy) -------------------------------------

    def upload(self, artifact_uri: str, rel_path: str, data: bytes | Path) -> None:
        url = f"{ARTIFACTS}/{proxy_path(artifact_uri)}/{urllib.parse.quote(rel_path)}"
        if isinstance(data, Path):
            with data.open("rb") as fh:
                self._send("PUT", url, content=iter(lambda: fh.read(1 << 20), b""))
        else:
            self._send("PUT", url, content=data)

    def download(self, artifact_uri: str, rel_path: str, dest: Path) -> int:
        """Stream one artifact into ``dest``; returns its size."""
        url = f"{self.uri}{ARTIFACTS}/{proxy_path(artifact_uri)}/{urllib.parse.quote(rel_path)}"
        size = 0
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._error("GET", url.removeprefix(self.uri), response)
                with dest.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
                        size += len(chunk)
        except httpx.TransportError as exc:
            raise MLflowUnavailable(
                f"MLflow tracking server {self.uri} is unreachable: {type(exc).__name__}: {exc}"
            ) from None
        return size

    def list_artifacts(self, artifact_uri: str, rel_path: str = "") -> list[ArtifactEntry]:
        path = proxy_path(artifact_uri) + (f"/{rel_path}" if rel_path else "")
        body = self._send("GET", ARTIFACTS, params={"path": path}).json()
        return [
            ArtifactEntry(
                str(f["path"]),
                bool(f.get("is_dir", False)),
                int(f["file_size"]) if f.get("file_size") is not None else None,
            )
            for f in body.get("files", [])
        ]

    def list_files(self, artifact_uri: str) -> list[str]:
        """Every file under ``artifact_uri``, relative to it, sorted; [] when nothing is
        there. Each path part is checked as a file name: none can escape a download."""
        out: list[str] = []
        pending = [""]
        while pending:
            rel = pending.pop()
            try:
                entries = self.list_artifacts(artifact_uri, rel)
            except MLflowNotFound:
                continue
            for entry in entries:
                leaf = entry.path.rsplit("/", 1)[-1]
                names.file_name(leaf)
                path = f"{rel}/{leaf}" if rel else leaf
                (pending if entry.is_dir else out).append(path)
        return sorted(out)
