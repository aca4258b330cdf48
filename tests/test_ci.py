"""CI's legs (.ci/run). Leg 2 (Python 3.12, every extra) leaves out the tests marked
``one_python``, which leg 1 runs: none of them may touch what differs on 3.12, an extra
(textual-image, nvidia-ml-py, tensorboard) or the UI (Textual, the app's test helpers)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: What a one_python test may not import: the extras, and the layers that use them or Textual.
DIFFERS = ("textual", "textual_image", "pynvml", "tensorboard", "tui_gan.tui", "tui_gan.exports", "tui_gan.browser",
           "tui_gan.engine.gpu_monitor", "tui_gan.bench.app_cost", ".app_support")
#: The fixtures that run the app.
APP_FIXTURES = {"attached_app", "serve"}


def _imports(node: ast.AST) -> set[str]:
    names = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Import):
            names.update(alias.name for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            names.add("." * child.level + (child.module or ""))
    return names


def _marked(node: ast.AST) -> bool:
    return "one_python" in ast.unparse(node).lower()


def one_python_reaches(source: str) -> list[str]:
    """What the one_python tests in ``source`` import, or take as fixtures, of what differs on 3.12."""
    tree = ast.parse(source)
    whole = any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
                and _marked(n.value) for n in tree.body)
    found = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.name.startswith("test"):
            continue
        if not (whole or any(_marked(d) for d in node.decorator_list)):
            continue
        modules = _imports(node) | (_imports(tree) if whole else set())
        found += [f"{node.name}: imports {m}" for m in sorted(modules)
                  if any(m == d or m.startswith(d + ".") for d in DIFFERS)]
        found += [f"{node.name}: uses the {a.arg} fixture" for a in node.args.args if a.arg in APP_FIXTURES]
    return found


def test_no_test_leg_2_leaves_out_touches_what_differs_there():
    reached = {path.name: one_python_reaches(path.read_text(encoding="utf-8"))
               for path in sorted((ROOT / "tests").glob("test_*.py"))}
    assert {name: found for name, found in reached.items() if found} == {}


def test_the_check_sees_an_extra_a_ui_module_and_the_app():
    marked_module = "import pytest\nimport tensorboard\npytestmark = pytest.mark.one_python\ndef test_a(): pass\n"
    assert one_python_reaches(marked_module) == ["test_a: imports tensorboard"]
    marked_test = ("import pytest\n@pytest.mark.one_python\nasync def test_b(attached_app):\n"
                   "    from tui_gan.tui.app import TuiGanApp\n"
                   "def test_c():\n    import textual_image\n")  # not marked: leg 2 runs it
    assert one_python_reaches(marked_test) == ["test_b: imports tui_gan.tui.app", "test_b: uses the attached_app fixture"]


def test_leg_2_leaves_out_the_one_python_tests_and_leg_1_runs_them():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    leg1, rest = script.split("# Leg 2 ", 1)
    leg2 = rest.split("# Leg 3 ", 1)[0]
    assert "python3 -m pytest -q\n" in leg1 and "one_python" not in leg1.split("set -euo pipefail")[1]
    assert '"$venv/bin/python" -m pytest -q -m "not one_python"' in leg2
