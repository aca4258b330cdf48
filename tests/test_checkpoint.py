import os

import pytest
import torch

from tui_gan.core import events as ev
from tui_gan.core.errors import UserError
from tui_gan.engine.checkpoint import load_checkpoint, save_checkpoint

from .conftest import EXPLICIT, tiny_config


def _finish(engine):
    return list(engine.run())


def test_checkpoint_loads_with_weights_only_and_holds_everything(make_engine, tmp_path):
    engine = make_engine(max_steps=5)
    _finish(engine)
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    for key in (
        "generator", "discriminator", "optimizer_g", "optimizer_d", "step", "epoch", "config",
        "lr_g", "lr_d", "fixed_noise", "rng", "history",
    ):
        assert key in state, key
    assert state["step"] == 5
    assert state["fixed_noise"].shape == (64, 16, 1, 1)
    assert {"torch_cpu", "torch_cuda", "noise", "data"} <= set(state["rng"])
    assert state["history"]["values"].shape[1] == len(state["history"]["columns"])
    assert state["history"]["values"][-1, 0] == 5


def test_exact_resume_is_bit_identical(make_engine):
    straight = make_engine("straight", max_steps=20)
    _finish(straight)

    first = make_engine("split", max_steps=10)
    _finish(first)
    state = load_checkpoint(first.run_dir)
    assert state["step"] == 10 and state["batch_in_epoch"] == 10  # mid-epoch (14 per epoch)
    config = tiny_config(max_steps=20)
    from tui_gan.engine.engine import Engine

    second = Engine(config, first.run_dir, explicit=EXPLICIT, resume=state)
    events = _finish(second)
    started = next(e for e in events if isinstance(e, ev.Started))
    assert started.step == 10 and started.history  # charts resume too
    assert second.step == 20 and second.epoch == 1
    for a, b in zip(straight.gan.netG.state_dict().values(), second.gan.netG.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(straight.gan.netD.state_dict().values(), second.gan.netD.state_dict().values()):
        assert torch.equal(a, b)
    sa, sb = straight.gan.optG.state_dict()["state"], second.gan.optG.state_dict()["state"]
    for k in sa:
        assert torch.equal(sa[k]["exp_avg"], sb[k]["exp_avg"])


def test_atomic_write_keeps_the_old_checkpoint_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    good = {"generator": {"w": torch.ones(3)}, "discriminator": {}, "optimizer_g": {}, "optimizer_d": {},
            "step": 1, "epoch": 0, "config": {}}
    save_checkpoint(path, good)

    real_save = torch.save

    def torn_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial bytes")  # a write that dies half way
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {**good, "step": 2})
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(path)["step"] == 1
    assert os.listdir(path.parent) == ["last.pt"]  # no temporary file left behind


@pytest.mark.parametrize("content,message", [(None, "no such checkpoint"), (b"", "not a readable"),
                                             (b"garbage" * 10, "not a readable")])
def test_missing_or_corrupt_checkpoint_is_a_user_error(tmp_path, content, message):
    path = tmp_path / "x.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_checkpoint(path)


def test_foreign_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"step": 1, "obj": object}, path)  # not loadable with weights_only
    with pytest.raises(UserError):
        load_checkpoint(path)
    torch.save({"step": 1}, path)  # loadable, but not ours
    with pytest.raises(UserError, match="not a tui-gan checkpoint"):
        load_checkpoint(path)


def test_run_dir_without_checkpoint(tmp_path):
    with pytest.raises(UserError, match="no checkpoints/last.pt"):
        load_checkpoint(tmp_path)


def test_snapshot_resume_rewrites_metrics_from_the_checkpoint(make_engine, tmp_path):
    from tui_gan.engine.engine import Engine

    engine = make_engine("snap", max_steps=6)
    _finish(engine)
    state = load_checkpoint(engine.run_dir)
    resumed = Engine(tiny_config(max_steps=6), engine.run_dir, explicit=EXPLICIT, resume=state)
    events = _finish(resumed)
    # already at max_steps: finishes at once, checkpoint untouched, history kept
    assert events[-1].reason == "max_steps" and events[-1].step == 6
    rows = (engine.run_dir / "metrics.csv").read_text().splitlines()
    assert int(rows[-1].split(",")[0]) == 6
