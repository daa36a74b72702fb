"""The shape of the code base, for before/after comparisons of a restructuring.

Prints the largest files and functions under ``src/``, the number of ``__init__`` arguments of
each LightningModule, the imports between the app layer and the library (an import circle is
named), and how many config lines a new source->target pair needs (the lines of a shipped pair
file, against the lines of all stage configs one would otherwise copy).

    python benchmarks/structure_report.py [--top 10]

``duplicates`` (the project's duplicate finder) gives the repeated code; this script the rest.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "crgan_lightning"


def code_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def functions(path: Path):
    """(qualified name, lines) of every function and method of a file."""
    tree = ast.parse(path.read_text())
    out = []

    def visit(node, prefix=""):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((f"{prefix}{child.name}", child.end_lineno - child.lineno + 1))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree)
    return out


def module_arguments(path: Path):
    """(class name, number of explicit ``__init__`` arguments, whether it takes ``**kwargs``, names of
    its bases) of the classes of a modules/ file."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    args = item.args
                    bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
                    yield node.name, len(args.args) - 1 + len(args.kwonlyargs), args.kwarg is not None, bases


def imports_of(path: Path) -> set[str]:
    """The package modules a file imports (relative imports resolved)."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + (1 if path.name == "__init__.py" else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("crgan_lightning"):
                found.add(target)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    files = sorted(PACKAGE.rglob("*.py"))
    sizes = sorted(((code_lines(f), f.relative_to(PACKAGE)) for f in files), reverse=True)
    print(f"{len(files)} files, {sum(s for s, _ in sizes)} non-blank lines under src/crgan_lightning")
    print("\nlargest files (non-blank lines):")
    for n, f in sizes[: args.top]:
        print(f"  {n:5d}  {f}")
    funcs = sorted(((n, f"{f.relative_to(PACKAGE)}:{name}") for f in files for name, n in functions(f)), reverse=True)
    print("\nlargest functions (lines):")
    for n, name in funcs[: args.top]:
        print(f"  {n:5d}  {name}")
    print("\nLightningModule __init__ arguments (own; with **kwargs, + those passed on to the base):")
    classes = {name: (n, kwargs, bases, f.name) for f in sorted((PACKAGE / "modules").glob("*.py"))
               for name, n, kwargs, bases in module_arguments(f)}

    def total(name: str) -> int:
        n, kwargs, bases, _ = classes[name]
        inherited = [b for b in bases if b in classes]
        return n + (total(inherited[0]) if kwargs and inherited else 0)

    for name, (n, kwargs, bases, file) in classes.items():
        inherited = [b for b in bases if b in classes]
        passed = f" + {total(inherited[0])} of {inherited[0]} = {total(name)}" if kwargs and inherited else ""
        print(f"  {n:5d}  {name} ({file}){passed}")
    graph = {}
    for f in files:
        rel = f.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        graph[name] = imports_of(f)
    circles = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps
                      if a != b and a in graph.get(b, set())})
    print(f"\nimport circles between two modules: {len(circles)}")
    for a, b in circles:
        print(f"  {a} <-> {b}")
    configs = PACKAGE / "configs"
    pairs = sorted((configs / "pairs").glob("*.yaml")) if (configs / "pairs").is_dir() else []
    old = sorted((REPO / "experiments").glob("*2*/*.yaml"))
    if pairs:
        sizes = ", ".join(f"{p.stem} {code_lines(p)}" for p in pairs)
        print(f"\nconfig lines a new pair needs: one pair file ({sizes} lines, comments included)")
    elif old:
        by_pair = {}
        for p in old:
            by_pair.setdefault(p.parent.name, 0)
            by_pair[p.parent.name] += code_lines(p)
        print(f"\nconfig lines a new pair needs: a copy of every stage config "
              f"({', '.join(f'{k} {v}' for k, v in by_pair.items())} lines)")


if __name__ == "__main__":
    main()
