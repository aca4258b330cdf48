import math

import pytest
import torch

from tui_gan.core import events as ev
from tui_gan.engine.gan import Gan

from .conftest import EngineThread, spy, tiny_config


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_a_few_steps_change_the_weights_and_give_finite_metrics(make_engine):
    engine = make_engine(max_steps=3)
    events = list(engine.run())
    started = next(e for e in events if isinstance(e, ev.Started))
    assert started.steps_per_epoch == 14 and started.total_steps == 3
    progress = [e for e in events if isinstance(e, ev.Progress) and e.step > 0]
    assert progress, "no progress events"
    for p in progress:
        for value in (p.loss_d, p.loss_g, p.d_x, p.d_g_z1, p.d_g_z2):
            assert math.isfinite(value)
        assert 0 <= p.d_x <= 1 and 0 <= p.d_g_z1 <= 1 and 0 <= p.d_g_z2 <= 1
    finished = events[-1]
    assert isinstance(finished, ev.Finished) and finished.reason == "max_steps" and finished.step == 3
    # weights moved away from their initialisation
    fresh = make_engine("fresh", max_steps=1)
    gen = fresh.run()
    for e in gen:
        if isinstance(e, ev.Started):
            break
    for before, after in zip(_params(fresh.gan.netG), _params(engine.gan.netG)):
        assert before.shape == after.shape
    assert any(not torch.equal(a, b) for a, b in zip(_params(fresh.gan.netG), _params(engine.gan.netG)))
    assert any(not torch.equal(a, b) for a, b in zip(_params(fresh.gan.netD), _params(engine.gan.netD)))
    gen.close()


def test_run_directory_contents(make_engine, tmp_path):
    engine = make_engine(epochs=1)
    events = list(engine.run())
    run = tmp_path / "run"
    assert (run / "config.toml").is_file()
    assert (run / "checkpoints" / "last.pt").is_file()
    assert (run / "samples" / "epoch-0001.png").is_file()
    assert (run / "samples" / "final-step14.png").is_file()
    lines = (run / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    for col in ("step", "epoch", "loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2", "lr_g", "lr_d", "images_per_sec"):
        assert col in header
    assert len(lines) > 2
    assert int(lines[-1].split(",")[0]) == 14
    epoch_end = [e for e in events if isinstance(e, ev.EpochEnd)]
    assert [e.epoch for e in epoch_end] == [1]
    assert events[-1].reason == "completed"


def test_samples_are_uint8_grids_of_the_fixed_noise(make_engine):
    engine = make_engine(max_steps=2)
    samples = [e for e in engine.run() if isinstance(e, ev.Samples)]
    assert samples[0].images.shape == (64, 3, 16, 16)
    assert samples[0].images.dtype == torch.uint8
    # same noise, different weights -> different images
    assert not torch.equal(samples[0].images, samples[-1].images)


def test_pause_resume_and_stop(make_engine, engine_thread):
    engine = make_engine(epochs=50)
    t: EngineThread = engine_thread(engine)
    t.wait_for_step(2)
    engine.control.pause()
    paused = t.wait_for(ev.Paused)
    step_at_pause = engine.step
    assert paused.step == step_at_pause
    # a snapshot while paused works and training does not move on
    engine.control.snapshot()
    snap = t.wait_for(ev.SnapshotSaved)
    assert snap.step == step_at_pause
    assert engine.step == step_at_pause
    engine.control.resume()
    t.wait_for(ev.Resumed)
    t.wait_for(ev.Progress, predicate=lambda e: e.step > step_at_pause)
    engine.control.stop("stopped by test")
    rest = t.drain()
    finished = rest[-1]
    assert isinstance(finished, ev.Finished) and finished.reason == "stopped by test"
    assert finished.checkpoint_path.endswith("last.pt")


def test_learning_rate_is_applied_at_the_epoch_boundary(make_engine, engine_thread):
    engine = make_engine(epochs=3)
    t = engine_thread(engine)
    t.wait_for(ev.Progress, predicate=lambda e: e.step >= 1 and e.epoch == 0)
    engine.control.set_lr(lr_g=1e-3, lr_d=5e-4)
    pending = t.wait_for(ev.LrPending)
    assert (pending.lr_g, pending.lr_d) == (1e-3, 5e-4)
    assert engine.gan.lr_g == 2e-4  # not yet
    applied = t.wait_for(ev.LrApplied)
    assert (applied.lr_g, applied.lr_d) == (1e-3, 5e-4)
    end = t.wait_for(ev.EpochEnd)
    assert end.epoch == 1
    assert engine.gan.optG.param_groups[0]["lr"] == 1e-3 and engine.gan.optD.param_groups[0]["lr"] == 5e-4
    # the step the new rates took effect is the epoch boundary
    progress = t.wait_for(ev.Progress, predicate=lambda e: e.step > 14)
    assert progress.lr_g == 1e-3
    engine.control.stop()
    t.drain()


def test_learning_rate_now_and_validation(make_engine, engine_thread):
    engine = make_engine(epochs=50)
    with pytest.raises(ValueError):
        engine.control.set_lr(lr_g=-1.0)
    with pytest.raises(ValueError):
        engine.control.set_lr(lr_d=float("nan"))
    t = engine_thread(engine)
    t.wait_for(ev.Progress, predicate=lambda e: e.step >= 1)
    engine.control.set_lr(lr_g=3e-4, now=True)
    applied = t.wait_for(ev.LrApplied)
    assert applied.lr_g == 3e-4 and applied.lr_d == 2e-4
    assert engine.epoch == 0
    engine.control.stop()
    t.drain()


def test_reset_lr_goes_back_to_the_rates_the_run_started_with(make_engine):
    """set_lr changes the rates (and the settings a checkpoint keeps); reset_lr returns to the
    ones the run started with, now or at the epoch's end. Driven from the engine's own thread,
    so every request lands at a known step boundary."""
    engine = make_engine(epochs=3, max_steps=20, lr_g=3e-4, lr_d=1e-4)
    lr_events = []
    for event in engine.run():
        if isinstance(event, ev.Started):
            engine.control.set_lr(lr_g=1e-3, lr_d=5e-4, now=True)
        if not isinstance(event, (ev.LrApplied, ev.LrPending)):
            continue
        lr_events.append((type(event).__name__, event.lr_g, event.lr_d, engine.step))
        if len(lr_events) == 1:
            engine.control.reset_lr(now=True)
        elif len(lr_events) == 2:  # both in one exchange: set_lr is served first
            engine.control.set_lr(lr_g=1e-3, lr_d=5e-4, now=True)
            engine.control.reset_lr()
    assert [e[:3] for e in lr_events] == [
        ("LrApplied", 1e-3, 5e-4), ("LrApplied", 3e-4, 1e-4),
        ("LrApplied", 1e-3, 5e-4), ("LrPending", 3e-4, 1e-4), ("LrApplied", 3e-4, 1e-4)]
    assert lr_events[-1][3] == 14  # the epoch's end
    assert engine.gan.lrs == (3e-4, 1e-4)


def test_pause_at_epoch_end(make_engine, engine_thread):
    engine = make_engine(epochs=3)
    engine.control.pause_at_epoch_end = True
    t = engine_thread(engine)
    end = t.wait_for(ev.EpochEnd)
    paused = t.wait_for(ev.Paused)
    assert paused.step == end.step == 14
    assert paused.reason == "epoch end"
    engine.control.resume()
    t.wait_for(ev.Resumed)
    engine.control.stop()
    t.drain()


def test_export_writes_a_full_resolution_grid(make_engine, engine_thread, tmp_path):
    from PIL import Image

    engine = make_engine(epochs=50)
    t = engine_thread(engine)
    t.wait_for(ev.Progress, predicate=lambda e: e.step >= 1)
    engine.control.export()
    exported = t.wait_for(ev.Exported)
    img = Image.open(exported.path)
    assert img.size == (2 + 8 * 18, 2 + 8 * 18)  # 8x8 tiles of 16 px with 2 px padding
    engine.control.stop()
    t.drain()


def test_stop_requested_before_training(make_engine):
    engine = make_engine()
    engine.control.stop("early")
    events = list(engine.run())
    assert isinstance(events[-1], ev.Finished)


def test_failure_during_training_saves_and_reports(make_engine, monkeypatch):
    engine = make_engine(epochs=5)
    calls = {"n": 0}
    original = Gan.train_step

    def flaky(gan, real):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
        return original(gan, real)

    monkeypatch.setattr(Gan, "train_step", flaky)
    events = list(engine.run())
    error = events[-1]
    assert isinstance(error, ev.Error)
    assert "out of memory" in error.message and "--batch-size" in error.message
    assert error.checkpoint_path and error.checkpoint_path.endswith("last.pt")
    from tui_gan.engine.checkpoint import load_checkpoint

    assert load_checkpoint(error.checkpoint_path)["step"] == 3


def _host_reads(engine, monkeypatch) -> int:
    """Run ``engine`` to the end, counting the tensor reads back to the host that tui-gan's
    own code makes (torch's CPU Adam reads its CPU step counters itself; that is no sync)."""
    import sys

    reads = {"n": 0}
    with monkeypatch.context() as m:
        for name in ("tolist", "item", "cpu", "numpy", "__float__", "__bool__"):
            original = getattr(torch.Tensor, name)

            def counting(self, *args, _original=original, **kwargs):
                if "tui_gan" in sys._getframe(1).f_code.co_filename:
                    reads["n"] += 1
                return _original(self, *args, **kwargs)

            m.setattr(torch.Tensor, name, counting)
        list(engine.run())
    return reads["n"]


def test_no_per_step_sync(make_engine, monkeypatch):
    """Progress reads the device once per interval, not once per step: 30 more steps in
    the same single interval cost no more host reads."""
    slow = dict(progress_interval=3600.0, log_interval=3600.0, max_images=800)
    short = _host_reads(make_engine("a", max_steps=10, **slow), monkeypatch)
    long = _host_reads(make_engine("b", max_steps=40, **slow), monkeypatch)
    assert long - short <= 2, (short, long)


def test_grayscale_folder_trains_end_to_end_in_one_channel(tmp_path, make_engine):
    from PIL import Image

    from tui_gan.core import events as ev

    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(40):
        Image.new("L", (24, 24), i * 6).save(folder / f"{i}.png")
    engine = make_engine(data=str(folder), channels=None, max_images=None, max_steps=3)
    events = list(engine.run())
    assert engine.config.channels == 1
    assert engine.gan.netG.main[-2].out_channels == 1  # the last transposed conv, before Tanh
    samples = [e for e in events if isinstance(e, ev.Samples)]
    assert samples[-1].images.shape[1] == 1
    finished = events[-1]
    assert isinstance(finished, ev.Finished)
    with Image.open(finished.sample_path) as grid:
        assert grid.mode in ("L", "RGB")
    assert "channels = 1" in (engine.run_dir / "config.toml").read_text()


def test_amp_trains_on_logits_and_keeps_checkpoints_compatible(make_engine):
    from tui_gan.engine.checkpoint import load_checkpoint
    from tui_gan.engine.engine import Engine

    from .conftest import EXPLICIT, tiny_config

    engine = make_engine(max_steps=4, amp=True)
    events = list(engine.run())
    assert isinstance(engine.gan.criterion, torch.nn.BCEWithLogitsLoss)
    assert not isinstance(engine.gan._d_forward[-1], torch.nn.Sigmoid)  # logits, the Sigmoid left out
    progress = [e for e in events if isinstance(e, ev.Progress)][-1]
    for value in (progress.loss_d, progress.loss_g):
        assert math.isfinite(value)
    for value in (progress.d_x, progress.d_g_z1, progress.d_g_z2):
        assert 0.0 <= value <= 1.0  # verdicts are probabilities, as without --amp
    # the same state_dict keys: an --amp run resumes without it
    resumed = Engine(tiny_config(max_steps=6), engine.run_dir, explicit=EXPLICIT, resume=load_checkpoint(engine.run_dir))
    list(resumed.run())
    assert resumed.step == 6 and isinstance(resumed.gan.criterion, torch.nn.BCELoss)


def test_compile_wraps_the_forward_passes_only(make_engine, monkeypatch):
    compiled = []

    def fake_compile(module):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    engine = make_engine(max_steps=2, compile=True)
    list(engine.run())
    assert compiled == [engine.gan.netG, engine.gan.netD]
    assert "main.0.weight" in engine.outputs.state_dict()["generator"]  # no _orig_mod. prefix


def _tutorial_step(netG, netD, real, noise):
    """The tutorial's step, verbatim in substance: BCELoss, full backward passes."""
    crit = torch.nn.BCELoss()
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ones, zeros = torch.ones(real.size(0)), torch.zeros(real.size(0))
    netD.zero_grad()
    err_real = crit(netD(real).view(-1), ones)
    err_real.backward()
    fake = netG(noise)
    err_fake = crit(netD(fake.detach()).view(-1), zeros)
    err_fake.backward()
    optD.step()
    d_grads = [p.grad.clone() for p in netD.parameters()]  # G's pass adds to them below
    netG.zero_grad()
    err_g = crit(netD(fake).view(-1), ones)
    err_g.backward()
    optG.step()
    return torch.stack([err_real + err_fake, err_g]).detach(), d_grads, [p.grad for p in netG.parameters()]


@pytest.mark.parametrize("channels_last, width", [(False, 8), (True, 8), (True, 64)])
def test_a_step_is_the_tutorials_step(make_engine, monkeypatch, channels_last, width):
    """The engine's speed-ups (D's weight gradients skipped in G's pass, channels-last
    layout, cpulayers' layers, with 64 channels winograd.py's) leave the maths alone: one
    step gives the tutorial's gradients and weights."""
    import copy

    from tui_gan.speed import winograd

    products = spy(monkeypatch, winograd, "_products")
    engine = make_engine(max_steps=1, channels_last=channels_last, ngf=width, ndf=width)
    events = engine.run()
    while not isinstance(next(events), ev.Started):
        pass
    assert engine.gan.netD.main[0].weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert engine.gan.speed.cpu_layers == channels_last  # the channels-last CPU layers, on a CPU
    netG, netD = copy.deepcopy(engine.gan.netG).to(memory_format=torch.contiguous_format), copy.deepcopy(engine.gan.netD)
    netD = netD.to(memory_format=torch.contiguous_format)
    noise_gen = torch.Generator().set_state(engine.gan.noise_gen.get_state())
    real = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(5)) * 2 - 1
    noise = torch.randn(16, engine.config.nz, 1, 1, generator=noise_gen)

    expected, d_grads, g_grads = _tutorial_step(netG, netD, real, noise)
    got = engine.gan.train_step(real.clone())
    close = (lambda a, b: torch.equal(a, b)) if not channels_last else (
        lambda a, b: torch.allclose(a, b, rtol=1e-4, atol=1e-6))
    assert close(got[:2], expected), (got[:2], expected)
    # the gradients, to float32 rounding of their largest terms (D's: from D's own pass)
    for model, grads in ((engine.gan.netD, d_grads), (engine.gan.netG, g_grads)):
        for (name, p), want in zip(model.named_parameters(), grads):
            assert (p.grad - want).abs().max() <= 1e-4 * want.abs().max(), name
    for mine, theirs in ((engine.gan.netG, netG), (engine.gan.netD, netD)):
        for (name, a), b in zip(mine.named_parameters(), theirs.parameters()):
            if width == 64:
                # Adam's first step moves every weight by about the learning rate, whatever
                # the size of its gradient: where the gradient is at rounding level, summing
                # in another order can flip its sign. So: all but a few in 1e-4, none past 2 lr.
                off = ~torch.isclose(a, b, rtol=1e-4, atol=1e-6)
                assert off.sum() <= a.numel() // 1000 and (a - b).abs().max() <= 2.1 * 2e-4, name
            else:
                assert close(a, b), name
    assert all(p.requires_grad for p in engine.gan.netD.parameters())  # frozen only for G's pass
    # D's 64 -> 128 conv: 3 forward and 3 input-gradient passes; G's 128 -> 64: 1 and 1
    assert len(products) == (8 if width == 64 else 0)
    events.close()


def test_speed_settings_resume_either_way(make_engine):
    """A channels-last, fused-Adam checkpoint resumes without them, and the other way round."""
    from tui_gan.engine.checkpoint import load_checkpoint
    from tui_gan.engine.engine import Engine

    from .conftest import EXPLICIT, tiny_config

    first = make_engine(max_steps=3, channels_last=True, fused_adam=True)
    list(first.run())
    assert first.gan.optG.param_groups[0]["fused"] is True
    resumed = Engine(tiny_config(max_steps=6, channels_last=False), first.run_dir, explicit=EXPLICIT,
                     resume=load_checkpoint(first.run_dir))
    events = list(resumed.run())
    assert isinstance(events[-1], ev.Finished) and resumed.step == 6
    assert not resumed.gan.netG.main[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not resumed.gan.optG.param_groups[0]["fused"]  # this run's choice, not the checkpoint's
    again = Engine(tiny_config(max_steps=8, fused_adam=True), first.run_dir, explicit=EXPLICIT,
                   resume=load_checkpoint(first.run_dir))
    list(again.run())
    assert again.step == 8 and again.gan.optD.param_groups[0]["fused"] is True


def test_resumed_adam_moments_take_the_weights_layout(make_engine):
    """Moments saved channels-last (a CPU run) resumed with contiguous weights (a GPU's
    default): they are copied to the weights' layout, and fused Adam, which goes wrong on
    mismatched layouts on a CPU and refuses them on CUDA, trains as foreach Adam does."""
    from tui_gan.engine.checkpoint import load_checkpoint

    first = make_engine(max_steps=3, channels_last=True)
    list(first.run())
    assert first.gan.optG.state[first.gan.netG.main[0].weight]["exp_avg"].is_contiguous(memory_format=torch.channels_last)
    resumed = {}
    for fused in (False, True):
        engine = make_engine(f"fused-{fused}", resume=load_checkpoint(first.run_dir), max_steps=6,
                             channels_last=False, fused_adam=fused)
        list(engine.run())
        assert engine.step == 6 and bool(engine.gan.optG.param_groups[0]["fused"]) is fused
        for opt, net in ((engine.gan.optG, engine.gan.netG), (engine.gan.optD, engine.gan.netD)):
            for p in net.parameters():
                moments = [v for v in opt.state[p].values() if v.shape == p.shape]
                assert len(moments) == 2 and all(v.stride() == p.stride() for v in moments)
        resumed[fused] = engine
    for a, b in zip(resumed[False].gan.netG.parameters(), resumed[True].gan.netG.parameters()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_autocast_only_with_amp(make_engine):
    """Without --amp there is no autocast at all: torch before 2.5 refuses even a disabled
    one on MPS."""
    import contextlib

    cpu = torch.device("cpu")
    assert isinstance(Gan(tiny_config(channels=3), cpu).autocast(), contextlib.nullcontext)
    assert isinstance(Gan(tiny_config(channels=3, amp=True), cpu).autocast(), torch.autocast)


def test_amp_where_the_device_has_no_bf16_is_a_user_error(make_engine, monkeypatch):
    from tui_gan.core.errors import UserError
    from tui_gan.engine.devices import check_amp

    check_amp(torch.device("cpu"))  # bf16 autocast exists on every CPU (slow without bf16 units)
    with pytest.raises(UserError, match=r"--amp: bf16 autocast is not available on meta .*run without --amp"):
        check_amp(torch.device("meta"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (7, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    with pytest.raises(UserError, match=r"--amp: cuda:0 \(Tesla V100\) has no bf16 units .*; run without --amp"):
        check_amp(torch.device("cuda", 0))  # torch would emulate bf16 there (is_bf16_supported: True)
    if not torch.cuda.is_available():  # autocast warns and turns itself off: that is caught too
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (9, 0))
        with pytest.raises(UserError, match=r"not available on cuda .*\(.*CUDA is not available.*\)"):
            check_amp(torch.device("cuda", 0))
    monkeypatch.setattr("tui_gan.engine.engine.check_amp", lambda device: check_amp(torch.device("meta")))
    with pytest.raises(UserError, match="--amp"):  # the engine checks before it loads anything
        next(e for e in make_engine(amp=True).run() if not isinstance(e, ev.Loading))


def test_fused_adam_where_torch_lacks_it_is_a_user_error(make_engine, monkeypatch):
    from tui_gan.core.errors import UserError

    real_adam = torch.optim.Adam

    def adam(*args, fused=None, **kwargs):  # torch before 2.4 on a CPU or MPS
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of "
                               "supported devices: ['cuda', 'xpu', 'privateuseone'].")
        return real_adam(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", adam)
    with pytest.raises(UserError, match=r"^--fused-adam: not available on cpu with torch .*\(`fused=True` "
                                        r"requires .*\); run without --fused-adam$"):
        list(make_engine(fused_adam=True).run())
    assert list(make_engine("plain", max_steps=1).run())[-1].reason == "max_steps"


def test_failures_are_described_on_torch_without_torch_out_of_memory_error(monkeypatch):
    from tui_gan.engine.devices import describe_failure

    monkeypatch.delattr(torch, "OutOfMemoryError", raising=False)  # added in torch 2.4
    cpu = torch.device("cpu")
    assert describe_failure(torch.cuda.OutOfMemoryError("CUDA error"), cpu).startswith("out of memory on cpu")
    assert describe_failure(ValueError("bad\nmore"), cpu) == "ValueError: bad"


def test_cpu_checkpoints_hold_no_cuda_rng_state_and_older_lists_still_resume(make_engine):
    """Checkpoints once held a list of every visible GPU's RNG state (now: this run's GPU
    only, or None on other devices). On a CPU, lists in either form still resume; the
    CUDA side of this needs a GPU (.ci/gpu-bench resumes on one)."""
    from tui_gan.engine.checkpoint import load_checkpoint

    first = make_engine(max_steps=2)
    list(first.run())
    state = load_checkpoint(first.run_dir)
    assert state["rng"]["torch_cuda"] is None
    for old in ([], [torch.zeros(16, dtype=torch.uint8)]):
        state["rng"]["torch_cuda"] = old
        engine = make_engine(f"old-{len(old)}", resume=state, max_steps=4)
        assert list(engine.run())[-1].reason == "max_steps" and engine.step == 4


def test_compile_where_torch_cannot_is_a_user_error(make_engine, monkeypatch):
    from tui_gan.core.errors import UserError

    def refuse(*args, **kwargs):
        raise RuntimeError("Dynamo is not supported on Python 3.12+\nmore")

    monkeypatch.setattr(torch, "compile", refuse)
    with pytest.raises(UserError, match=r"^--compile: Dynamo is not supported on Python 3.12\+; run without --compile$"):
        list(make_engine(compile=True).run())


def test_before_step_hook_sees_every_step(make_engine):
    """The benchmark's clock: a public hook, called before each training step."""
    seen = []
    engine = make_engine(max_steps=5)
    engine.before_step = seen.append
    list(engine.run())
    assert seen == [0, 1, 2, 3, 4]
