"""The one rich console every command prints through, so progress bars and logs never tear."""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.logging import RichHandler

# Piped output (logs, CI) gets a wide fixed width so tables are not squeezed to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)


def route_logging_through_rich(level: int = logging.INFO) -> None:
    """Send the root logger's console output through our console (above any progress bar);
    plain lines when the output is not a terminal.

    File handlers configured elsewhere (Hydra's job log) are kept.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            root.removeHandler(handler)
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, show_path=False, markup=False, show_time=False)
    else:
        # Logs and CI: plain, unwrapped lines.
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(level)
    root.addHandler(handler)
    root.setLevel(min(root.level or level, level))
