"""Training progress: a rich bar on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import logging

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from resdeep.console import console

log = logging.getLogger("resdeep.train")


class TrainingProgress:
    def __init__(self, total_steps: int, start_step: int, mode: str = "auto") -> None:
        interactive = console.is_terminal if mode == "auto" else mode == "bar"
        self._quiet = mode == "off"  # ranks other than 0 print nothing
        self._progress: Progress | None = None
        if interactive:
            self._progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "loss {task.fields[loss]} · acc {task.fields[acc]} · {task.fields[speed]}"
                ),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self._task = self._progress.add_task(
                "train",
                total=total_steps,
                completed=start_step,
                epoch=0,
                loss="-",
                acc="-",
                speed="- img/s",
            )

    def __enter__(self) -> TrainingProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, epoch: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, epoch=epoch)

    def show(self, *, epoch: int, loss: float, acc: float, images_per_s: float) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task,
                epoch=epoch,
                loss=f"{loss:.4f}",
                acc=f"{acc:.3f}",
                speed=f"{images_per_s:,.0f} img/s",
            )

    def epoch_done(self, line: str) -> None:
        """Per-epoch summary: logged (above the bar on a terminal, a plain line elsewhere)."""
        if not self._quiet:
            log.info(line)
