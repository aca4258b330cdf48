"""The architecture's rules, checked on the source (see docs/design.md, "Rules the tests enforce").

Imports are read from the AST of every module (at any depth, lazy ones included; those
under ``if TYPE_CHECKING:`` only name types and are left out), resolved to module names.
Private names (``_name``) are read from the same ASTs: a module uses its own and no other's.
"""

from __future__ import annotations

import ast
import collections
import subprocess
import sys
from pathlib import Path

import pytest

import tui_gan

PACKAGE_ROOT = Path(tui_gan.__file__).parent
SERVICE_PROCESS = ("tui_gan.service.main", "tui_gan.service.training", "tui_gan.service.__main__")
"""The service's own process: it runs the engine (imported when it trains) and writes the
TensorBoard files; the rest of service/ is what viewers use too, and stands on the core."""
MAX_CLASS_LINES = 300
MAX_MODULE_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_module(package: str, node: ast.ImportFrom) -> str:
    """The absolute name of the module a ``from ... import`` in ``package`` names."""
    if not node.level:
        return node.module or ""
    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules ``name`` imports: ``from . import x`` counts as module ``pkg.x`` when that
    is one of ``known``, else as ``pkg``."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = imported_module(package, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def import_graph(root: Path = PACKAGE_ROOT) -> dict[str, set[str]]:
    files = {module_name(p): p for p in root.rglob("*.py")}
    known = set(files)
    return {name: imports_of(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", known)
            for name, path in files.items()}


def in_layer(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that breaks a layer rule, as 'importer -> imported: rule'."""
    out = []
    for importer, imported in sorted(graph.items()):
        for target in sorted(imported):
            def bad(rule: str) -> None:
                out.append(f"{importer} -> {target}: {rule}")  # noqa: B023 - used at once
            ui_library = any(in_layer(target, ui) for ui in ("textual", "rich", "textual_plotext", "textual_image"))
            if ui_library and not in_layer(importer, "tui_gan.tui"):
                bad("only tui_gan.tui may import textual, rich or textual-image")
            if in_layer(importer, "tui_gan.tui") and (in_layer(target, "torch") or in_layer(target, "torchvision")):
                bad("the UI never imports torch")
            if in_layer(importer, "tui_gan.tui") and in_layer(target, "tui_gan") and not any(
                    in_layer(target, ok) for ok in ("tui_gan.tui", "tui_gan.core", "tui_gan.pictures")) \
                    and target != "tui_gan":
                bad("the UI imports only the core, pictures and itself (the rest loads torch)")
            for torch_free in ("tui_gan.core", "tui_gan.pictures"):
                if in_layer(importer, torch_free) and (in_layer(target, "torch") or in_layer(target, "torchvision")):
                    bad(f"{torch_free} imports no torch")
                if in_layer(importer, torch_free) and in_layer(target, "tui_gan") and not (
                        in_layer(target, "tui_gan.core") or in_layer(target, torch_free) or target == "tui_gan"):
                    bad(f"{torch_free} stands on the core alone")
            if in_layer(importer, "tui_gan.exports") and (
                    in_layer(target, "torch") or in_layer(target, "torchvision") or (in_layer(target, "tui_gan") and not any(
                        in_layer(target, ok) for ok in ("tui_gan.core", "tui_gan.pictures", "tui_gan.exports"))
                        and target != "tui_gan")):
                bad("tui_gan.exports imports no torch and stands on the core and pictures alone")
            if in_layer(importer, "tui_gan.data") and any(
                    in_layer(target, layer) for layer in ("tui_gan.engine", "tui_gan.speed", "tui_gan.tui", "tui_gan.bench")):
                bad("data does not import the engine, speed layers, UI or benchmark")
            if in_layer(target, "tui_gan.speed") and not (
                    in_layer(importer, "tui_gan.speed") or importer == "tui_gan.engine.gan"):
                bad("only the GAN step (tui_gan.engine.gan) applies the speed layers")
            if in_layer(importer, "tui_gan.engine") and any(in_layer(target, layer) for layer in (
                    "tui_gan.tui", "tui_gan.bench", "tui_gan.cli", "tui_gan.commands", "tui_gan.service",
                    "tui_gan.launch", "tui_gan.exports", "tui_gan.browser")):
                bad("the engine does not import its viewers")
            web_server = in_layer(target, "textual_serve") or in_layer(target, "aiohttp")
            if web_server and not in_layer(importer, "tui_gan.browser"):
                bad("only tui_gan.browser runs a web server (textual-serve, aiohttp: the serve extra)")
            if in_layer(importer, "tui_gan.browser") and (ui_library or any(in_layer(target, layer) for layer in (
                    "torch", "torchvision", "tui_gan.tui", "tui_gan.engine", "tui_gan.data", "tui_gan.launch",
                    *SERVICE_PROCESS))):
                bad("the browser view runs each tab's app in a process of its own: no Textual, no torch here")
            if in_layer(importer, "tui_gan.commands") and (in_layer(target, "torch") or in_layer(target, "torchvision")):
                bad("the commands import no torch themselves (what a command runs imports it, when it runs)")
            if in_layer(importer, "tui_gan.service") and importer not in SERVICE_PROCESS and (
                    in_layer(target, "torch") or in_layer(target, "torchvision") or (in_layer(target, "tui_gan") and not (
                        in_layer(target, "tui_gan.core") or in_layer(target, "tui_gan.service") or target == "tui_gan"))):
                bad("the service's protocol, hub and client stand on the core alone (no torch, no engine)")
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), and self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


NAMEDTUPLE_API = {name for name in dir(collections.namedtuple("T", "a")) if name.startswith("_") and not name.startswith("__")}
"""``_fields``, ``_replace``...: a named tuple's public interface, underscore and all."""


def is_private(name: str) -> bool:
    """One leading underscore (or two without trailing ones): not a dunder, not NAMEDTUPLE_API."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__")) and name not in NAMEDTUPLE_API


def private_names(tree: ast.AST) -> set[str]:
    """The private names a module defines: functions, classes and methods, module and class
    level assignments, and attributes assigned on ``self`` or ``cls``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        names.add(leaf.id)
                    elif isinstance(leaf, ast.Attribute) and isinstance(leaf.value, ast.Name) and \
                            leaf.value.id in ("self", "cls"):
                        names.add(leaf.attr)
    return {name for name in names if is_private(name)}


def _own(value: ast.expr) -> bool:
    """``self``, ``cls`` or ``super()``: the object's own private names are its business."""
    return (isinstance(value, ast.Name) and value.id in ("self", "cls")) or (
        isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super")


def private_reaches(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """Every use of another tui_gan module's private name, as 'module:line: what', in
    ``sources`` (module name -> (source, is_package)): ``x._name`` where ``x`` is not the
    object itself and ``_name`` is defined in another tui_gan module but not in this one,
    and ``from ... import _name`` from another tui_gan module. A third party's private names
    (``os._exit``, a namedtuple's ``_fields``) are defined in no tui_gan module: not flagged."""
    trees = {name: ast.parse(source) for name, (source, _) in sources.items()}
    defined = {name: private_names(tree) for name, tree in trees.items()}
    out = []
    for name, tree in sorted(trees.items()):
        elsewhere = set().union(*(names for other, names in defined.items() if other != name))
        package = name if sources[name][1] else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and is_private(node.attr) and not _own(node.value) \
                    and node.attr in elsewhere and node.attr not in defined[name]:
                out.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.ImportFrom):
                target = imported_module(package, node)
                if in_layer(target, "tui_gan") and target != name:
                    out += [f"{name}:{node.lineno}: from {target} import {alias.name}"
                            for alias in node.names if is_private(alias.name)]
    return out


def package_sources(root: Path = PACKAGE_ROOT) -> dict[str, tuple[str, bool]]:
    return {module_name(p): (p.read_text(encoding="utf-8"), p.name == "__init__.py") for p in root.rglob("*.py")}


# ----------------------------------------------------------------------------- the rules


def test_every_layer_imports_only_what_it_may():
    assert violations(import_graph()) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_no_module_reaches_into_another_modules_private_names():
    """A module uses another's public names only: what it needs of another is that one's
    interface, so each can change inside without breaking the other."""
    assert private_reaches(package_sources()) == []


def test_importing_the_app_leaves_torch_out():
    code = ("import sys, tui_gan.tui.app, tui_gan.cli, tui_gan.core.report, tui_gan.launch, "
            "tui_gan.commands.app, tui_gan.commands.runs, tui_gan.commands.train, tui_gan.commands.outputs, "
            "tui_gan.commands.bench, tui_gan.service.main, tui_gan.service.start, "
            "tui_gan.exports.tensorboard_live, "
            "tui_gan.service.client, tui_gan.service.hub, tui_gan.browser.command, tui_gan.browser.server, "
            "tui_gan.tui.served; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_engine_runs_without_textual():
    code = ("import sys, tui_gan.engine.engine, tui_gan.service.main, tui_gan.bench.compare, tui_gan.engine.sampling; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_browser_view_loads_no_ui_library():
    """`tui-gan serve` relays its tabs' apps; Textual and rich load in those, not in it."""
    code = ("import sys, tui_gan.cli, tui_gan.browser.command, tui_gan.browser.server; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'textual', 'rich', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_event_has_a_line_in_the_report():
    from tui_gan.core import events as ev
    from tui_gan.core.report import Report

    report = Report()
    missing = [cls.__name__ for cls in event_classes(ev) if not report.handles(cls)]
    assert missing == []


def event_classes(module) -> list[type]:
    return [obj for obj in vars(module).values()
            if isinstance(obj, type) and obj.__module__ == module.__name__ and hasattr(obj, "__dataclass_fields__")]


@pytest.mark.parametrize("path", sorted(PACKAGE_ROOT.rglob("*.py")), ids=lambda p: module_name(p))
def test_sizes(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_MODULE_LINES, f"{len(lines)} lines"
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.ClassDef):
            assert node.end_lineno - node.lineno + 1 <= MAX_CLASS_LINES, node.name


# ----------------------------------------------------------------------------- the checker itself


@pytest.mark.parametrize(("module", "source", "rule"), [
    ("tui_gan.engine.gan", "import textual\n", "only tui_gan.tui may import textual"),
    ("tui_gan.commands.runs", "from textual_image.widget import Image\n", "only tui_gan.tui may import textual"),
    ("tui_gan.commands.flags", "import torch\n", "the commands import no torch"),
    ("tui_gan.service.start", "from ..engine.engine import Engine\n", "the service's protocol, hub and client"),
    ("tui_gan.browser.command", "from ..service.main import main\n", "the browser view runs each tab's app"),
    ("tui_gan.engine.engine", "from ..commands import flags\n", "the engine does not import its viewers"),
    ("tui_gan.tui.widgets.samples", "def f():\n    import torch\n", "the UI never imports torch"),
    ("tui_gan.tui.app", "from ..engine.engine import Engine\n", "the UI imports only the core"),
    ("tui_gan.data.loader", "from ..engine import models\n", "data does not import the engine"),
    ("tui_gan.engine.engine", "from .. import speed\n", "only the GAN step"),
    ("tui_gan.core.config", "import torch\n", "tui_gan.core imports no torch"),
    ("tui_gan.service.hub", "from ..engine.engine import Engine\n", "the service's protocol, hub and client"),
    ("tui_gan.engine.engine", "from ..service import hub\n", "the engine does not import its viewers"),
    ("tui_gan.exports.tensorboard", "import torch\n", "tui_gan.exports imports no torch"),
    ("tui_gan.exports.tbevents", "from ..engine import metrics\n", "stands on the core and pictures alone"),
    ("tui_gan.engine.engine", "from ..exports import tensorboard\n", "the engine does not import its viewers"),
    ("tui_gan.commands.runs", "import textual_serve\n", "only tui_gan.browser runs a web server"),
    ("tui_gan.browser.server", "from ..tui.app import TuiGanApp\n", "the browser view runs each tab's app"),
])
def test_the_rules_catch_a_forbidden_import(module: str, source: str, rule: str):
    """A forbidden import added to a real module is reported (the rules are not vacuous)."""
    graph = import_graph()
    is_package = (PACKAGE_ROOT.parent / module.replace(".", "/") / "__init__.py").exists()
    graph[module] = graph[module] | imports_of(source, module, is_package, set(graph))
    assert any(rule in v for v in violations(graph))


def test_the_cycle_check_catches_a_cycle():
    graph = import_graph()
    graph["tui_gan.core.config"] = graph["tui_gan.core.config"] | {"tui_gan.core.report"}
    graph["tui_gan.core.report"] = graph["tui_gan.core.report"] | {"tui_gan.core.config"}
    assert ["tui_gan.core.config", "tui_gan.core.report"] in cycles(graph)


def test_type_checking_imports_are_not_dependencies():
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .engine import Engine\n"
    assert imports_of(source, "tui_gan.engine.setup", False, {"tui_gan.engine.engine"}) == {"typing"}


@pytest.mark.parametrize(("source", "flagged"), [
    ("def f(engine):\n    return engine._reason_to_end()\n", ["engine._reason_to_end"]),
    ("class A:\n    def f(self):\n        return self.gan._d_forward\n", ["self.gan._d_forward"]),
    ("from .quality import _binomial\n", ["from tui_gan.engine.quality import _binomial"]),
    ("from tui_gan.engine import quality\nquality._up(1, 2)\n", ["quality._up"]),
    ("import os\nos._exit(0)\n", []),  # a third party's private name
    ("import torch\ntorch._foreach_lerp_([], [], 0.5)\n", []),
    ("from tui_gan.core.history import HistoryRow\nHistoryRow._fields\n", []),  # a named tuple's API
    ("class A:\n    def f(self):\n        return self._rows, super()._rows\n", []),  # its own
    ("_rows = 1\ndef f(x):\n    return x._rows\n", []),  # a name this module defines too
])
def test_the_private_rule_catches_a_reach_into_another_module(source: str, flagged: list[str]):
    sources = package_sources()
    sources["tui_gan.engine.probe"] = (source, False)
    found = [v.split(": ", 1)[1] for v in private_reaches(sources) if v.startswith("tui_gan.engine.probe:")]
    assert found == flagged
