"""The quality metric (SWD on Laplacian-pyramid patches, diversity) and its place in a run."""

from __future__ import annotations

import csv
import io
import math

import pytest
import torch

from tui_gan.core import events as ev
from tui_gan.data.builtin import make_builtin
from tui_gan.engine.quality import RealReference, _binomial, _up, laplacian_pyramid, mean_pairwise_distance

from .conftest import EXPLICIT, EngineThread, tiny_config

# What these check is the metric's maths and a run's measurements: torch's, the same on every
# Python: CI runs them on one (.ci/run).
pytestmark = pytest.mark.one_python

#: small enough for a test, large enough to learn the glyphs' shapes within seconds
LEARNING = dict(image_size=16, ngf=32, ndf=16, nz=64, batch_size=16, max_images=1024, lr_g=5e-4, lr_d=5e-4,
                quality_images=256)


def _glyphs(n: int, seed: int, size: int = 32) -> torch.Tensor:
    return torch.from_numpy(make_builtin(n, size, seed, 3))


def test_the_laplacian_pyramid_reconstructs_the_image():
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    levels = laplacian_pyramid(images)
    assert [lv.shape[-1] for lv in levels] == [64, 32, 16]
    kernel = _binomial(3, images.device)
    current = levels[-1]
    for lap in reversed(levels[:-1]):
        current = _up(current, kernel) + lap
    assert torch.allclose(current, images, atol=1e-5)


def test_swd_is_about_zero_for_real_against_real_and_large_for_noise():
    reference = RealReference(_glyphs(256, seed=1))
    same = reference.compare(_glyphs(256, seed=2))  # other images of the same distribution
    noise = reference.compare(torch.rand(256, 3, 32, 32) * 2 - 1)
    flat = reference.compare(torch.zeros(256, 3, 32, 32).uniform_(-0.1, 0.1))
    assert len(same.swd_levels) == 2  # 32 and 16
    # (at 256 images the built-in set scores 28 against itself and 166 for noise)
    assert same.swd < 0.2 * noise.swd and same.swd < 0.2 * flat.swd
    assert 0.8 < same.diversity < 1.25


def test_diversity_falls_to_zero_for_a_collapsed_generator():
    real = _glyphs(128, seed=3)
    one = real[:1].expand(128, -1, -1, -1)
    reference = RealReference(real)
    assert reference.compare(one).diversity < 0.01
    assert math.isnan(mean_pairwise_distance(real[:1]))


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """A 3-epoch headless run that learns, measured at its start and each epoch's end: its
    engine, every event and what it printed. Trained once (it takes seconds) for the tests
    that read it; they write nothing into it."""
    from tui_gan.engine.engine import Engine
    from tui_gan.service.printer import Printer
    from tui_gan.service.training import run_headless

    root = tmp_path_factory.mktemp("learned")
    engine = Engine(tiny_config(epochs=3, **LEARNING), root / "run", explicit=EXPLICIT)
    out, events, original = io.StringIO(), [], engine.run

    def recording():
        for e in original():
            events.append(e)
            yield e

    engine.run = recording
    with pytest.MonkeyPatch.context() as mp:  # module-scoped: conftest's per-test cache folder is not set yet
        mp.setenv("TUI_GAN_CACHE_DIR", str(root / "cache"))
        assert run_headless(engine, Printer([out], log_every=60)) == 0
    return engine, events, out.getvalue()


def test_quality_is_measured_each_epoch_falls_with_training_and_is_logged(learned):
    engine, events, out = learned
    quality = [e for e in events if isinstance(e, ev.Quality)]
    assert [(q.step, q.epoch) for q in quality] == [(0, 0), (64, 1), (128, 2), (192, 3)]  # start, epochs
    assert quality[-1].swd < 0.8 * quality[0].swd, [round(q.swd, 1) for q in quality]
    assert quality[-1].diversity > quality[0].diversity  # the untrained generator's outputs are all alike
    assert "quality at step 64: SWD" in out
    with open(engine.run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    measured = [r for r in rows if r["swd"] != "nan"]
    assert len(measured) == 4 and float(measured[0]["swd"]) > 0 and measured[0]["loss_d"] == "nan"
    assert all(r["swd"] == "nan" for r in rows if r["loss_d"] != "nan")


def test_measure_on_request(make_engine, engine_thread):
    engine = make_engine(epochs=50, quality_images=64)
    t: EngineThread = engine_thread(engine)
    t.wait_for_step(2)
    engine.control.measure()
    q = t.wait_for(ev.Quality)
    assert q.images == 64 and q.swd > 0 and q.seconds > 0 and q.epoch == 0


def test_collapse_warns_once_per_fall_from_variety(make_engine, monkeypatch):
    from tui_gan.engine import quality as quality_module
    from tui_gan.engine.quality import Quality

    diversities = iter([0.05, 0.1, 0.9, 0.2, 0.1, 0.8, 0.3])  # step 0, then epochs 1-6
    monkeypatch.setattr(quality_module.RealReference, "compare",
                        lambda self, fake: Quality(swd=10.0, swd_levels=[10.0], diversity=next(diversities)))
    engine = make_engine(epochs=6, quality_images=32)
    warnings = [(e.message, engine.step) for e in engine.run() if isinstance(e, ev.EngineWarning)]
    # not at the start nor at epoch 1 (never varied yet); epochs 3 and 6: each fall from variety
    assert [step for _, step in warnings] == [42, 84]
    assert "0.20× as varied as the data" in warnings[0][0] and "mode collapse" in warnings[0][0]


def test_quality_off(make_engine):
    engine = make_engine(max_steps=20, quality_images=0)  # crosses an epoch end
    assert not [e for e in engine.run() if isinstance(e, ev.Quality)]


def test_best_checkpoint_follows_the_lowest_swd_and_loads(learned, make_engine, tmp_path):
    from tui_gan.cli import main
    from tui_gan.engine.checkpoint import load_checkpoint

    engine, events, _ = learned
    quality = [e for e in events if isinstance(e, ev.Quality)]
    best_so_far, saved = math.inf, []
    for q in quality:  # a measurement is 'best' exactly when it beats every one before it
        assert (q.best is not None) == (q.swd < best_so_far)
        best_so_far = min(best_so_far, q.swd)
        if q.best:
            saved.append(q)
    assert saved[0].step == 0 and len(saved) >= 2  # the untrained start, then improvements
    state = load_checkpoint(engine.run_dir / "checkpoints" / "best.pt")
    assert state["step"] == saved[-1].step
    assert main(["sample", str(engine.run_dir / "checkpoints" / "best.pt"), "--n", "4",
                 "--out", str(tmp_path / "best.png")]) == 0

    # a resumed run knows its best so far: only a better measurement replaces best.pt
    resumed = make_engine(resume=load_checkpoint(engine.run_dir / "checkpoints" / "last.pt"), epochs=4, **LEARNING)
    later = [e for e in resumed.run() if isinstance(e, ev.Quality)]
    assert all((q.best is not None) == (q.swd < best_so_far) for q in later)
