"""The import rule of docs/architecture.md holds on the source tree: every module is in a layer, each layer
imports only the layers its row names, nothing imports the facade, and no modules import each other in a
circle. The checker is shown to fail too: on the real tree with one upward import added, and on a small
tree with an upward import and a circle."""

import re
import shutil

import pytest
from import_rule import (
    LAYERS,
    PACKAGE_DIRS,
    REPO,
    import_cycles,
    import_graph,
    layer_of,
    rule_breaks,
)


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_reader_finds_every_module_and_its_imports(graph):
    assert len(graph) == len(list(REPO.glob("sdk/**/*.py")) + list(REPO.glob("envs/**/*.py"))
                             + list(REPO.glob("bridge/*.py")))
    assert "streamvideo.engine.rope" in graph["streamvideo.engine.model"]                 # from .rope import ...
    assert "streamvideo.engine.flow" in graph["streamvideo.train.teacher"]                # from ..engine import flow
    assert "streamvideo.engine.presets" in graph["streamvideo.apps.play"]                 # inside a function
    assert "streamvideo.evaluation.agnostic" in graph["streamvideo.evaluation.report"]    # under TYPE_CHECKING
    assert "streamvideo.envs.stream_env" in graph["streamvideo.bridge.remote_env"]        # absolute
    assert graph["streamvideo.engine.rope"] == set()


def test_every_module_is_in_a_layer_and_imports_only_what_its_layer_may(graph):
    assert rule_breaks(graph) == []


def test_no_module_imports_the_facade(graph):
    assert [module for module, targets in graph.items() if "streamvideo" in targets] == []


def test_no_import_circles(graph):
    assert import_cycles(graph) == []


def test_the_rule_keeps_the_layers_in_order():
    """The table itself: the engine and the game import no other layer, training and evaluation only those
    below them, nothing the apps or the facade, and no layers may import each other in a circle."""
    may = {layer.name: set(layer.may_import) for layer in LAYERS}
    assert may["engine"] == may["game"] == set()
    assert may["train"] | may["evaluation"] <= {"engine", "data", "game"}
    assert not any({"apps", "facade"} & layers for layers in may.values())
    assert import_cycles(may) == []


def test_an_upward_import_added_to_the_real_tree_is_reported(tmp_path):
    for folder in PACKAGE_DIRS.values():
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("unity", "weights", "*.pyc"))
    model = tmp_path / "sdk/engine/model.py"
    model.write_text(model.read_text() + "\n\ndef _play():\n    from ..apps import play\n")
    assert rule_breaks(import_graph(tmp_path)) == [
        "streamvideo.engine.model (engine) imports streamvideo.apps.play (apps): engine may import no other layer"]


def test_an_upward_import_and_a_circle_are_reported(tmp_path):
    files = {
        "sdk/__init__.py": "from .engine.model import Model\n",
        "sdk/engine/__init__.py": "",
        "sdk/engine/model.py": "import streamvideo.train.loop\n\nclass Model: ...\n",       # upward
        "sdk/train/__init__.py": "",
        "sdk/train/loop.py": "from .. import engine\nfrom . import steps\n",                  # loop -> steps
        "sdk/train/steps.py": "def step():\n    from .loop import run\n",                      # steps -> loop
        "sdk/tools.py": "",                                                                     # in no layer
        "envs/__init__.py": "import streamvideo\n",                                             # the facade
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    assert rule_breaks(graph) == [
        "streamvideo.tools is in no layer",
        "streamvideo.engine.model (engine) imports streamvideo.train.loop (train): engine may import no other layer",
        "streamvideo.envs (envs) imports streamvideo (facade): envs may import engine, game",
    ]
    assert import_cycles(graph) == [["streamvideo.train.loop", "streamvideo.train.steps"]]


def test_the_documented_rule_is_the_checked_one():
    """docs/architecture.md's table: one row per layer, `| name | `folder` | holds | may import |`."""
    text = (REPO / "docs/architecture.md").read_text()
    rows = {m["name"]: (m["folder"], m["may"]) for m in re.finditer(
        r"^\| (?P<name>\w+) \| `(?P<folder>[^`]+)` \| [^|]+ \| (?P<may>[^|]+) \|$", text, re.MULTILINE)}
    assert rows == {layer.name: (layer.folder, ", ".join(layer.may_import) or "—") for layer in LAYERS}


def test_every_layer_holds_modules(graph):
    """No row of the table outlives its folder."""
    assert {layer_of(module).name for module in graph if layer_of(module)} == {layer.name for layer in LAYERS}
