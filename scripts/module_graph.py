"""Print the package's internal import graph: each module and the lerobot_wds modules it imports, and
after ``|`` the heavy libraries it imports itself (torch, torchcodec, webdataset, datatrove, av).

Imports under ``if TYPE_CHECKING:`` are left out (they cost nothing at run time); imports inside
functions are marked ``(lazy)``. Usage: ``python scripts/module_graph.py [src/lerobot_wds]``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

HEAVY = ("torch", "torchcodec", "webdataset", "datatrove", "av")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(current: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    base = current.split(".") if is_package else current.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    if node.module is None or (node.level and not node.module):
        return [f"{prefix}.{alias.name}" for alias in node.names]
    return [prefix]


def imports(path: Path, root: Path) -> dict[str, bool]:
    """Imported lerobot_wds modules -> lazy (inside a function)."""
    tree = ast.parse(path.read_text())
    name = module_name(path, root)
    found: dict[str, bool] = {}

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                targets = resolve(name, path.name == "__init__.py", child)
            for target in targets:
                if target.split(".")[0] in HEAVY and not inner:
                    found[f"|{target.split('.')[0]}"] = False
                if target.startswith("lerobot_wds") and target != name:
                    found[target] = found.get(target, True) and inner
            visit(child, inner)

    visit(tree, False)
    return found


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "src/lerobot_wds").resolve()
    modules = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    for name, path in modules.items():
        edges = imports(path, root)
        heavy = sorted(t[1:] for t in edges if t.startswith("|"))
        shown = [
            f"{t.removeprefix('lerobot_wds.')}{' (lazy)' if lazy else ''}"
            for t, lazy in sorted(edges.items())
            if not t.startswith("|")
        ]
        line = f"{name.removeprefix('lerobot_wds.') or 'lerobot_wds'} -> {', '.join(shown) or '-'}"
        print(f"{line}  | {', '.join(heavy)}" if heavy else line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
