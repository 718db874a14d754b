"""The zerodiffpp modules a stage script imports, transitively (used by the dvc.yaml contract test)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zerodiffpp"):
            # `from package import module` names the module; `from module import name` the module
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if (ROOT / (sub.replace(".", "/") + ".py")).exists() else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("zerodiffpp.")}
    return found


def module_closure(stage: str) -> set[str]:
    """Repo-relative file paths of every zerodiffpp module the stage needs."""
    todo, seen = list(_imports(ROOT / "stages" / f"{stage}.py")), set()
    while todo:
        mod = todo.pop()
        rel = mod.replace(".", "/") + ".py"
        if rel in seen or not (ROOT / rel).exists():
            continue
        seen.add(rel)
        todo.extend(_imports(ROOT / rel))
    return seen


def write_dvc_yaml(path: Path = ROOT / "dvc.yaml") -> None:
    """Rewrite each stage's zerodiffpp/ code deps in dvc.yaml from the import graph (the list that
    tests/test_dvc_contract.py checks), leaving every other line as it is."""
    import re
    text = path.read_text()
    head, rest = text.split("stages:\n", 1)
    blocks = [b for b in re.split(r"(?m)^(?=  [a-z_]+:\n)", rest) if b.strip()]
    out = []
    for block in blocks:
        name = re.match(r"  ([a-z_]+):", block).group(1)
        lines = [line for line in block.splitlines(keepends=True) if not line.strip().startswith("- zerodiffpp/")]
        at = next(k for k, line in enumerate(lines) if line.strip() == f"- stages/{name}.py")
        lines[at + 1:at + 1] = [f"      - {m}\n" for m in sorted(module_closure(name))]
        out.append("".join(lines))
    path.write_text(head + "stages:\n" + "".join(out))


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["--write"]:  # python -m tests.import_graph --write: dvc.yaml's code deps from the imports
        write_dvc_yaml()
    else:
        import yaml
        for s in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]:
            print(s, sorted(module_closure(s)))
