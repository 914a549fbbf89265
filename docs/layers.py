"""Draw docs/images/layers.png, the picture that opens docs/architecture.md: one box per layer (its folder and
modules), one arrow per pair of layers that import each other, labelled with how many module imports cross.

    python docs/layers.py            # after moving modules or imports; the picture is read from the code

The layers, what each may import and the reading of the imports are tests/import_rule.py's, the same the
import-rule test checks. The boxes are placed by hand (PLACES); the
arrows and their numbers are read from the code.
"""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from import_rule import LAYERS, REPO, find_modules, import_graph, layer_edges, layer_of  # noqa: E402

OUT = REPO / "docs/images/layers.png"
# where each layer's box goes: (row, left, right); row 0 at the bottom. Placed by hand so that every arrow
# finds a way between the boxes; a new layer needs a place here.
PLACES = {
    "engine": (0, 0.3, 12.6), "game": (0, 13.0, 15.7),
    "data": (1, 8.4, 10.8), "envs": (1, 13.0, 15.7),
    "train": (2, 3.4, 6.6), "evaluation": (2, 7.0, 10.3), "bridge": (2, 11.6, 14.2),
    "apps": (3, 0.3, 6.0), "facade": (3, 11.0, 15.7),
}
COLOURS = {"engine": "#d7e8f7", "game": "#e6f2da", "data": "#e6f2da", "train": "#fbe5cc", "evaluation": "#fbe5cc",
           "envs": "#eadcf2", "bridge": "#eadcf2", "apps": "#f6d6d6", "facade": "#eeeeee"}
WIDTH, ROW_HEIGHT, BOX_HEIGHT = 16.0, 2.4, 1.6
MARGIN = 0.15   # an arrow passes at least this far from a box it does not start or end at
CHARS_PER_UNIT = 13   # module names per unit of box width (8.5 pt monospace)


def box(name: str) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of a layer's box."""
    row, left, right = PLACES[name]
    bottom = 0.3 + row * ROW_HEIGHT
    return left, bottom, right, bottom + BOX_HEIGHT


def module_list(layer, modules: list[str]) -> str:
    """The layer's modules as file names, a subpackage once with a slash (codecs/)."""
    if layer.alone:
        return "load  StreamGenerator  ActionSpec  StepSchedule  Chunk  preset_names; registers the envs"
    names = []
    for module in modules:
        rest = module[len(layer.package) + 1:].split(".")
        name = rest[0] + ("/" if len(rest) > 1 or (REPO / layer.folder / rest[0]).is_dir() else "")
        if rest[0] and name not in names:
            names.append(name)
    return "  ".join(names)


def arrow_ends(source: str, target: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """A straight way down from the source's box to the target's: a vertical one where the boxes share an x
    that no box between them covers (nearest the middle of what they share), else corner to corner."""
    sl, sb, sr, _ = box(source)
    tl, _, tr, tt = box(target)
    between = [box(name) for name in PLACES if PLACES[target][0] < PLACES[name][0] < PLACES[source][0]]
    low, high = max(sl, tl) + 0.3, min(sr, tr) - 0.3
    xs = [low + (high - low) * i / 40 for i in range(41)]
    free = [x for x in xs if not any(left - MARGIN <= x <= right + MARGIN for left, _, right, _ in between)]
    if high > low and free:
        x = min(free, key=lambda x: abs(x - (low + high) / 2))
        return (x, sb), (x, tt)
    if tl > sr:
        return (sr - 0.4, sb), (tl + 0.4, tt)
    return (sl + 0.4, sb), (tr - 0.4, tt)


def label_place(start, end, others) -> tuple[float, float]:
    """A point of the arrow for its number, away from where other arrows pass (nearest the middle)."""
    def distance(point, segment) -> float:
        (ax_, ay), (bx, by) = segment
        dx, dy = bx - ax_, by - ay
        t = max(0.0, min(1.0, ((point[0] - ax_) * dx + (point[1] - ay) * dy) / (dx * dx + dy * dy)))
        return math.hypot(point[0] - ax_ - t * dx, point[1] - ay - t * dy)

    points = [(start[0] + f * (end[0] - start[0]), start[1] + f * (end[1] - start[1]))
              for f in (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8)]
    return max(points, key=lambda point: min([distance(point, other) for other in others] + [0.5]))


def draw() -> None:
    graph = import_graph()
    modules = sorted(find_modules())
    edges = layer_edges(graph)
    missing = {layer.name for layer in LAYERS} - set(PLACES)
    if missing:
        raise SystemExit(f"docs/layers.py: place the layers {sorted(missing)} in PLACES")
    rows = 1 + max(row for row, _, _ in PLACES.values())
    fig, ax = plt.subplots(figsize=(WIDTH, ROW_HEIGHT * rows * 0.92 + 0.5), dpi=110)
    for layer in LAYERS:
        left, bottom, right, top = box(layer.name)
        ax.add_patch(FancyBboxPatch((left, bottom), right - left, top - bottom, zorder=2,
                                    boxstyle="round,pad=0.02,rounding_size=0.12",
                                    facecolor=COLOURS.get(layer.name, "#eeeeee"), edgecolor="#555555"))
        ax.text(left + 0.15, top - 0.2, layer.name, fontsize=13, fontweight="bold", va="top", zorder=3)
        ax.text(right - 0.15, top - 0.24, layer.folder, fontsize=9.5, family="monospace", va="top", ha="right",
                color="#333333", zorder=3)
        listing = module_list(layer, [m for m in modules if layer_of(m) is layer])
        lines = textwrap.wrap(listing, int((right - left - 0.3) * CHARS_PER_UNIT))
        ax.text(left + 0.15, top - 0.62, "\n".join(lines), fontsize=8.5, family="monospace", va="top",
                color="#333333", zorder=3, linespacing=1.3)
    arrows = {edge: arrow_ends(*edge) for edge in sorted(edges)}
    for edge, (start, end) in arrows.items():
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=16, linewidth=1.3,
                                     color="#444444", shrinkA=1, shrinkB=1, zorder=1))
        others = [ends for other, ends in arrows.items() if other != edge]
        ax.text(*label_place(start, end, others), str(edges[edge]), fontsize=8.5, ha="center", va="center",
                zorder=4, bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="#888888"))
    ax.set_xlim(0, WIDTH)
    ax.set_ylim(0, 0.3 + rows * ROW_HEIGHT - (ROW_HEIGHT - BOX_HEIGHT) + 0.3)
    ax.axis("off")
    ax.set_title("The layers of streamvideo: an arrow imports the layer it points at, its number counts the "
                 "module imports that cross it.\nThe import rule (docs/architecture.md) allows no other arrows and no "
                 "circles; tests/test_architecture.py checks it. Drawn from the code by docs/layers.py.",
                 fontsize=11.5, loc="left")
    fig.tight_layout()
    fig.savefig(OUT)
    print(f"wrote {OUT.relative_to(REPO)}: {len(LAYERS)} layers, {len(edges)} arrows, {len(modules)} modules")


if __name__ == "__main__":
    draw()
