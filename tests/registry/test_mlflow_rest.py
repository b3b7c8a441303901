"""registry.mlflow_rest without a server: httpx's MockTransport answers as MLflow does."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from registry.errors import InvalidInput, InvalidName
from registry.mlflow_rest import (
    MLflowClient,
    MLflowNotFound,
    MLflowRequestFailed,
    MLflowUnavailable,
    proxy_path,
)

URI = "http://mlflow.test:5000"


def client(handler: Callable[[httpx.Request], httpx.Response]) -> MLflowClient:
    return MLflowClient(URI, http=httpx.Client(transport=httpx.MockTransport(handler)))


def error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error_code": code, "message": message})


class TestErrors:
    def test_unreachable_names_the_uri(self) -> None:
        """A transport failure is MLflowUnavailable, a ConnectionError, naming the server."""

        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("connection refused", request=request)

        with pytest.raises(MLflowUnavailable, match=f"MLflow tracking server {URI} is unreachable"):
            client(refuse).get_registered_model("m")
        assert issubclass(MLflowUnavailable, ConnectionError)

    def test_missing_things_are_none_or_not_found(self) -> None:
        """RESOURCE_DOES_NOT_EXIST and an unknown alias read as absent."""

        def answer(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/alias"):
                return error(400, "INVALID_PARAMETER_VALUE", "Registered model alias x not found.")
            return error(404, "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=m not found")

        c = client(answer)
        assert c.get_registered_model("m") is None
        assert c.version_by_alias("m", "x") is None
        assert c.get_model_version("m", 3) is None
        with pytest.raises(MLflowNotFound, match="not found"):
            c.set_version_tag("m", 3, "k", "v")

    def test_other_refusals_keep_code_and_status(self) -> None:
        """Anything else is MLflowRequestFailed with MLflow's code; 'already exists' is
        not an error when creating a model."""

        def answer(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("registered-models/create"):
                return error(
                    400, "RESOURCE_ALREADY_EXISTS", "Registered Model (name=m) already exists."
                )
            return error(500, "INTERNAL_ERROR", "boom")

        c = client(answer)
        assert c.create_registered_model("m") is False
        with pytest.raises(MLflowRequestFailed) as err:
            c.set_alias("m", "production", 1)
        assert (err.value.code, err.value.status) == ("INTERNAL_ERROR", 500)
        assert URI in str(err.value)

    def test_tracking_uri_must_be_http(self) -> None:
        """file: or bare paths are refused before anything is sent."""
        for bad in ("file:///tmp/mlruns", "databricks", "127.0.0.1:5000"):
            with pytest.raises(InvalidInput, match="tracking URI"):
                MLflowClient(bad)


class TestCalls:
    def test_search_pages_are_followed(self) -> None:
        """Every page of a search is read, and the filter quotes the name."""
        seen: list[dict[str, str]] = []

        def answer(request: httpx.Request) -> httpx.Response:
            params = dict(request.url.params)
            seen.append(params)
            if "page_token" not in params:
                return httpx.Response(
                    200, json={"model_versions": [{"version": "1"}], "next_page_token": "p2"}
                )
            return httpx.Response(200, json={"model_versions": [{"version": "2"}]})

        found = client(answer).search_model_versions("fraud")
        assert [v["version"] for v in found] == ["1", "2"]
        assert seen[0]["filter"] == "name='fraud'"
        assert seen[1]["page_token"] == "p2"

    def test_create_version_sends_tags_and_run(self) -> None:
        """Tags go as MLflow's key/value list; the run id ties the source to its run."""
        body: dict[str, object] = {}

        def answer(request: httpx.Request) -> httpx.Response:
            body.update(json.loads(request.content))
            return httpx.Response(200, json={"model_version": {"version": "7"}})

        created = client(answer).create_model_version(
            "m", "mlflow-artifacts:/1/r/artifacts/model", run_id="r", tags={"a": "1"}
        )
        assert created["version"] == "7"
        assert body["tags"] == [{"key": "a", "value": "1"}]
        assert body["run_id"] == "r"

    def test_files_are_listed_recursively_and_checked(self, tmp_path: Path) -> None:
        """Directories are walked; a name that could escape a download is refused."""
        tree = {
            "1/r/artifacts/model": [{"path": "model/MLmodel", "is_dir": False, "file_size": 3},
                                    {"path": "model/data", "is_dir": True}],
            "1/r/artifacts/model/data": [{"path": "model/data/w.bin", "is_dir": False}],
        }  # fmt: skip

        def answer(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json={"files": tree.get(request.url.params["path"], [])})

        c = client(answer)
        assert c.list_files("mlflow-artifacts:/1/r/artifacts/model") == ["MLmodel", "data/w.bin"]
        tree["1/r/artifacts/model"] = [{"path": "model/..", "is_dir": False}]
        with pytest.raises(InvalidName):
            c.list_files("mlflow-artifacts:/1/r/artifacts/model")

    def test_proxy_paths(self) -> None:
        """Both mlflow-artifacts forms map to the proxy; other schemes and '..' do not."""
        assert proxy_path("mlflow-artifacts:/1/r/artifacts") == "1/r/artifacts"
        assert proxy_path("mlflow-artifacts://host:5000/1/r/artifacts") == "1/r/artifacts"
        with pytest.raises(InvalidInput, match="artifact proxy"):
            proxy_path("s3://bucket/1/r")
        with pytest.raises(InvalidInput, match="plain path"):
            proxy_path("mlflow-artifacts:/1/../etc")
