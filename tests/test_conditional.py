"""--conditional in the engine: the classes reach the step in the data's order, the nets
are asked for them, a run resumes exactly, the samples and grids have a row per class,
and `tui-gan sample` draws a class or a row per class. (The labels themselves: the data
layer's tests.)"""

from __future__ import annotations

import re

import pytest
import torch
from PIL import Image

from tui_gan.cli import main
from tui_gan.core import events as ev
from tui_gan.engine import gan as gan_module
from tui_gan.engine.checkpoint import load_checkpoint
from tui_gan.engine.conditional import SAMPLE_COLUMNS, ConditionalDiscriminator, ConditionalGenerator
from tui_gan.engine.engine import Engine
from tui_gan.engine.models import generate
from tui_gan.pictures.grids import ROWS_CHUNK

from .conftest import EXPLICIT, tiny_config

DIGITS = [str(d) for d in range(10)]


def conditional(**overrides):
    return tiny_config(conditional=True, **overrides)


def test_the_conditional_nets_answer_per_class_and_keep_the_tutorials_layers():
    g, d = ConditionalGenerator(3, 16, 8, 3, 32), ConditionalDiscriminator(3, 8, 3, 32)
    z = torch.randn(6, 16, 1, 1)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    images = g(z, y)
    assert images.shape == (6, 3, 32, 32) and images.abs().max() <= 1
    p, logit = d(images, y), d(images, y, logits=True)
    assert p.shape == (6, 1, 1, 1) and torch.allclose(p, torch.sigmoid(logit))
    # the class matters to both: the same z (and the same image) asked as another class differs
    g.eval()
    same_z = z[:1].repeat(3, 1, 1, 1)
    out = g(same_z, torch.tensor([0, 1, 2]))
    assert not torch.allclose(out[0], out[1])
    assert not torch.allclose(d(images[:1], y[:1], logits=True), d(images[:1], y[1:2], logits=True))
    kinds = {type(m).__name__ for m in g.modules()} | {type(m).__name__ for m in d.modules()}
    assert {"ConvTranspose2d", "BatchNorm2d", "Conv2d", "LeakyReLU", "Tanh", "Embedding"} <= kinds


def test_each_step_gets_the_classes_of_its_real_images_and_asks_g_for_them(tmp_path, monkeypatch):
    seen = []
    real_step = gan_module.Gan.train_step

    def recording(self, real, classes=None):
        seen.append((real.clone(), None if classes is None else classes.clone()))
        return real_step(self, real, classes)

    monkeypatch.setattr(gan_module.Gan, "train_step", recording)
    engine = Engine(conditional(max_steps=5), tmp_path / "run", explicit=EXPLICIT)
    events = list(engine.run())
    assert not [e for e in events if isinstance(e, ev.Error)]
    assert engine.config.class_names == DIGITS
    cfg = engine.config
    expected = list(engine.data.epoch_labelled_batches(cfg.seed, 0, 0, cfg.batch_size))[:5]
    assert len(seen) == 5
    for (real, classes), (want_real, want_classes) in zip(seen, expected):
        assert classes is not None and classes.dtype == torch.long
        assert torch.equal(real, want_real) and torch.equal(classes, want_classes)
    assert len({int(c) for _, classes in seen for c in classes}) > 5  # a mix of digits, not one


def test_a_conditional_run_keeps_its_classes_and_resumes_exactly(tmp_path):
    whole = Engine(conditional(max_steps=6), tmp_path / "whole", explicit=EXPLICIT)
    list(whole.run())
    half = Engine(conditional(max_steps=3), tmp_path / "half", explicit=EXPLICIT)
    list(half.run())
    state = load_checkpoint(tmp_path / "half")
    assert state["config"]["conditional"] and state["config"]["class_names"] == DIGITS
    assert 'class_names = ["0", "1", "2"' in (tmp_path / "half" / "config.toml").read_text()
    resumed = Engine(conditional(max_steps=6), tmp_path / "half", explicit=EXPLICIT, resume=state)
    list(resumed.run())
    for a, b in zip(whole.gan.netG.state_dict().values(), resumed.gan.netG.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(whole.gan.netD.state_dict().values(), resumed.gan.netD.state_dict().values()):
        assert torch.equal(a, b)


def test_samples_and_grids_have_a_row_per_class_named(tmp_path):
    engine = Engine(conditional(max_images=32, epochs=1), tmp_path / "run", explicit=EXPLICIT)
    events = list(engine.run())
    samples = [e for e in events if isinstance(e, ev.Samples)]
    assert samples and samples[-1].classes == list(range(10))
    assert tuple(samples[-1].images.shape) == (10 * SAMPLE_COLUMNS, 3, 16, 16)
    (end,) = [e for e in events if isinstance(e, ev.EpochEnd)]
    with Image.open(end.sample_path) as grid:
        assert grid.text[ROWS_CHUNK].split("\n") == DIGITS
        assert grid.height == 2 + 10 * 18 and grid.width > 2 + SAMPLE_COLUMNS * 18  # the names' margin
    # each column is one z across the classes: the rows differ only by class
    gan = engine.gan
    rows = gan.samples().view(10, SAMPLE_COLUMNS, 3, 16, 16)
    assert not torch.equal(rows[0], rows[1])


def test_show_classes_moves_the_rows_and_wraps(tmp_path):
    engine = Engine(conditional(max_steps=1), tmp_path / "run", explicit=EXPLICIT)
    list(engine.run())
    gan = engine.gan
    gan_rows = gan.row_classes
    assert gan.show_classes(7) is None and gan_rows() == [7, 8, 9, 0, 1, 2, 3, 4, 5, 6]
    assert gan.show_classes(13) is None and gan_rows()[0] == 3
    plain = Engine(tiny_config(max_steps=1), tmp_path / "plain", explicit=EXPLICIT)
    list(plain.run())
    assert "no classes" in plain.gan.show_classes(1) and plain.gan.row_classes() == []


def test_the_quality_metric_asks_for_the_real_subsets_classes(tmp_path, monkeypatch):
    asked = []
    real_generate = generate

    def recording(net, z, classes=None):
        asked.append(classes)
        return real_generate(net, z, classes)

    from tui_gan.engine import quality

    monkeypatch.setattr(quality, "generate", recording)
    engine = Engine(conditional(max_images=64, epochs=1, quality_images=32), tmp_path / "run", explicit=EXPLICIT)
    events = list(engine.run())
    # and each class is measured against its own real images: the mean and the worst in the log line
    quality = [e for e in events if isinstance(e, ev.Quality)][-1]
    labels = engine.data.subset_labels(32, engine.config.seed).tolist()
    measured = [c for c in range(10) if labels.count(c) >= 2]
    assert len(quality.class_swd) == 10 and measured
    assert all((swd == swd) == (c in measured) for c, swd in enumerate(quality.class_swd))  # NaN: too few images
    from tui_gan.core.report import Report

    report = Report()
    report.observe([e for e in events if isinstance(e, ev.Started)][0])
    assert "per class SWD" in report.lines(quality)[0].text and "worst (" in report.lines(quality)[0].text
    assert asked and all(c is not None for c in asked)
    want = engine.data.subset_labels(32, engine.config.seed).cpu()
    per_measurement = 32 // engine.config.batch_size  # in batches; measured at the start and the epoch's end
    measurements = [torch.cat(asked[i:i + per_measurement]).cpu() for i in range(0, len(asked), per_measurement)]
    assert len(measurements) >= 2 and all(torch.equal(m, want) for m in measurements)


@pytest.fixture(scope="module")
def conditional_checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("cond") / "run"
    list(Engine(conditional(max_steps=2), run, explicit=EXPLICIT).run())
    return run


def test_sample_draws_one_class_or_a_row_per_class(conditional_checkpoint, tmp_path, capsys):
    run = conditional_checkpoint
    assert main(["sample", str(run), "--class", "7", "--n", "5", "--out-dir", str(tmp_path / "sevens")]) == 0
    files = sorted((tmp_path / "sevens").iterdir())
    assert len(files) == 5 and all(f.name.endswith("-7.png") for f in files)
    assert "of class '7'" in capsys.readouterr().out
    assert main(["sample", str(run), "--per-class", "3", "--out", str(tmp_path / "grid.png")]) == 0
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.text[ROWS_CHUNK].split("\n") == DIGITS and grid.height == 2 + 10 * 18
    assert "a row per class (10)" in capsys.readouterr().out


def test_sampling_a_class_is_the_generator_asked_for_it(conditional_checkpoint):
    from tui_gan.engine.sampling import generator_from_checkpoint, sample_images

    state = load_checkpoint(conditional_checkpoint)
    net = generator_from_checkpoint(state, torch.device("cpu"))
    sevens = sample_images(net, 4, 0, torch.device("cpu"), torch.full((4,), 7))
    twos = sample_images(net, 4, 0, torch.device("cpu"), torch.full((4,), 2))
    assert sevens.shape == (4, 3, 16, 16) and not torch.equal(sevens, twos)


@pytest.mark.parametrize("argv, message", [
    (["--class", "cat"], "--class 'cat': .* has no such class; it has 0, 1, 2, 3, 4, 5, 6, 7, 8, 9"),
])
def test_sample_names_the_classes_a_checkpoint_has(conditional_checkpoint, tmp_path, capsys, argv, message):
    assert main(["sample", str(conditional_checkpoint), *argv, "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.search(message, err), err


def test_class_flags_on_an_unconditional_checkpoint_are_one_line_errors(tmp_path, capsys):
    run = tmp_path / "plain"
    list(Engine(tiny_config(max_steps=1), run, explicit=EXPLICIT).run())
    for flag in (["--class", "7"], ["--per-class", "2"]):
        assert main(["sample", str(run), *flag, "--out", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "is not a conditional run" in err


def test_resume_cannot_switch_conditional_on_or_off(tmp_path, capsys):
    run = tmp_path / "plain"
    list(Engine(tiny_config(max_steps=1), run, explicit=EXPLICIT).run())
    assert main(["--headless", "--resume", str(run), "--conditional"]) == 2
    assert "--conditional cannot change a resumed run" in capsys.readouterr().err
    cond = tmp_path / "cond"
    list(Engine(conditional(max_steps=1), cond, explicit=EXPLICIT).run())
    assert main(["--headless", "--resume", str(cond), "--no-conditional"]) == 2
    assert "--conditional cannot change a resumed run" in capsys.readouterr().err


def test_an_unconditional_run_is_untouched(tmp_path):
    """The tutorial's nets, no classes in its events or config."""
    engine = Engine(tiny_config(max_steps=2), tmp_path / "run", explicit=EXPLICIT)
    events = list(engine.run())
    assert type(engine.gan.netG).__name__ == "Generator" and engine.config.class_names is None
    assert all(e.classes is None for e in events if isinstance(e, ev.Samples))


def test_a_corrupt_conditional_checkpoint_without_classes_is_refused(conditional_checkpoint, tmp_path, capsys):
    state = torch.load(conditional_checkpoint / "checkpoints" / "last.pt", weights_only=True)
    state["config"]["class_names"] = None
    torch.save(state, tmp_path / "bad.pt")
    assert main(["sample", str(tmp_path / "bad.pt"), "--out", str(tmp_path / "x.png")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1



def test_ls_says_which_runs_are_conditional_and_how_many_classes(tmp_path, capsys):
    list(Engine(conditional(max_steps=1), tmp_path / "runs" / "cond", explicit=EXPLICIT).run())
    list(Engine(tiny_config(max_steps=1), tmp_path / "runs" / "plain", explicit=EXPLICIT).run())
    assert main(["ls", str(tmp_path / "runs")]) == 0
    lines = {line.split()[0].rsplit("/", 1)[-1]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["cond"].rstrip().endswith("conditional, 10 classes")
    assert "conditional" not in lines["plain"]


@pytest.mark.one_python
def test_nproc_2_conditional_ranks_agree_and_resume_exactly(tmp_path):
    """Two gloo ranks, each on its rows of the batch and their classes: a run straight
    through and one stopped and resumed (both with two processes) end with the same weights,
    and a one-process run takes the checkpoint."""
    from .conftest import TINY
    from .test_distributed import checkpoint, tui_gan

    straight, split = tmp_path / "straight", tmp_path / "split"
    done = tui_gan(*TINY, "--conditional", "--headless", "--nproc", "2", "--max-steps", "6", "--run-dir", str(straight))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "conditional on 10 classes" in done.stdout or "conditional on 10 classes" in (straight / "train.log").read_text()
    assert tui_gan(*TINY, "--conditional", "--headless", "--nproc", "2", "--max-steps", "3",
                   "--run-dir", str(split)).returncode == 0
    resumed = tui_gan("--headless", "--nproc", "2", "--resume", str(split), "--max-steps", "6")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = checkpoint(straight / "checkpoints" / "last.pt"), checkpoint(split / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 6 and a["config"]["class_names"] == DIGITS
    for net in ("generator", "discriminator"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net] if "running" not in k)
    one = tui_gan("--headless", "--resume", str(split), "--max-steps", "8")
    assert one.returncode == 0 and checkpoint(split / "checkpoints" / "last.pt")["step"] == 8, one.stderr[-2000:]


def test_conditional_data_without_classes_is_refused_before_anything_starts(tmp_path, capsys):
    flat, single = tmp_path / "flat", tmp_path / "single" / "only"
    flat.mkdir()
    single.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(flat / f"{i}.png")
        Image.new("RGB", (8, 8), (0, 40 * i, 0)).save(single / f"{i}.png")
    for data, message in ((flat, "put each class's images in a subfolder"), (single.parent, "two or more classes"),
                          ("celeba", "40 yes/no attributes")):
        assert main(["--headless", "--conditional", "--data", str(data), "--run-dir", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert not (tmp_path / "r").exists()


def test_ema_and_augment_train_a_conditional_run_and_resume_exactly(tmp_path):
    """--ema averages the conditional generator (its class embeddings too) and shows it;
    --augment transforms what D sees and leaves the classes as they are."""
    options = dict(ema=True, augment=True)
    whole = Engine(conditional(max_steps=4, **options), tmp_path / "whole", explicit=EXPLICIT)
    events = list(whole.run())
    assert not [e for e in events if isinstance(e, ev.Error)]
    average = whole.gan.ema.model
    assert type(average).__name__ == "ConditionalGenerator"
    assert not torch.equal(average.norms[0].gain.weight, whole.gan.netG.norms[0].gain.weight)
    assert [e.generator for e in events if isinstance(e, ev.Samples)][-1] == "average"
    half = Engine(conditional(max_steps=2, **options), tmp_path / "half", explicit=EXPLICIT)
    list(half.run())
    resumed = Engine(conditional(max_steps=4, **options), tmp_path / "half", explicit=EXPLICIT,
                     resume=load_checkpoint(tmp_path / "half"))
    list(resumed.run())
    for a, b in zip(whole.gan.netG.state_dict().values(), resumed.gan.netG.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(average.state_dict().values(), resumed.gan.ema.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_class_is_drawn_in_batches_of_mixed_classes_as_training_draws(conditional_checkpoint, monkeypatch):
    """With batch statistics, a batch of one class alone is normalised as no training batch
    was: each batch holds a few images of the class asked for among every other class."""
    from tui_gan.engine import sampling

    state = load_checkpoint(conditional_checkpoint)
    net = sampling.generator_from_checkpoint(state, torch.device("cpu"))
    batches = []
    real = sampling.generate
    monkeypatch.setattr(sampling, "generate", lambda g, z, y=None: batches.append(y.clone()) or real(g, z, y))
    sevens = sampling.sample_images(net, 20, 3, torch.device("cpu"), torch.full((20,), 7))
    assert sevens.shape == (20, 3, 16, 16) and len(batches) == 4  # 6 asked a batch of 64 with 10 classes
    assert all(len(b) == sampling.SAMPLE_BATCH and set(b.tolist()) == set(range(10)) for b in batches)
    assert sum(int((b[:6] == 7).sum()) for b in batches) >= 20
    monkeypatch.setattr(sampling, "generate", real)
    assert torch.equal(sevens, sampling.sample_images(net, 20, 3, torch.device("cpu"), torch.full((20,), 7)))
