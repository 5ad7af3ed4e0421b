"""Where things live: one config -> objects mapping, shared by training and the tools."""

from __future__ import annotations

import subprocess
import sys

import pytest

from resdeep.checkpoint import load_checkpoint
from resdeep.config import checkpoint_data
from resdeep.errors import ResdeepError


def test_the_analysis_tools_do_not_import_the_trainer():
    code = (
        "import sys, resdeep.commands.cam, resdeep.commands.uncertainty, resdeep.cam.evaluate, "
        "resdeep.uncertainty.data; "
        "print(sorted(m for m in sys.modules if m.startswith('resdeep.train.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "resdeep.train.runner" not in result.stdout
    assert "resdeep.train.loop" not in result.stdout


def test_a_checkpoint_rebuilds_its_own_data_and_refuses_another_shape(train_run):
    run_dir = train_run()
    _, info = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    data = checkpoint_data(info)
    assert (data.in_channels, data.image_size, data.image_size) == tuple(info.input_shape)
    assert len(data.test) == 359  # the run's own fixed test split of digits
    info.config["data"]["image_size"] = 16  # a config that no longer matches the weights
    with pytest.raises(ResdeepError, match=r"images are \(1, 16, 16\), but .* expects \(1, 8, 8\)"):
        checkpoint_data(info)
