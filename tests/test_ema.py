"""--ema: the average's maths, that it never changes training, its checkpoints and resume,
and who uses it (samples, exports, the quality metric, `sample`, the app's `v`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tui_gan.core import events as ev
from tui_gan.core.errors import UserError
from tui_gan.engine.checkpoint import load_checkpoint, save_checkpoint
from tui_gan.engine.ema import GeneratorEma
from tui_gan.engine.engine import Engine

from .conftest import EXPLICIT, tiny_config


def test_the_average_moves_by_the_warmed_up_decay_and_copies_the_buffers():
    live = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = GeneratorEma(live, decay=0.9)
    start = [p.detach().clone() for p in ema.model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(start, live.parameters()))
    assert [ema.current_decay() for _ in range(1)] == [pytest.approx(1 / 10)]  # t = 0: follow closely
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
        live[1].running_mean.fill_(5.0)
    ema.update()
    for before, now, target in zip(start, ema.model.parameters(), live.parameters()):
        assert torch.allclose(now, 0.1 * before + 0.9 * target)  # decay 0.1 at t = 0
    assert torch.equal(ema.model[1].running_mean, live[1].running_mean)
    ema.updates = 10_000
    assert ema.current_decay() == 0.9  # the warm-up is over: the configured decay
    averaged = [p.detach().clone() for p in ema.model.parameters()]
    ema.update()
    for before, now, target in zip(averaged, ema.model.parameters(), live.parameters()):
        assert torch.allclose(now, 0.9 * before + 0.1 * target)
    assert not any(p.requires_grad for p in ema.model.parameters())
    ema.restart()
    assert ema.updates == 0 and all(torch.equal(a, b) for a, b in zip(ema.model.parameters(), live.parameters()))


def _run(tmp_path, name, **overrides):
    engine = Engine(tiny_config(**overrides), tmp_path / name, explicit=EXPLICIT)
    events = list(engine.run())
    assert isinstance(events[-1], ev.Finished), events[-1]
    return engine, events


def test_the_average_never_changes_training(tmp_path):
    """D only ever sees the live generator: with --ema the live weights are bit for bit
    those of a run without it, and the average differs from them."""
    plain, _ = _run(tmp_path, "plain", max_steps=6)
    averaged, _ = _run(tmp_path, "ema", max_steps=6, ema=True)
    for a, b in zip(plain.gan.netG.state_dict().values(), averaged.gan.netG.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(plain.gan.netD.state_dict().values(), averaged.gan.netD.state_dict().values()):
        assert torch.equal(a, b)
    assert averaged.gan.ema.updates == 6
    assert not torch.equal(averaged.gan.ema.model.main[0].weight, averaged.gan.netG.main[0].weight)


def test_samples_exports_and_the_metric_use_the_average_and_v_switches_the_samples(tmp_path):
    engine = Engine(tiny_config(max_steps=40, ema=True, quality_images=32), tmp_path / "run", explicit=EXPLICIT)
    events = engine.run()
    samples = []
    for event in events:
        if isinstance(event, ev.Samples):
            samples.append(event)
            if len(samples) == 1:  # the first, at step 0: ask for the live generator's samples
                engine.control.show_average(False)
            elif len(samples) == 2:
                engine.control.export()  # while the live generator is shown
        if isinstance(event, ev.Exported):
            exported = event
            engine.control.show_average(True)
    assert samples[0].generator == "average"
    assert samples[1].generator == "live"  # the answer to the request, fresh samples at once
    assert samples[-1].generator == "average"  # switched back
    from tui_gan.data.pixels import to_uint8
    from tui_gan.engine.models import generate

    gan = engine.gan
    assert torch.equal(samples[-1].images, to_uint8(generate(gan.ema.model, gan.fixed_noise)))
    assert exported.path.endswith(".png")
    assert gan.measured_generator is gan.ema.model
    measured = engine.quality.measure(gan.ema.model, engine.data, engine.device).swd
    live = engine.quality.measure(gan.netG, engine.data, engine.device).swd
    last = [row for row in engine.history if row.swd == row.swd][-1]
    assert last.swd == pytest.approx(measured) and measured != pytest.approx(live)


def test_checkpoints_keep_the_average_and_a_resume_continues_it_exactly(tmp_path):
    whole, _ = _run(tmp_path, "whole", max_steps=8, ema=True)
    half, _ = _run(tmp_path, "half", max_steps=4, ema=True)
    state = load_checkpoint(tmp_path / "half")
    assert state["ema_updates"] == 4 and set(state["generator_ema"]) == set(state["generator"])
    resumed = Engine(tiny_config(max_steps=8, ema=True), tmp_path / "half", explicit=EXPLICIT, resume=state)
    list(resumed.run())
    assert resumed.gan.ema.updates == 8
    for a, b in zip(whole.gan.ema.model.state_dict().values(), resumed.gan.ema.model.state_dict().values()):
        assert torch.equal(a, b)


def test_ema_can_be_turned_on_or_off_at_a_resume(tmp_path):
    _run(tmp_path, "plain", max_steps=3)
    state = load_checkpoint(tmp_path / "plain")
    assert "generator_ema" not in state
    turned_on = Engine(tiny_config(max_steps=5, ema=True), tmp_path / "plain", explicit=EXPLICIT | {"ema"},
                       resume=state)
    list(turned_on.run())
    assert turned_on.gan.ema.updates == 2  # started from the live weights at the resume
    assert load_checkpoint(tmp_path / "plain")["ema_updates"] == 2
    turned_off = Engine(tiny_config(max_steps=7, ema=False), tmp_path / "plain", explicit=EXPLICIT,
                        resume=load_checkpoint(tmp_path / "plain"))
    list(turned_off.run())
    assert turned_off.gan.ema is None and "generator_ema" not in load_checkpoint(tmp_path / "plain")


def test_a_damaged_average_is_a_damaged_checkpoint(tmp_path):
    _run(tmp_path, "run", max_steps=2, ema=True)
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    for key, value in (("generator_ema", {"main.0.weight": torch.zeros(2)}), ("ema_updates", -1),
                       ("ema_updates", "many")):
        save_checkpoint(tmp_path / "bad.pt", {k: v for k, v in {**state, key: value}.items() if k not in ("format", "version")})
        with pytest.raises(UserError, match=rf"damaged or edited tui-gan checkpoint \({key}"):
            load_checkpoint(tmp_path / "bad.pt")


def test_sample_uses_the_average_unless_live(tmp_path, capsys):
    from tui_gan.cli import main
    from tui_gan.engine.sampling import generator_from_checkpoint

    _run(tmp_path, "run", max_steps=4, ema=True)
    state = load_checkpoint(tmp_path / "run")
    cpu = torch.device("cpu")
    averaged, live = generator_from_checkpoint(state, cpu), generator_from_checkpoint(state, cpu, live=True)
    assert torch.equal(averaged.main[0].weight, state["generator_ema"]["main.0.weight"])
    assert torch.equal(live.main[0].weight, state["generator"]["main.0.weight"])
    assert main(["sample", str(tmp_path / "run"), "--n", "4", "--out", str(tmp_path / "a.png")]) == 0
    assert "samples of the generator's average (--ema; --live for the live one)" in capsys.readouterr().out
    assert main(["sample", str(tmp_path / "run"), "--n", "4", "--live", "--out", str(tmp_path / "b.png")]) == 0
    assert "generator's average" not in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1", "x"])
def test_a_bad_ema_decay_is_one_line_and_exit_2(value, capsys):
    from tui_gan.cli import main

    assert main(["--headless", "--ema", "--ema-decay", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ema-decay: must be a number between 0 and 1" in err[0]


def test_the_guard_looks_at_the_live_generators_samples_while_the_average_is_shown(tmp_path, monkeypatch):
    """A frozen or collapsed generator is the live one: the average moves slowly by design,
    and would look frozen to the guard."""
    from tui_gan.data.pixels import to_uint8
    from tui_gan.engine.gan import Gan
    from tui_gan.engine.guard import Guard
    from tui_gan.engine.models import generate

    made, seen = {}, []  # id of each sample batch -> whether the live generator drew it
    real_samples, real_inspect = Gan.samples, Guard.inspect_samples

    def samples(self, generator=None):
        images = real_samples(self, generator)
        made[id(images)] = generator is self.netG or (generator is None and self.shown == "live")
        return images

    monkeypatch.setattr(Gan, "samples", samples)
    monkeypatch.setattr(Guard, "inspect_samples",
                        lambda self, step, images: seen.append(images) or real_inspect(self, step, images))
    engine, _ = _run(tmp_path, "run", max_steps=5, ema=True, sample_interval=0.001)
    checked = [images for images in seen if images is not None]
    assert checked and all(made[id(images)] for images in checked)
    gan = engine.gan
    live = to_uint8(generate(gan.netG, gan.fixed_noise))
    assert torch.equal(engine.outputs.live_samples, live) and not torch.equal(engine.outputs.last_samples, live)


def test_v_changes_the_view_only_the_saved_grids_stay_the_averages(tmp_path):
    """The epoch-end, snapshot and final grids (and so the progression GIF and a resumed
    run's epoch browser) are one generator's: the average, whatever a viewer shows."""
    from PIL import Image

    from tui_gan.data.pixels import to_uint8
    from tui_gan.engine.models import generate

    engine = Engine(tiny_config(max_steps=14, ema=True), tmp_path / "run", explicit=EXPLICIT)  # one epoch
    engine.control.show_average(False)
    events = list(engine.run())
    shown = [e for e in events if isinstance(e, ev.Samples)]
    epoch_end = next(e for e in events if isinstance(e, ev.EpochEnd))
    assert [e.generator for e in shown][-1] == "live"
    gan = engine.gan
    average = to_uint8(generate(gan.ema.model, gan.fixed_noise))
    assert torch.equal(epoch_end.images, average) and not torch.equal(shown[-1].images, average)
    from tui_gan.pictures.grids import save_grid

    finished = events[-1]
    expected = save_grid(average, tmp_path / "average.png")  # the final grid is the average's
    with Image.open(finished.sample_path) as grid, Image.open(expected) as want:
        assert grid.size[0] > 0 and grid.tobytes() == want.tobytes()


def test_asking_for_the_average_of_a_run_without_one_is_a_warning(make_engine):
    engine = make_engine(max_steps=3)
    engine.control.show_average(True)
    events = list(engine.run())
    warnings = [e.message for e in events if isinstance(e, ev.EngineWarning)]
    assert any("keeps no average" in w and "--ema" in w for w in warnings)
    assert all(e.generator == "live" for e in events if isinstance(e, ev.Samples))
