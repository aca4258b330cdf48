"""Import hygiene: the engine never imports Textual; the CLI's fast path never imports torch."""

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_engine_imports_no_textual():
    mods = _modules_after(
        "import tui_gan.engine, tui_gan.headless, tui_gan.checkpoint, tui_gan.data, tui_gan.metrics, "
        "tui_gan.models, tui_gan.config, tui_gan.sampling, tui_gan.events"
    )
    assert "torch" in mods
    assert not any(m == "textual" or m.startswith("textual.") for m in mods)


def test_engine_modules_do_not_mention_textual():
    import pathlib

    import tui_gan

    root = pathlib.Path(tui_gan.__file__).parent
    for name in ("engine", "headless", "checkpoint", "data", "builtin", "imagefiles", "metrics", "models",
                 "config", "sampling", "events", "devices", "images", "atomic", "errors", "cpulayers", "winograd"):
        assert "textual" not in (root / f"{name}.py").read_text(), name


def test_cli_fast_path_imports_no_torch():
    mods = _modules_after("import tui_gan.cli, tui_gan.config, tui_gan.imagefiles, tui_gan.events")
    assert "torch" not in mods
