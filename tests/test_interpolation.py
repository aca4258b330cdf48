"""Latent interpolation: slerp walks, the engine's request, the app's view and its GIF."""

from __future__ import annotations

import math

import torch
from PIL import Image

from tui_gan.core import events as ev
from tui_gan.engine.interpolation import latent_walk, slerp

from .conftest import EngineThread


def test_slerp_ends_at_its_endpoints_and_keeps_the_norm_of_equal_norm_vectors():
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0]])
    path = slerp(a, b, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.allclose(path[0], a) and torch.allclose(path[2], b, atol=1e-6)
    assert torch.allclose(path[1], torch.tensor([[math.sqrt(0.5), math.sqrt(0.5)]]))  # on the arc
    same = slerp(a, a.clone(), torch.tensor([0.3]))  # parallel: no division by zero
    assert torch.allclose(same[0], a)


def test_walks_are_closed_loops_through_fixed_points():
    walk = latent_walk(nz=8, seed=3, walks=5, stops=3, frames_per_leg=4)
    assert walk.shape == (12, 5, 8, 1, 1)
    assert torch.equal(walk, latent_walk(nz=8, seed=3, walks=5, stops=3, frames_per_leg=4))  # fixed per seed
    step = (walk[1:] - walk[:-1]).flatten(1).norm(dim=1)
    closing = (walk[0] - walk[-1]).flatten().norm()
    assert closing < 2 * step.max()  # the last frame leads back to the first


def test_engine_renders_the_walks_on_request(make_engine, engine_thread):
    engine = make_engine(epochs=50)
    t: EngineThread = engine_thread(engine)
    t.wait_for_step(2)
    engine.control.interpolate()
    walks = t.wait_for(ev.Interpolation)
    assert walks.frames.dtype == torch.uint8 and walks.frames.shape == (48, 16, 3, 16, 16)
    assert not torch.equal(walks.frames[0], walks.frames[6])  # it moves


async def test_the_walk_view_animates_and_saves_a_gif(attached_app, tmp_path):
    from tui_gan.tui.screens.interpolation import InterpolationScreen
    from tui_gan.tui.state import RunState

    from .app_support import open_screen, press, quit_app, wait_until
    from .test_app import SIZE, log_text, real_app

    app = real_app(attached_app, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        await open_screen(pilot, app, "i", InterpolationScreen)
        view = app.screen
        first = view.frame
        await wait_until(pilot, lambda: view.frame != first, what="the next frame")
        await press(pilot, "space")
        await wait_until(pilot, lambda: not view.playing, what="the walk paused")
        await press(pilot, "g")
        await wait_until(pilot, lambda: "latent walk GIF" in log_text(app), what="gif")
        gif = next((tmp_path / "run" / "samples").glob("interpolation-step*.gif"))
        with Image.open(gif) as img:
            assert img.n_frames == 48
        await press(pilot, "escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, InterpolationScreen), what="closed")
        await quit_app(pilot, app)
