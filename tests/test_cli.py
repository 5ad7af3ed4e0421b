"""The command line as a newcomer meets it: parse errors in one line, help that is quick."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, run_main


@pytest.mark.parametrize(
    "args,needle",
    [
        (("foo",), "No such command 'foo'"),
        (("cam", "x.png", "--top-k", "abc"), "--top-k"),
        (("cam", "--bogus"), "No such option: --bogus"),
        (("report",), "Missing argument"),
        (("runs", "a", "b"), "unexpected extra argument"),
    ],
)
def test_parse_errors_are_one_line_with_where_to_look(capsys, args, needle):
    status, _, stderr = run_main(capsys, *args)
    lines = stderr.strip().splitlines()
    assert status == 2 and len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and needle in lines[0] and "--help)" in lines[0]
    assert "╭" not in stderr  # no boxed panel


def test_train_help_lists_groups_keys_with_meaning_and_examples(capsys):
    from resdeep.schema import choices_by_key
    from resdeep.train.help import key_rows

    status, stdout, _ = run_main(capsys, "train", "--help")
    assert status == 0
    for text in ("Examples:", "resdeep train -m", "--cfg job", "--debug", "--hydra-help"):
        assert text in stdout
    for group, default in (("model", "resnet"), ("data", "digits"), ("experiment", None)):
        assert f"\n  {group}\n" in stdout
        if default:
            assert f"* {default} " in stdout
    assert "depth_study" in stdout and "Degradation" in stdout  # an option and what it is
    rows = {key: (default, meaning) for key, default, meaning in key_rows()}
    assert rows["model.depth"] == ("20", "6n+2 for basic blocks, 9n+2 for bottleneck units")
    assert rows["trainer.compile_mode"][1].endswith("reduce-overhead: CUDA graphs")
    for key, choices in choices_by_key().items():  # every choice is listed with its key
        line = next(line for line in stdout.splitlines() if line.split()[:1] == [key])
        assert all(str(c).lower() in line.lower() for c in choices), line
    assert all(meaning for key, (_, meaning) in rows.items()), "a key without a meaning"


@pytest.mark.parametrize("args", [("--help",), ("train", "--help"), ()])
def test_help_never_imports_torch(args):
    """Help prints before torch would load (4 s idle, 15 s on a busy machine): checked by what
    the process imported, not by a timed assert."""
    code = (
        "import sys\n"
        "from resdeep.cli import main\n"
        "try:\n"
        f"    main({list(args)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('torch' in sys.modules, 'matplotlib' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False False"
