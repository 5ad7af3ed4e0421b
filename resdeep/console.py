"""The one rich console every command prints through, so progress bars and logs never tear."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

console = Console()
error_console = Console(stderr=True)


def route_logging_through_rich(level: int = logging.INFO) -> None:
    """Send the root logger's console output through our console (above any progress bar).

    File handlers configured elsewhere (Hydra's job log) are kept.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            root.removeHandler(handler)
    rich_handler = RichHandler(console=console, show_path=False, markup=False, show_time=False)
    rich_handler.setLevel(level)
    root.addHandler(rich_handler)
    root.setLevel(min(root.level or level, level))
