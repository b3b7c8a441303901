"""Every file and directory a config makes the daemon write, checked before it starts.

A database is never put in a directory the daemon would have to create outside its
own home (``registry.home``): the registry's and an ingest source's SQLite file must
be in the home or in a directory that exists, or the daemon refuses to start with the
line ``config check`` prints (a typo in a URL does not make ``/nonexistent/dir``). A
router's output (the file router's file, nginx's include directory) is the router's
own: it is created where the config says, and a failure there is the router's, shown
by ``/readyz`` and retried. A directory that is there but not writable by whoever runs
the check, or a file where a directory should be, is a ``here`` problem
(``PathProblem.here``): ``config check`` warns, since the daemon may run as another
user or the path may be fixed before it starts; the daemon refuses it for databases.

``registry_file_problems`` reads an existing registry database the way the registry
would open it, so ``config check`` names an empty, foreign or damaged file before the
daemon meets it (the daemon then exits 1 with the registry's own line).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from controller.config import Config
from registry import db
from registry.errors import RegistryError

__all__ = ["PathProblem", "path_problems", "registry_file_problems"]


@dataclass(frozen=True, slots=True)
class PathProblem:
    """One path the daemon could not use. ``here``: true of this user on this host only
    (a directory it cannot write), not of the config itself. ``database``: a database's
    directory, which the daemon refuses to start without (a router's output is retried)."""

    line: str
    here: bool = False
    database: bool = False


def path_problems(config: Config) -> list[PathProblem]:
    """One per path the daemon could not write, or would have to create outside its
    home (``FILE: routers.table.options.path: directory /x does not exist ...``)."""
    where = config.source_file
    home = Path(config.registry.home).resolve()
    problems: list[PathProblem] = []

    def writable(key: str, directory: Path, *, database: bool) -> None:
        directory = directory.resolve()
        if directory.is_dir():
            if not os.access(directory, os.W_OK | os.X_OK):
                line = f"{where}: {key}: directory {directory} is not writable"
                problems.append(PathProblem(line, here=True, database=database))
        elif directory.exists():
            line = f"{where}: {key}: {directory} is not a directory"
            problems.append(PathProblem(line, here=True, database=database))
        elif database and not directory.is_relative_to(home):
            problems.append(PathProblem(
                f"{where}: {key}: directory {directory} does not exist (the daemon makes a "
                f"database's directory only in its home, {home}; create it first)",
                database=True,
            ))  # fmt: skip

    registry_db = db.sqlite_path(config.registry_url())
    if registry_db is not None:
        writable("registry.url", registry_db.parent, database=True)
    for name, source in config.sources.items():
        url = getattr(source.options, "url", None) if source.kind == "ingest" else None
        ingest_db = db.sqlite_path(url) if isinstance(url, str) else None
        if ingest_db is not None:
            writable(f"sources.{name}.options.url", ingest_db.parent, database=True)
    for name, router in config.routers.items():
        options = router.options
        if router.kind == "file":
            path = Path(options.path).parent  # type: ignore[attr-defined]
            writable(f"routers.{name}.options.path", path, database=False)
        elif router.kind == "nginx":
            path = Path(options.include_dir)  # type: ignore[attr-defined]
            writable(f"routers.{name}.options.include_dir", path, database=False)
    return problems


def registry_file_problems(config: Config) -> list[str]:
    """An existing registry database read as the registry would open it: an empty,
    foreign or damaged file, one line (the daemon meets the same when it opens the
    registry, and exits 1 with it)."""
    path = db.sqlite_path(config.registry_url())
    if path is None or not path.exists():
        return []
    try:
        db.check_sqlite_file(path)
        db.check_ours(path)
    except RegistryError as exc:
        return [f"{config.source_file}: registry.url: {exc}"]
    return []
