"""Errors raised by the controller.

    ControllerError
    ├── ConfigError(ControllerError, ValueError)   a config file is invalid: names file and key
    ├── OptionError(ControllerError, ValueError)   a valid option this process cannot use
    ├── RolloutError(ControllerError)
    │   ├── RolloutNotFound(RolloutError, LookupError)
    │   └── CannotStart(RolloutError, ValueError)   no policy, no artifact, no control, duplicate
    ├── IllegalMove(ControllerError)                a phase has no transition for an event
    └── RequestNotFound(ControllerError, LookupError)   no durable request has that id

Router failures are ``controller.adapters.routing.RouterError`` (temporary: retried every tick).
"""

from __future__ import annotations


class ControllerError(Exception):
    """Base of every error the controller raises on purpose."""


class ConfigError(ControllerError, ValueError):
    """A configuration file is invalid; the message names the file and key path.

    ``problems`` lists every error found (the message shows the first and a count).
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class OptionError(ControllerError, ValueError):
    """An option that is valid in the file but unusable in this process's environment:
    an environment variable that is not set, a file that cannot be read.

    Only the running process can tell, so ``config check`` reports these as warnings
    (it may run elsewhere, in CI say) and the daemon refuses to start with the same
    line. ``key`` is the option's path inside its ``options`` (or target).
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class RolloutError(ControllerError):
    """A rollout operation cannot be done."""


class RolloutNotFound(RolloutError, LookupError):
    """No rollout has that id (or no active rollout for that model)."""


class CannotStart(RolloutError, ValueError):
    """A rollout cannot start: no policy, no artifact, no production control, or already running."""


class IllegalMove(ControllerError):
    """The phase table has no transition for (phase, event)."""

    def __init__(self, phase: str, event: str) -> None:
        super().__init__(f"illegal move: event {event!r} is not allowed in phase {phase!r}")
        self.phase = phase
        self.event = event


class RequestNotFound(ControllerError, LookupError):
    """No durable request (several daemons) has that id."""
