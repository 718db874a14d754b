"""The package's layout: each folder a part of the method, imports only downward, no cycles.

Layers, lowest first: a module may import its own folder and the folders below it, never one above."""
from pathlib import Path

from tests.import_graph import ROOT, _imports

LAYERS = ["runtime", "data", "nn", "generators", "transductive", "evaluation", "baselines", "fixtures", "pipeline",
          "predict"]


def modules() -> dict[str, set[str]]:
    """{'zerodiffpp.x.y': imported zerodiffpp modules} for every module of the package."""
    out = {}
    for path in sorted((ROOT / "zerodiffpp").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = {m for m in _imports(path) if m != name}
    return out


def layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    assert part in LAYERS, f"{module}: not in a folder of tests/test_layout.py's LAYERS {LAYERS}"
    return LAYERS.index(part)


def test_every_module_lives_in_a_named_folder():
    folders = {p.name for p in (ROOT / "zerodiffpp").iterdir() if (p / "__init__.py").exists()}
    loose = [m for m in modules() if m.count(".") == 1 and m.split(".")[1] not in folders | {"predict"}]
    assert not loose, f"modules outside the package's folders: {loose}"


def test_imports_only_go_down():
    up = [(m, i) for m, imps in modules().items() if m != "zerodiffpp"
          for i in imps if i != "zerodiffpp" and layer(i) > layer(m)]
    assert not up, f"upward imports (module -> a higher folder): {up}"


def test_no_import_cycles():
    graph = modules()
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for i in graph.get(m, ()):
            if state.get(i) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(i):] + [i])}")
            if not state.get(i):
                visit(i, stack + [i])
        state[m] = 2

    for m in graph:
        if not state.get(m):
            visit(m, [m])
