"""Fault injection: bad input, interruptions, divergence, unsafe files, disks that fail.

Each test names the guarantee it protects; the README's Reliability table lists them.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resdeep.errors import ResdeepError
from resdeep.io import save_torch_atomic
from tests.conftest import FAST, REFERENCE, REFERENCE_EPOCHS, REPO, run_main


def _popen_train(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "resdeep", "train", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def _wait_for_epochs(run_dir: Path, epochs: int, process: subprocess.Popen, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if json.loads((run_dir / "metrics.json").read_text())["epochs"] >= epochs:
                return
        except (OSError, ValueError, KeyError):
            pass
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError("training did not reach the epoch in time")


def _refusal(capsys, *args: str) -> tuple[int, str]:
    """(exit status, the one error line) of the real entry point run in this process."""
    status, _, stderr = run_main(capsys, *args)
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return status, lines[0]


# ---- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,message",
    [
        (("model=vgg",), "Could not find 'model/vgg'"),  # unknown group option: names the valid
        (("trainer.epochs",), "trainer.epochs"),  # malformed override
        # The schema (resdeep/schema.py): a wrong type, an unknown key (never Hydra's advice to
        # append it with +, which trains with the typo ignored), a value out of its choices.
        (("model.depth=abc",), "model.depth must be an integer, got 'abc'"),
        (("optim.lr=fast",), "optim.lr must be a number, got 'fast'"),
        (("model.dept=56",), "unknown config key model.dept; did you mean model.depth or"),
        (("+model.dept=56",), "unknown config key model.dept; did you mean model.depth or"),
        (("trainer.epoch=3",), "unknown config key trainer.epoch; did you mean trainer.epochs"),
        (("depth=56",), "unknown config key depth; did you mean model.depth?"),
        (("model.foo=1",), "unknown config key model.foo"),
        (("model.arch=resent",), "model.arch must be one of resnet, plain, preact; got 'resent'"),
        (("trainer.on_nan=maybe",), "trainer.on_nan must be one of stop, skip; got 'maybe'"),
    ],
)
def test_config_errors_are_one_line_usage_errors(capsys, tmp_path, args, message):
    # In-process: these are refused before Hydra runs, so nothing is written anywhere.
    code, _, stderr = run_main(
        capsys, "train", "trainer.device=cpu", *args, f"hydra.run.dir={tmp_path / 'r'}"
    )
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert message in lines[0]
    assert not (tmp_path / "r").exists()


def test_debug_shows_the_traceback(cli, tmp_path):
    # A command that fails before torch loads: the traceback is cli.main's doing, whatever
    # the command (0.4 s here instead of 3 s for train's).
    result = cli("--debug", "runs", str(tmp_path / "missing"))
    assert result.returncode != 0 and "Traceback" in result.stderr
    assert "ResdeepError: no such directory" in result.stderr


# ---- interruptions ----------------------------------------------------------------------


def test_sigterm_writes_a_resumable_checkpoint(capsys, tmp_path):
    run_dir = tmp_path / "run"
    process = _popen_train(
        *FAST, "trainer.epochs=500", "schedule=constant", f"hydra.run.dir={run_dir}"
    )
    _wait_for_epochs(run_dir, 1, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "resume with: resdeep train trainer.resume=" in stderr and "Traceback" not in stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted"
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert saved["step"] == metrics["steps"] >= 10
    # The resume in-process (the kill above is the part that needs a process of its own).
    status, _, stderr = run_main(
        capsys, "train", f"trainer.resume={run_dir}", f"trainer.max_steps={saved['step'] + 15}"
    )
    assert status == 0, stderr
    resumed = json.loads((run_dir / "metrics.json").read_text())
    assert resumed["status"] == "completed" and resumed["steps"] == saved["step"] + 15


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(
    capsys, tmp_path, reference_run
):
    killed = tmp_path / "killed"
    process = _popen_train(
        *FAST, *REFERENCE, f"trainer.epochs={REFERENCE_EPOCHS}", f"hydra.run.dir={killed}"
    )
    _wait_for_epochs(killed, 1, process)
    process.kill()
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    survived = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)  # never corrupt
    assert survived["epoch"] >= 1
    # The resume in-process (the kill above is the part that needs a process of its own).
    status, _, stderr = run_main(capsys, "train", f"trainer.resume={killed}")
    assert status == 0, stderr
    a = torch.load(reference_run / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "last.pt"
    save_torch_atomic({"weights": torch.ones(3)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("crash in the middle of a write")

    with pytest.raises(RuntimeError):
        save_torch_atomic({"weights": torch.zeros(3), "bad": Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["weights"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


# ---- divergence -------------------------------------------------------------------------

# A plain net without batch norm at an absurd learning rate overflows within a few steps.
# With TensorBoard's pictures (FAST turns them off): they are drawn from inf and NaN too.
DIVERGING = ("model=plain", "model.norm=none", "optim.lr=1e6", "trainer.figures=true")


def test_nan_loss_stops_the_run_and_says_so(capsys, tmp_path):
    run_dir = tmp_path / "run"
    status, _, stderr = run_main(
        capsys,
        "train",
        *FAST,
        *DIVERGING,
        "trainer.epochs=2",
        "trainer.log_every=2",
        f"hydra.run.dir={run_dir}",
    )
    assert status == 1 and stderr.count("\n") == 1 and "diverged" in stderr
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "diverged"


def test_nan_loss_can_skip_steps_instead(capsys, tmp_path):
    run_dir = tmp_path / "run"
    _, _, stderr = run_main(
        capsys,
        "train",
        *FAST,
        *DIVERGING,
        "trainer.epochs=1",
        "trainer.on_nan=skip",
        f"hydra.run.dir={run_dir}",
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["skipped_steps"] > 0, stderr
    assert metrics["status"] in ("completed", "diverged")


# ---- unsafe and broken checkpoints --------------------------------------------------------


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def malicious_checkpoint(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": "resdeep-checkpoint", "model": _Payload(marker)}, path)
    return path, marker


def test_malicious_checkpoint_is_refused_by_resume(capsys, tmp_path, malicious_checkpoint):
    # In this very process: had the payload run, the marker would exist.
    path, marker = malicious_checkpoint
    status, line = _refusal(
        capsys, "train", *FAST, f"trainer.resume={path}", f"hydra.run.dir={tmp_path / 'r'}"
    )
    assert status != 0 and "refusing" in line
    assert not marker.exists()


@pytest.mark.parametrize("command", [("cam", "IMAGE"), ("uncertainty",)])
def test_malicious_checkpoint_is_refused_by_analysis_tools(
    capsys, tmp_path, malicious_checkpoint, command
):
    from PIL import Image

    path, marker = malicious_checkpoint
    image = tmp_path / "digit.png"
    Image.new("L", (8, 8), 128).save(image)
    args = [str(image) if a == "IMAGE" else a for a in command]
    status, line = _refusal(capsys, *args, "--checkpoint", str(path))
    assert status != 0 and "refusing" in line
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"not a checkpoint at all"])
def test_broken_checkpoints_give_one_line(capsys, tmp_path, content):
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    status, line = _refusal(
        capsys, "train", *FAST, f"trainer.resume={path}", f"hydra.run.dir={tmp_path / 'r'}"
    )
    assert status == 1 and str(path) in line


def test_non_resdeep_checkpoint_is_refused(capsys, tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, path)
    status, line = _refusal(
        capsys, "train", *FAST, f"trainer.resume={path}", f"hydra.run.dir={tmp_path / 'r'}"
    )
    assert status == 1 and "not a resdeep checkpoint" in line


# ---- disks and paths --------------------------------------------------------------------


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))


def test_full_disk_fails_cleanly_without_partial_checkpoints(tmp_path):
    run_dir = tmp_path / "run"
    process = _popen_train(
        *FAST, "trainer.epochs=1", f"hydra.run.dir={run_dir}", preexec_fn=_limit_file_size
    )
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1
    assert "cannot write" in stderr and "Traceback" not in stderr
    leftovers = (
        [p.name for p in (run_dir / "checkpoints").iterdir()]
        if (run_dir / "checkpoints").exists()
        else []
    )
    assert not any(name.endswith(".tmp") for name in leftovers)


def test_read_only_run_dir_is_refused(capsys, tmp_path):
    mount_point = tmp_path / "ro"
    mount_point.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount_point)],
            capture_output=True,
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a read-only file system here")
    try:
        status, line = _refusal(capsys, "train", *FAST, f"hydra.run.dir={mount_point / 'run'}")
        assert status == 2 and "cannot write" in line
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_two_runs_never_share_a_run_dir(capsys, tmp_path):
    """Two starts into one directory at once, with different seeds: exactly one trains, and the
    other writes nothing there, not even Hydra's record or a log line; the run keeps its seed
    when it is resumed later."""
    run_dir = tmp_path / "same"
    processes = {
        seed: _popen_train(*FAST, "trainer.epochs=1", f"seed={seed}", f"hydra.run.dir={run_dir}")
        for seed in (0, 1)
    }
    outcomes = {seed: (p.wait(timeout=300), p.stderr.read()) for seed, p in processes.items()}
    assert sorted(code for code, _ in outcomes.values()) == [0, 2], outcomes
    winner = next(seed for seed, (code, _) in outcomes.items() if code == 0)
    loser_line = next(err for code, err in outcomes.values() if code == 2)
    assert "already used by another run" in loser_line
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
    # Every file of the run is the winner's: one event file, its seed in every record.
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    assert f"seed={winner}" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    for record in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        assert f"seed: {winner}" in record.read_text()
    assert "already used" not in (run_dir / "train.log").read_text()
    status, _, stderr = run_main(capsys, "train", f"trainer.resume={run_dir}", "trainer.epochs=2")
    assert status == 0, stderr
    payload = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert payload["config"]["seed"] == winner and payload["epoch"] == 2


def test_classes_the_data_set_lacks_and_a_failed_download_leave_nothing(capsys, tmp_path):
    status, _, stderr = run_main(
        capsys, "train", *FAST, "data.classes=[0,11]", f"hydra.run.dir={tmp_path / 'r'}"
    )
    assert status == 2 and "data.classes [11] are not label ids in 0..9" in stderr
    # No network here: the download fails, and the folders it made go again.
    status, _, stderr = run_main(
        capsys, "train", "data=mnist", "data.download=true", f"data.root={tmp_path / 'd' / 'x'}",
        "trainer.epochs=1", f"hydra.run.dir={tmp_path / 'r'}",
    )  # fmt: skip
    assert status == 1 and "download to" in stderr and stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_io_error_is_a_resdeep_error(tmp_path):
    target = tmp_path / "missing-dir-is-a-file"
    target.write_text("x")
    with pytest.raises(ResdeepError):
        save_torch_atomic({"a": torch.ones(1)}, target / "last.pt")


def test_directory_without_images_is_refused(capsys, tmp_path, train_run):
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, stderr = run_main(
        capsys, "cam", str(empty), "--checkpoint", str(train_run()), "--out", str(tmp_path / "o")
    )
    assert status == 1 and "no image files" in stderr
    assert "Traceback" not in stderr and not (tmp_path / "o").exists()


def test_a_failed_start_removes_only_what_it_wrote(tmp_path):
    from resdeep.runs import CLAIM_MARKER, undo_failed_start

    mine = tmp_path / "runs" / "day" / "run"
    (mine / ".hydra").mkdir(parents=True)
    for name in (".hydra/config.yaml", "train.log", "config.yaml", CLAIM_MARKER):
        (mine / name).write_text("x")
    (tmp_path / "runs" / "notes.txt").write_text("the user's")
    undo_failed_start(mine, stop_at=tmp_path)
    assert not (tmp_path / "runs" / "day").exists()  # the run dir and its empty parent
    assert (tmp_path / "runs" / "notes.txt").read_text() == "the user's"
    # A directory the user filled keeps their files; one with a checkpoint is left alone.
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "data.csv").write_text("1,2")
    (theirs / "train.log").write_text("x")
    undo_failed_start(theirs, stop_at=tmp_path)
    assert sorted(p.name for p in theirs.iterdir()) == ["data.csv"]
    (theirs / "checkpoints").mkdir()
    (theirs / "config.yaml").write_text("x")
    undo_failed_start(theirs, stop_at=tmp_path)
    assert (theirs / "config.yaml").exists()


@pytest.mark.parametrize(
    "name,kind",
    [("notes.txt", "a text file"), ("rocket.jpg", "a JPEG image"), ("cat.png", "a PNG image")],
)
def test_a_foreign_file_given_as_checkpoint_gets_one_resdeep_sentence(capsys, tmp_path, name, kind):
    path = tmp_path / name
    if name == "notes.txt":
        path.write_text("these are my notes\n" * 20)
    else:
        path.write_bytes((REPO / "examples" / "photos" / name).read_bytes())
    image = REPO / "examples" / "digits" / "digit_a.png"
    for command in (("cam", str(image)), ("uncertainty",)):
        status, line = _refusal(capsys, *command, "--checkpoint", str(path))
        assert status == 1 and line == f"error: {path} is not a PyTorch checkpoint ({kind})"
    # PyTorch's own advice to turn safe loading off never reaches the user.
    status, line = _refusal(capsys, "import", "akamaster", str(path))
    assert status == 1 and kind in line and "weights_only" not in line


def test_a_refused_pickle_never_suggests_unsafe_loading(capsys, tmp_path, malicious_checkpoint):
    path, _ = malicious_checkpoint
    status, line = _refusal(capsys, "uncertainty", "--checkpoint", str(path))
    assert "could run code" in line and "weights_only" not in line
