"""Errors a user can act on. The CLI prints their message as one line, never a traceback."""

from __future__ import annotations


class ResdeepError(Exception):
    """A failure the user can fix; `exit_code` 1 for failures, 2 for bad usage."""

    exit_code = 1


class UsageError(ResdeepError):
    """Bad arguments or configuration."""

    exit_code = 2
