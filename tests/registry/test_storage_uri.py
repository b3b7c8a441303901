"""Artifact store URIs: what is accepted, what is refused, and what an error shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import InvalidInput, ModelRegistry
from registry.storage_uri import StorageUri, artifact_location, parse_storage_uri, redact


class TestAccepted:
    @pytest.mark.parametrize(
        ("text", "scheme", "bucket", "prefix"),
        [
            ("s3://ml-models/registry", "s3", "ml-models", "registry"),
            ("s3://ml-models", "s3", "ml-models", ""),
            ("s3://ml-models/", "s3", "ml-models", ""),
            ("s3://ml.models.eu/a/b=1/c_d", "s3", "ml.models.eu", "a/b=1/c_d"),
            ("S3://ml-models/x/", "s3", "ml-models", "x"),
            ("gs://ml_models/registry", "gs", "ml_models", "registry"),
            ("gs://ml.models.example.com/r", "gs", "ml.models.example.com", "r"),
            ("az://models/registry", "az", "models", "registry"),
            ("memory://scratch/x", "memory", "scratch", "x"),
        ],
    )
    def test_valid_uris_parse(self, text: str, scheme: str, bucket: str, prefix: str) -> None:
        """Each provider's valid names parse into scheme, bucket and prefix."""
        assert parse_storage_uri(text) == StorageUri(scheme, bucket, prefix)

    def test_keys_and_children(self) -> None:
        """Paths, keys and URLs are built from the parts; a child prefix is checked too."""
        uri = parse_storage_uri("s3://b-1/p")
        assert uri.path("blobs", "x") == "b-1/p/blobs/x"
        assert uri.key("blobs") == "p/blobs"
        assert uri.child("environments", "staging").url() == "s3://b-1/p/environments/staging"
        with pytest.raises(InvalidInput, match=r"'\.\.' segment"):
            uri.child("..")

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("/var/lib/modelreg/artifacts", Path("/var/lib/modelreg/artifacts")),
            ("relative/dir", Path("relative/dir")),
            ("file:///srv/artifacts", Path("/srv/artifacts")),
        ],
    )
    def test_local_locations(self, text: str, expected: Path) -> None:
        """A path or a file:/// URI is the local store."""
        assert artifact_location(text) == expected


class TestRefused:
    @pytest.mark.parametrize(
        ("text", "why"),
        [
            ("s3://bucket/a/../b", r"'\.\.' segment"),
            ("s3://bucket/../etc", r"'\.\.' segment"),
            ("s3://bucket/./a", r"'\.' segment"),
            ("s3://bucket/a//b", "empty segments"),
            ("s3://bucket/a/%2e%2e/b", "may only use"),
            ("s3://bucket/a b", "whitespace"),
            ("s3://bucket/a\\b", "backslash"),
            ("s3://Bucket/x", "not a valid S3 bucket"),
            ("s3://ab/x", "not a valid S3 bucket"),
            ("s3://a..b/x", "not a valid S3 bucket"),
            ("s3://192.168.1.1/x", "not a valid S3 bucket"),
            ("s3:///x", "no bucket"),
            ("s3://key:secret@bucket/x", "credentials in the URI"),
            ("s3://bucket:9000/x", "port or host"),
            ("s3://bucket/x?versionId=1", "query strings"),
            ("s3://bucket/x#frag", "query strings"),
            ("gs://goog-bucket/x", "not a valid Cloud Storage"),
            ("az://Models/x", "container"),
            ("az://my--models/x", "container"),
            ("http://example.com/x", "unsupported scheme 'http'"),
            ("gcs://bucket/x", "write gs://"),
            ("abfs://container/x", "write az://"),
            ("s3:bucket/x", "expected SCHEME://"),
            ("file://host/x", "file:///absolute"),
        ],
    )
    def test_refused_with_one_line_naming_the_uri(self, text: str, why: str) -> None:
        """Each rule refuses with InvalidInput naming the URI (credentials masked)."""
        with pytest.raises(InvalidInput, match=why) as caught:
            artifact_location(text)
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith("artifact store URI '")
        assert "secret" not in message

    def test_redaction(self) -> None:
        """User info and query strings never reach a message."""
        assert redact("s3://AKIA:shh@bucket/p?X-Amz-Signature=abc") == "s3://***@bucket/p?***"
        assert redact("/plain/path") == "/plain/path"

    def test_refused_uri_creates_nothing(self, tmp_path: Path) -> None:
        """A registry with a refused artifact URI fails before it creates its database."""
        with pytest.raises(InvalidInput, match=r"'\.\.' segment"):
            ModelRegistry(home=tmp_path / "home", artifact_uri="s3://bucket/models/../other")
        assert not (tmp_path / "home").exists()

    def test_backend_not_installed_names_the_extra(self, tmp_path: Path) -> None:
        """A scheme whose fsspec backend is missing says which extra installs it."""
        import importlib.util

        if importlib.util.find_spec("gcsfs") is not None:
            pytest.skip("gcsfs is installed here")
        with pytest.raises(InvalidInput, match=r"gs:// needs gcsfs: pip install 'modelreg\[gcs\]'"):
            ModelRegistry(home=tmp_path / "home", artifact_uri="gs://ml-models/registry")
