"""The one error tree of orchestra.

Every error carries its exit code and renders as one line:
``<where>: <what>`` followed by ``(<hint>)`` when there is something the user can do.
The CLI prints ``str(error)`` and exits with ``error.exit_code``; nothing else is needed.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class OrchestraError(Exception):
    """Base class. ``where`` names the file and key path, ``hint`` says what is allowed."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        if not message:
            raise ValueError("OrchestraError needs a message")
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        # One line, always: messages may quote user input that holds newlines.
        return " ".join(text.split("\n"))


class BadInputError(OrchestraError):
    """Anything the user can fix by changing what they passed in: exit 2."""

    exit_code = EXIT_BAD_INPUT


class SpecError(BadInputError):
    """The MLproject (or an env/hook file it names) is invalid."""


class ParamError(BadInputError):
    """A parameter value is missing, unknown or of the wrong type."""


class SourceError(BadInputError):
    """A project URI cannot be resolved: bad URI, unknown host/repo/version, missing subdir."""


class HooksConfigError(BadInputError):
    """A hooks configuration source is unreadable or invalid."""


class CronError(BadInputError):
    """A cron expression or time zone is invalid."""


class RunNotFoundError(BadInputError):
    """A run id (or a stage of it) named by the user does not exist."""


class EnvError(BadInputError):
    """An environment cannot be resolved or built from its spec (bad spec, unsatisfiable, no Python)."""


class NotSupportedError(BadInputError):
    """A valid MLflow feature orchestra does not implement yet (e.g. docker_env)."""


class MissingExtraError(BadInputError):
    """What the user asked for needs an optional package that is not installed (the hint names
    the extra that brings it: ``pip install 'orchestra[conda]'``)."""


class StoreError(OrchestraError):
    """The run store or artifact store is unusable (corrupt database, unwritable home)."""


class StageFailedError(OrchestraError):
    """Raised inside execution when a stage cannot complete (never escapes ``api.run``)."""


class InterruptedRunError(OrchestraError):
    """The run was interrupted by SIGINT/SIGTERM."""

    exit_code = EXIT_INTERRUPTED
