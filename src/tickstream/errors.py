"""Errors a user can act on.

Exceptions are for bugs and broken infrastructure; the ones a user can fix carry
a message that says what is wrong and a hint that says what to do. The CLI
prints them as one line and exits with their exit code, without a traceback.
"""

from __future__ import annotations


class TickstreamError(Exception):
    """Something the user can fix: what is wrong, and what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class ConfigError(TickstreamError):
    """A setting has a bad value (exit code 2, like a usage error)."""

    exit_code = 2


class BadQueryError(TickstreamError):
    """A read of the lake asked for something it cannot give: an unknown resolution or session,
    a resolution finer than the stored bars (exit code 2, like a usage error)."""

    exit_code = 2


class EnvironmentProblem(TickstreamError):
    """The machine lacks something tickstream needs: Java, Maven, jars, a free port."""
