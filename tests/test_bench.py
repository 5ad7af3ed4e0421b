"""resdeep bench: the --quick smoke test through the real CLI. Benchmarks are never timed asserts:
this checks that every path runs and the JSON says what was measured, where."""

from __future__ import annotations

import json
import math

import torch

from resdeep.bench import QUICK, REQUIRED_NAMES
from tests.conftest import run_main


def test_quick_bench_writes_every_required_benchmark_as_json(capsys, tmp_path):
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        status, stdout, stderr = run_main(
            capsys, "bench", "--quick", "--device", "cpu", "--json", str(out)
        )
    finally:
        torch.set_num_threads(threads)  # --quick pins its own
    assert status == 0, stdout[-2000:] + stderr[-3000:]
    # Rows are named by what they timed at --quick's sizes (ResNet-8 and -14), goals not judged.
    assert "train_throughput_ratio_resnet8" in stdout and "not judged" in stdout

    records = json.loads(out.read_text())
    assert isinstance(records, list)
    by_name = {record["name"]: record for record in records}
    assert len(by_name) == len(records)  # names are unique
    assert {QUICK.named(name) for name in REQUIRED_NAMES} <= set(by_name)
    assert not any("resnet20" in name or "resnet110" in name for name in by_name)
    for record in records:
        assert {"name", "value", "unit", "goal", "met", "what", "context"} <= set(record)
        value = record["value"]
        if value is None:  # not measured must say why (--quick skips torch.compile)
            assert record["detail"]["error"]
        else:
            assert isinstance(value, int | float) and math.isfinite(value)
        assert record["goal"] is None or record["goal"].split()[0] in (">=", "<=")
        assert record["met"] is None and record["judged"] is False
        context = record["context"]
        assert context["device"] == "cpu" and context["quick"] is True
        for key in ("device_name", "torch", "threads", "repeats"):
            assert context[key]
    # Like with like: the loop is compared with a bare loop in its own memory format (channels
    # last where resdeep's `auto` picks it), so the ratio does not credit the format.
    resdeep_format = "AVX512" in torch.backends.cpu.get_cpu_capability()
    baseline = "bare_channels_last" if resdeep_format else "bare"
    for name in ("train_throughput_ratio_resnet8", "train_throughput_ratio_resnet14"):
        assert set(by_name[name]["detail"]) == {baseline, "resdeep_every", "resdeep_never"}
    # The training loops and tools were really timed, not skipped.
    for name in ("train_throughput_ratio_resnet14", "mc_dropout_head_cost_ratio_t32"):
        assert by_name[name]["value"] > 0


def test_bench_rejects_a_bad_repeat_count(capsys):
    status, _, stderr = run_main(capsys, "bench", "--quick", "--repeats", "0")
    assert status == 2 and "--repeats" in stderr


def test_bench_refuses_a_json_path_it_cannot_write_before_timing(capsys, tmp_path):
    from tests.conftest import run_main

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    status, stdout, stderr = run_main(capsys, "bench", "--quick", "--json", str(blocker / "b.json"))
    assert status == 2 and f"{blocker} is a file, not a folder" in stderr and stdout == ""
