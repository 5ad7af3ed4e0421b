"""Where things live: one config -> objects mapping, shared by training and the tools."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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


# The layers of resdeep, bottom up: a module imports only from its own layer or those below it.
# Tools build on the foundation, commands on the tools, the entry points on the commands.
LAYERS = (
    ("errors", "console", "choices", "logscale", "plots", "workers"),
    ("schema", "models", "data", "runs", "io", "device", "output_paths", "batch_norm"),
    ("checkpoint", "config", "images"),
    ("train", "cam", "uncertainty", "report", "importing"),
    (
        "bench",
        "lesion",
        "signal",
        "landscape",
        "tool_inputs",
    ),  # they time or regroup the tools above
    ("commands",),
    ("cli", "__main__", "__init__"),  # `__init__`: the package's face, resdeep.load_checkpoint...
)
PACKAGE = Path(__file__).resolve().parent.parent / "resdeep"


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The resdeep modules `path` imports, deferred imports too; a TYPE_CHECKING block does not
    run, so its imports are left out."""

    def module_of(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    found: set[str | None] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            nodes = node.orelse
        elif isinstance(node, ast.Import):
            found.update(module_of(alias.name) for alias in node.names)
            nodes = []
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            # `from resdeep.cam import api` names a module, `from resdeep.cam import METHODS` not
            found.update(module_of(f"{node.module}.{alias.name}") for alias in node.names)
            nodes = []
        else:
            nodes = list(ast.iter_child_nodes(node))
        for child in nodes:
            visit(child)

    visit(ast.parse(path.read_text()))
    return {name for name in found if name and name.startswith("resdeep")}


def _import_graph() -> dict[str, set[str]]:
    modules = _module_names()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _layer(module: str) -> int | None:
    top = module.split(".")[1] if "." in module else "__init__"
    return next((index for index, names in enumerate(LAYERS) if top in names), None)


def test_every_module_has_a_layer():
    assert [name for name in _import_graph() if _layer(name) is None] == []


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{module} -> {imported}"
        for module, imports in sorted(_import_graph().items())
        for imported in sorted(imports)
        if _layer(imported) > _layer(module)
    ]
    assert upward == []


def test_the_modules_import_each_other_without_a_cycle():
    graph = _import_graph()
    done: set[str] = set()

    def cycle_from(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module) :] + [module]
        if module in done:
            return None
        for imported in sorted(graph[module]):
            if found := cycle_from(imported, [*path, module]):
                return found
        done.add(module)
        return None

    cycles = [found for module in sorted(graph) if (found := cycle_from(module, []))]
    assert cycles == []
