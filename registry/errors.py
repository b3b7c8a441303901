"""Errors raised by the registry.

Every error names what was wrong; the CLI prints ``str(error)`` as its one line.

    RegistryError
    ├── NotFound(RegistryError, LookupError)
    │   ├── ModelNotFound
    │   ├── VersionNotFound
    │   └── NoRegistry               a read found no registry at the path or URL
    ├── InvalidInput(RegistryError, ValueError)
    │   ├── InvalidName
    │   ├── InvalidVersion
    │   ├── IncompatibleVersion      explicit version too small for the changes
    │   └── ApprovalRefused          this identity may not approve/reject this version
    ├── Conflict(RegistryError)      the thing already exists / lost a race
    ├── ModelEndOfLife(RegistryError) a deprecated version past its end of life
    ├── IllegalTransition(RegistryError)
    │   └── ApprovalRequired         a guarded stage lacks approvals (names who)
    ├── IntegrityError(RegistryError)
    │   └── CorruptArtifact          stored bytes no longer match their digest
    ├── StorageError(RegistryError)  the artifact store cannot be reached, read or written
    ├── DatabaseUnavailable(RegistryError) the database cannot be reached or opened
    └── UnusableDatabase(RegistryError) empty, foreign, damaged or newer than this modelreg
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every error the registry raises on purpose."""


class NotFound(RegistryError, LookupError):
    """A model, version or record that was asked for does not exist."""


class ModelNotFound(NotFound):
    """No registered model has that name."""


class VersionNotFound(NotFound):
    """The model exists but not the requested version or stage."""


class NoRegistry(NotFound):
    """Opened to read (``create=False``): no registry database at that path or URL.
    Nothing was created looking for it."""


class InvalidInput(RegistryError, ValueError):
    """An argument is malformed; nothing was changed."""


class InvalidName(InvalidInput):
    """A model name, file name or tag breaks the naming rules."""


class InvalidVersion(InvalidInput):
    """A version string is not ``[v]MAJOR[.MINOR[.PATCH]]``."""


class IncompatibleVersion(InvalidInput):
    """An explicit version does not bump enough for the changes against its parent."""

    def __init__(self, message: str, differences: list[str]) -> None:
        super().__init__(message)
        self.differences = differences


class ApprovalRefused(InvalidInput):
    """The approver is not on the policy's list, or owns or registered the version
    (four eyes); an API maps this to 403, not 422."""


class Conflict(RegistryError):
    """The target already exists, or a concurrent writer got there first."""


class ModelEndOfLife(RegistryError):
    """Loading a deprecated version after its end of life, without ``force``."""


class DeprecatedModelWarning(UserWarning):
    """Loading a deprecated version (before its end of life)."""


class IllegalTransition(RegistryError):
    """A stage move that the lifecycle does not allow."""

    def __init__(self, message: str, from_stage: str | None, to_stage: str) -> None:
        super().__init__(message)
        self.from_stage = from_stage
        self.to_stage = to_stage


class ApprovalRequired(IllegalTransition):
    """Entering a guarded stage needs approvals this version does not have yet."""

    def __init__(self, message: str, to_stage: str, missing: list[str], needed: int) -> None:
        super().__init__(message, from_stage=None, to_stage=to_stage)
        self.missing = missing
        self.needed = needed


class IntegrityError(RegistryError):
    """Stored data fails a check it must pass (hash chain, digest, manifest)."""


class CorruptArtifact(IntegrityError):
    """An artifact's bytes do not hash to the digest it was stored under."""


class StorageError(RegistryError):
    """The artifact store could not be reached, read or written: an unreachable
    endpoint, a missing bucket, a denied request. The message names the store's URI
    (never a credential); nothing was committed to the registry."""


class DatabaseUnavailable(RegistryError):
    """The registry's database could not be reached or opened: a refused connection,
    a wrong password, an unreadable file. The message names the URL (never its
    password) and the server's reason; nothing was written."""


class UnusableDatabase(RegistryError):
    """The file or database where a registry is expected is not one this modelreg can
    use: empty, not a SQLite file, another program's database, damaged, or written by
    a newer modelreg. The message names it, says what is wrong and what to do;
    nothing was written to it."""
