"""Errors a user can act on. The CLI prints their message as one line, never a traceback."""

from __future__ import annotations


class ResdeepError(Exception):
    """A failure the user can fix; `exit_code` 1 for failures, 2 for bad usage."""

    exit_code = 1


class UsageError(ResdeepError):
    """Bad arguments or configuration."""

    exit_code = 2


class Problems(UsageError):
    """Several things wrong at once (every job of a sweep checked before the first starts):
    the CLI prints one line for each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)


def first_line(error: BaseException | str, default: str = "") -> str:
    """The first non-blank line of an error (or message): what a one-line report shows."""
    text = str(error).strip()
    return text.splitlines()[0] if text else default


class PropagatedError(BaseException):
    """Carries a user-facing error past Hydra's reporter (which handles only `Exception`)."""

    def __init__(self, error: ResdeepError) -> None:
        super().__init__(str(error))
        self.error = error
