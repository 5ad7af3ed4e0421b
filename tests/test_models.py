import json
import math

import pytest
import torch
from torch import nn

from resdeep.models import (
    ModelConfigError,
    blocks_per_stage,
    build_model,
    count_macs,
    count_parameters,
    depth_layers,
    weight_layers,
)
from tests.conftest import run_main

PAPER_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962, 200: 3_186_202}


@pytest.mark.parametrize("depth", sorted(PAPER_PARAMS))
def test_plain_and_resnet_match_the_paper_parameter_table(depth):
    plain = build_model("plain", depth=depth)
    resnet = build_model("resnet", depth=depth)
    assert count_parameters(plain) == count_parameters(resnet) == PAPER_PARAMS[depth]
    assert len(depth_layers(plain)) == len(depth_layers(resnet)) == depth


def test_plain_differs_from_resnet_only_by_the_addition():
    torch.manual_seed(0)
    plain, resnet = build_model("plain", depth=20), build_model("resnet", depth=20)
    resnet.load_state_dict(plain.state_dict())  # identical parameter names and shapes
    assert [n for n, _ in plain.named_parameters()] == [n for n, _ in resnet.named_parameters()]
    x = torch.randn(2, 3, 32, 32)
    plain.eval(), resnet.eval()
    assert not torch.allclose(plain(x), resnet(x))


def test_resnet20_macs_and_preact164_params():
    assert count_macs(build_model("resnet", depth=20), (3, 32, 32)) == pytest.approx(41e6, rel=0.02)
    preact = build_model("preact", depth=164, block="bottleneck")
    assert count_parameters(preact) == pytest.approx(1.70e6, rel=0.01)
    assert len(depth_layers(preact)) == 164
    assert len(depth_layers(build_model("preact", depth=200, block="bottleneck"))) == 200


@pytest.mark.parametrize(
    "arch,block,depth",
    [
        ("plain", "basic", 20),
        ("resnet", "basic", 20),
        ("preact", "basic", 20),
        ("preact", "bottleneck", 29),
    ],
)
@pytest.mark.parametrize("channels,size", [(1, 8), (3, 8), (1, 32), (3, 32)])
def test_output_and_feature_shapes(arch, block, depth, channels, size):
    model = build_model(arch, depth=depth, block=block, in_channels=channels, num_classes=7).eval()
    x = torch.randn(2, channels, size, size)
    features = model.features(x)
    expected_channels = 256 if block == "bottleneck" else 64
    assert features.shape == (2, expected_channels, math.ceil(size / 4), math.ceil(size / 4))
    assert model(x).shape == (2, 7)
    assert isinstance(model.classifier, nn.Linear)
    torch.testing.assert_close(model(x), model.classifier(features.mean(dim=(2, 3))))


def test_readable_stable_layer_names():
    names = [name for name, _ in weight_layers(build_model("plain", depth=20))]
    assert names[0] == "stem.conv"
    assert names[1:3] == ["stage1.block1.conv1", "stage1.block1.conv2"]
    assert "stage2.block3.conv2" in names
    assert names[-1] == "classifier"
    assert len(names) == 20


def _conv_weights(model):
    return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_kaiming_and_xavier_std_match_their_formulas():
    torch.manual_seed(0)
    for scheme in ("kaiming", "xavier"):
        model = build_model("plain", depth=20, init=scheme)
        for weight in _conv_weights(model):
            fan_in = weight.shape[1] * weight[0, 0].numel()
            fan_out = weight.shape[0] * weight[0, 0].numel()
            expected = (
                math.sqrt(2 / fan_in) if scheme == "kaiming" else math.sqrt(2 / (fan_in + fan_out))
            )
            assert weight.std().item() == pytest.approx(expected, rel=0.12), (scheme, weight.shape)


def test_default_init_is_much_smaller_than_kaiming():
    torch.manual_seed(0)
    default = _conv_weights(build_model("plain", depth=20, init="default"))[5].std().item()
    kaiming = _conv_weights(build_model("plain", depth=20, init="kaiming"))[5].std().item()
    assert default < 0.5 * kaiming


def test_orthogonal_init_rows_are_orthogonal():
    weight = _conv_weights(build_model("resnet", depth=20, init="orthogonal"))[3]
    flat = weight.reshape(weight.shape[0], -1)
    gram = flat @ flat.T
    torch.testing.assert_close(
        gram, torch.eye(len(gram)) * gram.diagonal().mean(), atol=1e-4, rtol=0
    )


def test_zero_init_residual_blocks_act_as_identity_then_relu():
    model = build_model("resnet", depth=20, zero_init_residual=True).eval()
    block = model.stage1.block2  # same shape in and out: identity shortcut
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(block(x), torch.relu(x))
    preact = build_model("preact", depth=20, block="basic", zero_init_residual=True).eval()
    torch.testing.assert_close(preact.stage1.block2(x), x)


def test_dropout_modules_only_when_asked():
    def dropouts(model):
        return [name for name, m in model.named_modules() if isinstance(m, nn.Dropout)]

    assert dropouts(build_model("resnet", depth=20)) == []
    assert dropouts(build_model("resnet", depth=20, dropout=0.3)) == ["head_dropout"]
    in_blocks = dropouts(build_model("resnet", depth=20, dropout=0.3, dropout_at="blocks"))
    assert len(in_blocks) == 9 and all(".dropout" in n for n in in_blocks)
    assert (
        len(
            dropouts(
                build_model(
                    "preact", depth=29, block="bottleneck", dropout=0.1, dropout_at="blocks"
                )
            )
        )
        == 9
    )


def test_norm_none_has_no_batchnorm():
    model = build_model("plain", depth=20, norm="none")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_option_b_projects_only_where_shapes_change():
    model = build_model("resnet", depth=20, shortcut="B")
    projections = [n for n, _ in weight_layers(model) if ".shortcut." in n]
    assert projections == ["stage2.block1.shortcut.conv", "stage3.block1.shortcut.conv"]
    assert count_parameters(model) > PAPER_PARAMS[20]


@pytest.mark.parametrize(
    "depth,block,near",
    [(21, "basic", (20, 26)), (30, "bottleneck", (29, 38)), (3, "basic", (8, 14))],
)
def test_invalid_depths_name_the_nearest_valid_ones(depth, block, near):
    with pytest.raises(ModelConfigError) as error:
        blocks_per_stage(depth, block)
    assert f"{near[0]} and {near[1]}" in str(error.value)


def test_bad_options_raise_clear_errors():
    for kwargs in (
        {"arch": "vgg"},
        {"arch": "resnet", "block": "bottleneck"},
        {"arch": "resnet", "dropout": 1.0},
        {"arch": "plain", "zero_init_residual": True},
        {"arch": "resnet", "init": "magic"},
    ):
        with pytest.raises(ModelConfigError):
            build_model(**kwargs)


def test_models_command_json_and_error(capsys):
    status, stdout, stderr = run_main(
        capsys,
        "models",
        "--arch",
        "plain",
        "--arch",
        "resnet",
        *sum((["--depth", str(d)] for d in PAPER_PARAMS), []),
        "--json",
    )
    assert status == 0, stderr
    rows = json.loads(stdout)
    assert {(r["arch"], r["depth"]): r["params"] for r in rows} == {
        (a, d): p for a in ("plain", "resnet") for d, p in PAPER_PARAMS.items()
    }
    assert all(r["weight_layers"] == r["depth"] for r in rows)
    assert set(rows[0]) == {"arch", "block", "depth", "weight_layers", "params", "macs"}
    status, _, stderr = run_main(capsys, "models", "--depth", "21")
    assert status == 2
    assert "20" in stderr and "26" in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
