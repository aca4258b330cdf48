"""--augment: DiffAugment's transforms, applied alike to every batch D sees, differentiable,
and exactly resumable."""

from __future__ import annotations

import pytest
import torch

from tui_gan.core import events as ev
from tui_gan.engine import augment as aug
from tui_gan.engine.checkpoint import load_checkpoint
from tui_gan.engine.engine import Engine

from .conftest import EXPLICIT, tiny_config

# What these check is the transforms' draws and gradients: torch's maths, the same on every
# Python: CI runs them on one (.ci/run).
pytestmark = pytest.mark.one_python


def _draws(seed):
    return aug._Draws(_gen(seed), None, None)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_the_transforms_keep_the_shape_and_draw_per_image_from_the_generator():
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    a, b = aug.diff_augment(x, _gen(1)), aug.diff_augment(x, _gen(1))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)  # the generator decides
    assert not torch.equal(a, aug.diff_augment(x, _gen(2)))
    same = aug.diff_augment(x[:1].expand(8, -1, -1, -1).contiguous(), _gen(3))
    assert len({tuple(img.flatten().tolist()) for img in same}) == 8  # one draw per image


def test_translation_shifts_by_at_most_an_eighth_and_fills_with_zeros():
    ones = torch.ones(64, 1, 16, 16)
    shifted = aug._translate(ones, _draws(4))
    for img in shifted[:, 0]:
        zero_rows = int((img.sum(dim=1) == 0).sum())
        zero_cols = int((img.sum(dim=0) == 0).sum())
        assert zero_rows <= 2 and zero_cols <= 2  # 16 * 0.125
        assert set(img.unique().tolist()) <= {0.0, 1.0}
    assert (shifted == 0).any() and (shifted == 1).all(dim=(1, 2, 3)).any()  # some moved, some not


def test_cutout_zeroes_one_square_of_half_the_side_at_most():
    ones = torch.ones(64, 3, 16, 16)
    cut = aug._cutout(ones, _draws(5))
    zeros = (cut[:, 0] == 0).sum(dim=(1, 2))
    assert (zeros <= 64).all() and (zeros > 0).all()  # 8x8, fewer where it leaves the image
    assert torch.equal(cut[:, 0], cut[:, 2])  # the same square in every channel


def test_colour_changes_brightness_saturation_and_contrast_only():
    grey = torch.zeros(16, 3, 8, 8)
    out = aug._colour(grey, _draws(6))
    # a flat grey image stays flat (saturation and contrast have nothing to scale), shifted by brightness
    assert torch.allclose(out, out[:, :1, :1, :1].expand_as(out))
    assert (out[:, 0, 0, 0].abs() <= 0.5).all() and out[:, 0, 0, 0].std() > 0


def test_gradients_flow_through_every_transform():
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    aug.diff_augment(x, _gen(7)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_every_batch_d_sees_is_augmented_the_same_way(make_engine, monkeypatch):
    """Real images, generated ones in D's step and in G's: all three through diff_augment
    with the run's noise generator, so neither side can tell them apart by augmentation."""
    calls = []
    real_augment = aug.diff_augment

    def spy(x, generator, rows, batch_size):
        calls.append((tuple(x.shape), generator, x.requires_grad))
        return real_augment(x, generator, rows, batch_size)

    monkeypatch.setattr("tui_gan.engine.gan.diff_augment", spy)
    engine = make_engine(max_steps=2, augment=True)
    events = list(engine.run())
    assert isinstance(events[-1], ev.Finished)
    assert len(calls) == 6  # 3 per step
    shapes = {c[0] for c in calls}
    assert len(shapes) == 1 and all(c[1] is engine.gan.noise_gen for c in calls)
    assert [c[2] for c in calls[:3]] == [False, False, True]  # real, fake for D (detached), fake for G
    calls.clear()
    list(make_engine("plain", max_steps=2).run())
    assert calls == []  # off by default


def test_an_augmented_run_resumes_exactly(tmp_path):
    whole = Engine(tiny_config(max_steps=6, augment=True), tmp_path / "whole", explicit=EXPLICIT)
    list(whole.run())
    half = Engine(tiny_config(max_steps=3, augment=True), tmp_path / "half", explicit=EXPLICIT)
    list(half.run())
    resumed = Engine(tiny_config(max_steps=6, augment=True), tmp_path / "half", explicit=EXPLICIT,
                     resume=load_checkpoint(tmp_path / "half"))
    list(resumed.run())
    for a, b in zip(whole.gan.netG.state_dict().values(), resumed.gan.netG.state_dict().values()):
        assert torch.equal(a, b)


def test_in_bf16_the_transforms_keep_the_dtype_and_draw_like_fp32():
    """Under autocast the generated batch is bf16 and the real one fp32: both must get
    transforms drawn from one distribution (the draws are made in fp32, then cast)."""
    x = torch.rand(8, 3, 32, 32) * 2 - 1
    low = x.to(torch.bfloat16).requires_grad_()
    out = aug.diff_augment(low, _gen(8))
    assert out.dtype == torch.bfloat16 and out.shape == x.shape
    out.float().sum().backward()
    assert low.grad is not None and low.grad.abs().sum() > 0
    ones = torch.ones(8, 3, 32, 32)
    for transform in (aug._translate, aug._cutout):  # the same shifts and squares as in fp32
        assert torch.equal(transform(ones.to(torch.bfloat16), _draws(9)).float(), transform(ones, _draws(9)))


def test_a_share_of_a_batch_gets_the_draws_of_its_rows_in_the_whole_batch():
    """Processes sharing a batch (world.py) draw for the whole batch and slice: rows 3..5
    of an 8-image batch are transformed as they would be in the whole batch, and the
    generator ends where one process's does."""
    x = torch.rand(8, 3, 32, 32) * 2 - 1
    whole_gen, share_gen = _gen(11), _gen(11)
    whole = aug.diff_augment(x, whole_gen)
    share = aug.diff_augment(x[3:6], share_gen, slice(3, 6), 8)
    assert torch.equal(share, whole[3:6])
    assert torch.equal(whole_gen.get_state(), share_gen.get_state())
