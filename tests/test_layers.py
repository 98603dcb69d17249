"""The package's layers import one way only (module-level and function-level imports alike).

    errors, fileio, progress, environment   leaves
    core                                    the frozen-model adapter, prompts, prompt files
    tasks                                   datasets, formats, official metrics
    evaluation                              scoring prompts on tasks
    training                                the prompt-tuning loop
    api, experiments, serving               what users call (experiments and serving independent)
    cli                                     parses and prints
"""
import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "softprompt"
LAYER = {
    "errors": 0, "fileio": 0, "progress": 0, "environment": 0,
    "core": 1, "tasks": 2, "evaluation": 3, "training": 4,
    "api": 5, "experiments": 5, "serving": 5, "__init__": 6, "cli": 7,
}
# same-level packages that must not import each other
INDEPENDENT = {("experiments", "serving"), ("serving", "experiments"), ("experiments", "api"), ("serving", "api")}


def part_of(module: str) -> str:
    """softprompt.training.trainer -> training; softprompt.api -> api."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("softprompt"):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("softprompt")]
    return found


def violations(modules: dict[str, list[tuple[int, str]]]) -> list[str]:
    """'a imports b' lines for every import that goes up a layer or across independent parts."""
    out = []
    for name, imports in modules.items():
        here = part_of(name)
        for line, target in imports:
            there = part_of(target)
            if there == "__init__" and target == "softprompt":
                there = "__init__"
            if LAYER[there] > LAYER[here] or (here, there) in INDEPENDENT:
                out.append(f"{name}:{line} imports {target} ({here} -> {there})")
    return out


def package_modules() -> dict[str, list[tuple[int, str]]]:
    modules = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        modules[name] = imports_of(path)
    return modules


def test_every_part_has_a_layer():
    parts = {part_of(m) for m in package_modules()}
    assert parts <= set(LAYER), parts - set(LAYER)


def test_no_module_imports_from_a_layer_above_it():
    assert violations(package_modules()) == []


@pytest.mark.parametrize("module,target", [
    ("softprompt.core.model", "softprompt.evaluation.evaluator"),  # core -> evaluation
    ("softprompt.tasks.glue", "softprompt.training.trainer"),  # tasks -> training
    ("softprompt.serving.app", "softprompt.experiments.report"),  # across the independent top parts
    ("softprompt.training.trainer", "softprompt.cli.main"),
])
def test_the_check_catches_an_upward_import(module, target):
    assert violations({module: [(1, target)]}) == [f"{module}:1 imports {target} "
                                                   f"({part_of(module)} -> {part_of(target)})"]
