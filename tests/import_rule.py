"""The import rule of docs/architecture.md as code: which layer each module belongs to, which layers each
layer may import, and the reader that finds what every module imports.

Two users: tests/test_architecture.py checks the rule on the source tree, and docs/layers.py draws the
picture of the layers from the same reading.

What counts as an import: every `import` and `from ... import` statement in a module, wherever it stands
(inside a function, under `if TYPE_CHECKING:`), relative ones resolved against the module's package. It
points at the module it names: `from .engine import flow` at streamvideo.engine.flow, `from .presets import
load` at streamvideo.engine.presets. Python also runs the parent packages' __init__ first; those are not
counted, or every module would depend on the facade. Modules imported by name at run time (the CLI's
command table, Gymnasium entry points, the bridge's lazy names) are not read either.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# import name -> folder, as pyproject.toml's package-dir maps them
PACKAGE_DIRS = {"streamvideo": "sdk", "streamvideo.envs": "envs", "streamvideo.bridge": "bridge"}
NOT_PYTHON = ("unity",)  # folders under the package dirs that hold no Python (the Unity client)


@dataclass(frozen=True)
class Layer:
    name: str
    package: str                  # its modules: this one and every module under it (only itself if alone)
    folder: str                   # where they live
    may_import: tuple[str, ...]   # the other layers its modules may import
    alone: bool = False           # the layer is the one module `package`, not the modules under it


# Lowest first. A module belongs to the layer with the longest matching package.
LAYERS = (
    Layer("engine", "streamvideo.engine", "sdk/engine/", ()),
    Layer("game", "streamvideo.envs.game", "envs/game/", ()),
    Layer("data", "streamvideo.data", "sdk/data/", ("game",)),
    Layer("train", "streamvideo.train", "sdk/train/", ("engine", "data")),
    Layer("evaluation", "streamvideo.evaluation", "sdk/evaluation/", ("engine", "data", "game")),
    Layer("envs", "streamvideo.envs", "envs/", ("engine", "game")),
    Layer("bridge", "streamvideo.bridge", "bridge/", ("engine", "envs")),
    Layer("apps", "streamvideo.apps", "sdk/apps/", ("engine", "game", "data", "train", "evaluation", "envs", "bridge")),
    Layer("facade", "streamvideo", "sdk/__init__.py", ("engine", "envs"), alone=True),
)


def find_modules(root: Path = REPO, package_dirs: dict[str, str] = PACKAGE_DIRS) -> dict[str, Path]:
    """Every module of the package under root: dotted name -> file (a package is its __init__.py)."""
    found = {}
    for package, folder in package_dirs.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            if any(part in NOT_PYTHON for part in parts):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The modules of `modules` that the module `name` (its source at `path`) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(_known(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(_known(f"{source}.{alias.name}", modules) or _known(source, modules))
    found.discard(None)
    return found


def _known(dotted: str, modules: set[str]) -> str | None:
    """The longest module of `modules` that `dotted` names or lies inside (None: not one of ours)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def import_graph(root: Path = REPO, package_dirs: dict[str, str] = PACKAGE_DIRS) -> dict[str, set[str]]:
    """module -> the modules of the package it imports."""
    modules = find_modules(root, package_dirs)
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def layer_of(module: str) -> Layer | None:
    matches = [layer for layer in LAYERS if module == layer.package
               or (not layer.alone and module.startswith(layer.package + "."))]
    return max(matches, key=lambda layer: len(layer.package), default=None)


def rule_breaks(graph: dict[str, set[str]]) -> list[str]:
    """Every module in no layer, and every import its layer may not make, one line each."""
    breaks = [f"{module} is in no layer" for module in sorted(graph) if layer_of(module) is None]
    for module in sorted(graph):
        source = layer_of(module)
        for target in sorted(graph[module]):
            to = layer_of(target)
            if source and to and to.name != source.name and to.name not in source.may_import:
                breaks.append(f"{module} ({source.name}) imports {target} ({to.name}): {source.name} may import "
                              f"{', '.join(source.may_import) or 'no other layer'}")
    return breaks


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The circles: each set of modules that reach each other through imports (Tarjan's strongly connected
    components of two or more modules, or one that imports itself), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1 or module in graph.get(module, ()):
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(cycles)


def layer_edges(graph: dict[str, set[str]]) -> dict[tuple[str, str], int]:
    """(importing layer, imported layer) -> how many module imports cross from one to the other."""
    edges: dict[tuple[str, str], int] = {}
    for module, targets in graph.items():
        for target in targets:
            source, to = layer_of(module), layer_of(target)
            if source and to and source.name != to.name:
                edges[source.name, to.name] = edges.get((source.name, to.name), 0) + 1
    return edges
