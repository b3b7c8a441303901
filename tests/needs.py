"""What a test needs from the machine: present, or skipped here and failed under CI.

A test that needs a Debian package's executable (nginx, HAProxy) says so once through
``require_executable``; locally a missing one skips the test with the reason, and under
``CI=true`` (where tests/services.sh installs it) it fails, so CI never passes without it.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    """Fail under CI, skip elsewhere, with ``message``."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_executable(path: str, package: str) -> None:
    """``path`` must be executable (Debian package ``package``)."""
    if not os.access(path, os.X_OK):
        unavailable(f"{path} is not installed (Debian package {package}; see tests/services.sh)")
