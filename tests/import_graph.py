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


if __name__ == "__main__":
    for s in ["extract", "pretrain", "train", "val_train", "calibrate", "adapt", "synthesize", "classify", "report"]:
        print(s, sorted(module_closure(s)))
