"""Validation of every name a caller can pass that may reach a file path or a query.

Names are checked before anything is written, so a bad name changes nothing.
"""

from __future__ import annotations

import getpass
import os
import re

from registry.errors import InvalidName

MAX_NAME = 128
MAX_FILE_NAME = 200
MAX_TAG = 64

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# "fraud-v2" would read as version v2 of "fraud" in NAME-vX.Y.Z references.
_LOOKS_VERSIONED = re.compile(r".*-v\d+(?:\.\d+){0,2}")
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._ +-]*")
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")
_ACTOR = re.compile(r"[^\x00-\x1f\x7f]+")


def model_name(name: object) -> str:
    """Return ``name`` if it is a valid model name, else raise ``InvalidName``.

    Letters, digits, ``.``, ``_`` and ``-``; starts with a letter or digit; no
    ``..``; at most 128 characters; not ending in ``-v<number>`` (it would read as
    a version in ``NAME-vX.Y.Z`` references). These names become directory names.
    """
    checked = identifier(name, "model name")
    if _LOOKS_VERSIONED.fullmatch(checked):
        raise InvalidName(
            f"invalid model name {checked!r}: a name ending in -v<number> reads as a version "
            "in NAME-vX.Y.Z references; drop or rename the suffix"
        )
    return checked


def identifier(name: object, what: str) -> str:
    """A name safe as a path component (experiments, environments, models)."""
    if not isinstance(name, str) or not name:
        raise InvalidName(f"{what} must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME:
        raise InvalidName(f"{what} {name[:40]!r}... is longer than {MAX_NAME} characters")
    if not _MODEL_NAME.fullmatch(name) or ".." in name:
        raise InvalidName(
            f"invalid {what} {name!r}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, without '..'"
        )
    return name


def file_name(name: object) -> str:
    """Return ``name`` if it is a plain file name (no directory part), else raise."""
    if not isinstance(name, str) or not name:
        raise InvalidName(f"file name must be a non-empty string, got {name!r}")
    if len(name) > MAX_FILE_NAME:
        raise InvalidName(f"file name {name[:40]!r}... is longer than {MAX_FILE_NAME} characters")
    if not _FILE_NAME.fullmatch(name) or ".." in name:
        raise InvalidName(
            f"invalid file name {name!r}: no path separators, no '..', "
            "letters, digits, space, '.', '_', '+' and '-' only"
        )
    return name


def tag(value: object) -> str:
    """Return ``value`` if it is a valid tag."""
    if not isinstance(value, str) or not value or len(value) > MAX_TAG:
        raise InvalidName(f"tag must be a string of 1..{MAX_TAG} characters, got {value!r}")
    if not _TAG.fullmatch(value):
        raise InvalidName(f"invalid tag {value!r}: letters, digits and . _ : / - only")
    return value


def actor(value: object) -> str:
    """Return ``value`` if it can stand as who did something (no control characters)."""
    if not isinstance(value, str) or not value or len(value) > 256 or not _ACTOR.fullmatch(value):
        raise InvalidName(f"actor must be printable text of 1..256 characters, got {value!r}")
    return value


def default_actor() -> str:
    """``$MODELREG_ACTOR``, else the login name: who acts when nobody says."""
    try:
        return os.environ.get("MODELREG_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
