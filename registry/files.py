"""The small files every version keeps, rendered deterministically from its record.

``metadata.json``, ``signature.json``, ``requirements.txt`` and ``features.yaml``
are stored inline with the version row (same transaction), so they can never be
orphaned or half-written; the model file itself goes to the artifact store.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

RESERVED_NAMES = frozenset({"metadata.json", "signature.json", "requirements.txt", "features.yaml"})


def metadata_json(metadata: Mapping[str, Any]) -> bytes:
    return (json.dumps(metadata, sort_keys=True, indent=2, default=str) + "\n").encode()


def signature_json(signature: Mapping[str, Any]) -> bytes:
    return (json.dumps(signature, sort_keys=True, indent=2) + "\n").encode()


def features_yaml(features: Sequence[str], scaling: Mapping[str, Any] | None = None) -> bytes:
    doc: dict[str, Any] = {"num_features": len(features), "features": list(features)}
    if scaling:
        doc["scaling"] = dict(scaling)
    return yaml.safe_dump(doc, sort_keys=False).encode()


def requirements_txt(requirements: str | Sequence[str]) -> bytes:
    lines = requirements.splitlines() if isinstance(requirements, str) else list(requirements)
    cleaned = [line.strip() for line in lines if line.strip()]
    return ("\n".join(cleaned) + "\n").encode() if cleaned else b""


@functools.cache
def captured_requirements() -> str:
    """``name==version`` for every distribution in the running environment, sorted.

    Cached: the environment of a running process does not change under it, and
    scanning site-packages costs tens of milliseconds.
    """
    pins = set()
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            pins.add(f"{name}=={dist.version}")
    return "\n".join(sorted(pins, key=str.lower))
