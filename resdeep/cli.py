"""The `resdeep` command line: thin commands that call the library and print the result."""

from __future__ import annotations

import os
import sys

import typer

from resdeep.commands.bench import bench
from resdeep.commands.cam import cam
from resdeep.commands.importing import import_checkpoint
from resdeep.commands.landscape import landscape
from resdeep.commands.lesion import lesion
from resdeep.commands.models import models
from resdeep.commands.report import report
from resdeep.commands.runs import runs
from resdeep.commands.signal import signal
from resdeep.commands.train import train
from resdeep.commands.uncertainty import uncertainty
from resdeep.errors import PropagatedError, ResdeepError, first_line

app = typer.Typer(
    name="resdeep",
    help="Train plain and residual networks, watch gradients flow, and analyse checkpoints.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: flags without value placeholders, quick to print
    add_completion=False,
)
app.command()(models)
app.command()(runs)
app.command()(bench)
app.command()(report)
app.command()(uncertainty)
app.command()(cam)
app.command()(lesion)
app.command()(signal)
app.command()(landscape)
app.command(name="import")(import_checkpoint)
# Hydra parses train's arguments itself, --help included.
app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)(train)


def _report(message: str, exit_code: int, lines: list[str] | None = None) -> None:
    for line in lines or [first_line(message, "failed")]:
        sys.stderr.write(f"error: {line}\n")
    sys.exit(exit_code)


def _is_usage_error(error: Exception) -> bool:
    """Click's UsageError (Typer vendors Click in recent versions, so matched by name)."""
    return any(cls.__name__ == "UsageError" for cls in type(error).__mro__)


def _usage_line(error: Exception) -> str:
    """'No such option: --bogus Did you mean --out? (see resdeep cam --help)'."""
    context = getattr(error, "ctx", None)
    path = getattr(context, "command_path", "resdeep") or "resdeep"
    message = " ".join(error.format_message().split())  # type: ignore[attr-defined]
    return f"{message} (see {path} --help)"


def main(argv: list[str] | None = None) -> None:
    """Entry point. `--debug` anywhere (or RESDEEP_DEBUG=1) shows tracebacks instead of one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("RESDEEP_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    if debug:
        os.environ["HYDRA_FULL_ERROR"] = "1"
    if not args:
        args = ["--help"]
    try:
        # Not standalone: Click's usage errors come here as exceptions, so they get resdeep's
        # one line instead of a boxed panel.
        code = app(args=args, prog_name="resdeep", standalone_mode=False)
    except typer.Abort:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except PropagatedError as propagated:
        if debug:
            raise propagated.error from None
        error = propagated.error
        _report(str(error), error.exit_code, getattr(error, "lines", None))
    except ResdeepError as error:
        if debug:
            raise
        _report(str(error), error.exit_code, getattr(error, "lines", None))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as error:  # an unexpected bug: still one line, with the way to see more
        if debug:
            raise
        if _is_usage_error(error):
            _report(_usage_line(error), 2)
        _report(f"{type(error).__name__}: {error} (run with --debug for the traceback)", 1)
    if isinstance(code, int) and code:
        sys.exit(code)
