"""The command line as a newcomer meets it: parse errors in one line, help that is quick."""

from __future__ import annotations

import pytest

from tests.conftest import run_main


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
