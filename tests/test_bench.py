"""`tui-gan bench` runs both loops (a smoke test: two steps, no timing asserted)."""

from __future__ import annotations

import pytest
import torch

from tui_gan.cli import main

from .conftest import spy

# Which tests CI runs on one Python (.ci/run): the loops' timing and the precision each runs in
# are torch's, and .ci/gpu-bench is bash. The plain bench run (its process pool, both loops, the
# table) and the app's bench run on every Python.
ONE_PYTHON = pytest.mark.one_python


@pytest.mark.parametrize("extra", [[], pytest.param(["--amp"], marks=ONE_PYTHON),
                                   pytest.param(["--no-amp"], marks=ONE_PYTHON)])
def test_bench_runs_both_loops_and_prints_the_ratio(capsys, extra):
    """... and says which precision the engine ran in: bf16 with --amp, fp32 with --no-amp,
    and without either what this CPU has (its features, as torch reports them)."""
    from tui_gan.engine.devices import native_bf16

    code = main(["bench", "--image-size", "16", "--batch-size", "8", "--ngf", "8", "--ndf", "8",
                 "--steps", "2", "--warmup", "1", "--images", "64", "--device", "cpu", "--rounds", "2", *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0].startswith("tui-gan bench · cpu · 16x16 · batch 8") and "2 round(s) of 2 timed steps" in lines[0]
    auto = "bf16" if native_bf16(torch.device("cpu")) else "fp32"
    expected = {(): f"engine in {auto} (auto: ", ("--amp",): "engine in bf16 (--amp)",
                ("--no-amp",): "engine in fp32 (--no-amp)"}[tuple(extra)]
    assert expected in lines[0] and lines[0].endswith("tutorial loop in fp32") and "data in memory" in lines[0]
    assert lines[1].startswith("  round 1: tutorial ") and lines[2].startswith("  round 2: tutorial ")
    assert "tutorial loop" in lines[3] and "img/s" in lines[3]
    assert "tui-gan engine" in lines[4] and lines[5].split()[0] == "ratio" and lines[5].endswith("x")


@ONE_PYTHON
def test_bench_without_steps_times_the_steps_the_tutorial_runs_in_seconds(capsys, monkeypatch):
    """The default on a fast device: 10 steps would be a few milliseconds. The first round
    runs the tutorial loop for --seconds (and at least 10 steps); every loop after it times
    that many steps. (How many that is depends on the machine's load, so it is read back.)"""
    from tui_gan.bench import compare as bench

    calls, real = [], bench.tutorial_loop

    def spy(config, images, device, steps, warmup, workers=2, seconds=None):
        rate, done = real(config, images, device, steps, warmup, workers, seconds)
        calls.append((steps, seconds, done))
        return rate, done

    monkeypatch.setattr(bench, "tutorial_loop", spy)
    code = main(["bench", "--image-size", "16", "--batch-size", "8", "--ngf", "8", "--ndf", "8", "--seconds", "1",
                 "--warmup", "1", "--images", "64", "--device", "cpu", "--rounds", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.strip().splitlines()
    assert "2 round(s) of the steps the tutorial loop runs in 1 s (at least 10) after 1 warm-up" in lines[0]
    (first_steps, first_seconds, timed), (second_steps, second_seconds, _) = calls
    assert (first_steps, first_seconds) == (bench.MIN_STEPS, 1) and timed >= bench.MIN_STEPS
    assert lines[1] == f"  {timed} timed steps per loop and round"
    assert (second_steps, second_seconds) == (timed, None)
    assert lines[2].startswith("  round 1: tutorial ") and lines[3].startswith("  round 2: tutorial ")


def _tiny_tutorial():
    """A 16x16 config with batch 8 and 64 built-in images (8 batches a pass), for tutorial_loop."""
    from tui_gan.core.config import TrainConfig
    from tui_gan.data.builtin import make_builtin

    config = TrainConfig(image_size=16, batch_size=8, ngf=8, ndf=8, device="cpu", channels=3)
    return config, torch.from_numpy(make_builtin(64, 16, 0, 3))


@ONE_PYTHON
def test_tutorial_loop_with_seconds_runs_at_least_the_steps_and_the_seconds():
    from tui_gan.bench.tutorial import tutorial_loop

    config, images = _tiny_tutorial()
    rate, steps = tutorial_loop(config, images, torch.device("cpu"), 3, 1, seconds=0.3)
    assert steps >= 3 and steps * 8 / rate >= 0.3  # the timed steps took the seconds asked for
    rate, steps = tutorial_loop(config, images, torch.device("cpu"), 3, 1)
    assert steps == 3 and rate > 0


@ONE_PYTHON
def test_tutorial_loop_starts_no_new_pass_over_the_data_when_its_steps_are_done(monkeypatch):
    """1 + 7 steps of 8 images on 64: one pass. A second would start DataLoader workers
    (with --data) on the clock."""
    from tui_gan.bench.tutorial import tutorial_loop

    passes = spy(monkeypatch, torch.utils.data.DataLoader, "__iter__")
    config, images = _tiny_tutorial()
    assert tutorial_loop(config, images, torch.device("cpu"), 7, 1)[1] == 7 and len(passes) == 1
    assert tutorial_loop(config, images, torch.device("cpu"), 8, 1)[1] == 8 and len(passes) == 3


def test_bench_overall_rate_is_images_over_total_time():
    from tui_gan.bench.compare import _overall

    assert _overall([100.0, 100.0]) == 100.0
    assert _overall([100.0, 50.0]) == pytest.approx(66.667, rel=1e-4)  # equal images: 3 time units for 2


@ONE_PYTHON
def test_bench_runs_past_the_default_epochs(capsys):
    # 16 images in batches of 8: 2 steps an epoch, so 13 steps need more than the 5 default epochs;
    # the 6 epoch ends after the warm-up step (steps 2 to 12) are left off the engine's clock, and it says so
    assert main(["bench", "--image-size", "16", "--batch-size", "8", "--ngf", "8", "--ndf", "8",
                 "--steps", "12", "--warmup", "1", "--images", "16", "--device", "cpu", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "ratio" in out and "the engine's clock stopped for 6 epoch end(s) in its timed steps" in out


def test_bench_bad_input_is_one_line(capsys):
    assert main(["bench", "--images", "10", "--batch-size", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fewer than one batch" in err[0]
    for bad in (["--steps", "0"], ["--image-size", "48"], ["--phase", "-1"]):  # the project's one-line errors
        assert main(["bench", *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("tui-gan: error: ") and "tui-gan bench --help" in err[0]


@ONE_PYTHON
def test_bench_on_a_folder_of_jpegs(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "faces" / "all"  # the tutorial's layout: one class subfolder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (30, 20, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    code = main(["bench", "--data", str(tmp_path / "faces"), "--image-size", "16", "--batch-size", "8",
                 "--ngf", "8", "--ndf", "8", "--steps", "2", "--warmup", "1", "--device", "cpu", "--rounds", "1",
                 "--no-channels-last"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"data {tmp_path / 'faces'}" in out and "ratio" in out and "engine with --no-channels-last" in out


def test_screen_ab_compares_updating_and_frozen_stretches():
    from tui_gan.bench.screen_ab import ScreenAB

    now = [0.0]
    ab = ScreenAB(phase=10.0, clock=lambda: now[0])
    assert ab.updating()  # before the start: draw
    ab.start()
    step = 0
    for tick in range(80):  # 40 s: 4 stretches of 10 s, reports every 0.5 s
        now[0] = tick * 0.5
        step += 10 if ab.updating() else 12  # 20 steps/s updating, 24 frozen
        ab.record(step)
    result = ab.result()
    assert result.stretches == 2  # the first and last are dropped
    assert abs(result.ratio - 20 / 24) < 0.02


@pytest.mark.parametrize("steps", [1, 31, 32, 33, 1500])
def test_bench_app_mode_shows_the_epochs_its_steps_take(steps):
    from tui_gan.bench.app_cost import app_bench_config
    from tui_gan.core.config import TrainConfig

    cfg = app_bench_config(TrainConfig(batch_size=64, max_images=2048), steps)  # 32 steps an epoch
    assert cfg.max_steps == steps and cfg.quality_images == 0
    assert (cfg.epochs - 1) * 32 < steps <= cfg.epochs * 32  # enough epochs, and no more
    folder = app_bench_config(TrainConfig(batch_size=64, data="/some/folder"), steps)
    assert folder.epochs == steps  # image count unknown until loaded: max_steps ends the run


def test_bench_app_mode_runs_the_app(capsys):
    from tui_gan.bench.app_cost import app_bench
    from tui_gan.core.config import TrainConfig

    config = TrainConfig(image_size=16, batch_size=8, ngf=8, ndf=8, nz=16, max_images=64, device="cpu",
                         progress_interval=0.02, sample_interval=0.2)
    assert app_bench(config, steps=120, phase=0.3, explicit={"image_size", "batch_size", "ngf", "ndf", "lr_g", "lr_d", "epochs"},
                     size=(100, 30)) == 0
    out = capsys.readouterr().out
    assert "screen updating" in out and "screen frozen" in out and "ratio" in out


async def test_bench_app_keeps_progress_and_samples_from_its_screen_in_a_frozen_stretch(serve):
    from tui_gan.bench.app_cost import frozen_in_stretches
    from tui_gan.bench.screen_ab import ScreenAB
    from tui_gan.data.builtin import make_builtin

    from .app_support import ScriptedEngine, quit_app, wait_until

    times = iter([0.0])
    ab = ScreenAB(10.0, clock=lambda: next(times, 15.0))  # started at 0 s, then always in a frozen stretch
    engine = ScriptedEngine(samples=make_builtin(4, 16, seed=1))
    app = frozen_in_stretches(ab)(serve(engine, for_app=True).viewer, run_name="bench")
    async with app.run_test(size=(100, 30)) as pilot:
        view = app.training_screen.view
        await wait_until(pilot, lambda: view.started is not None, what="the run's start")
        await pilot.pause(0.5)
        assert view.progress is None and view.samples is None  # both were sent; neither reached the screen
        await quit_app(pilot, app)


GPU_BENCH_ROWS = 6  # bench runs in .ci/gpu-bench
QUALITY_RUNS = 3  # its bf16-against-TF32 runs
HEADLESS_RUNS = 4  # its CUDA path checks (train, resume; a CPU run, resumed on the device)


def _gpu_bench(tmp_path, **env):
    """Run .ci/gpu-bench with a stand-in for python3 whose `tui_gan` commands print canned
    results, as do its two probes of torch (versions, GPU count: a machine without GPUs; each
    would import torch, seconds a run). The script's own Python, which builds the tables and
    the JPEGs, runs for real."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    stub = tmp_path / "py"
    stub.write_text(
        "#!/bin/sh\n"
        'case "$1 $2 $3" in\n'
        '  "-m tui_gan bench") echo "bench $*";'
        ' echo "tui-gan bench · cuda:0 · engine in bf16 (auto: compute capability 9.0), tutorial loop in tf32";'
        ' echo "  tutorial loop      1,234 img/s";'
        ' echo "  tui-gan engine     5,678 img/s"; echo "  ratio               4.60x";;\n'
        '  "-m tui_gan --headless") echo "headless $*";'
        ' echo "epoch 1/5 step 2/100 | loss_D 1.0 | 9 img/s | ETA 1s | GPU 1.2/79.3 GiB · 97% busy";;\n'
        '  "-c "*torch.cuda.get_device_name*) echo "python 3 · torch (stand-in)"; echo "cuda False";;\n'
        '  "-c "*torch.cuda.device_count*) echo 0;;\n'
        f'  *) exec "{sys.executable}" "$@";;\n'
        "esac\n")
    stub.chmod(0o755)
    script = Path(__file__).resolve().parents[1] / ".ci" / "gpu-bench"
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHON": str(stub), "OUT": str(out), "IMAGES": "3", **env})
    return done, out


def _table(path):
    """The rows of a markdown table in ``path`` (after its header and rule), and the header."""
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("| "))
    return lines[at], lines[at + 2:]


@ONE_PYTHON
def test_gpu_bench_script_runs_every_check_and_tabulates_them(tmp_path):
    done, out = _gpu_bench(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    log = (out / "log.txt").read_text()
    assert log.count("headless -m tui_gan --headless") == HEADLESS_RUNS + QUALITY_RUNS
    assert log.count("headless -m tui_gan --headless --resume") == 2
    benches = [line for line in log.splitlines() if line.startswith("bench -m tui_gan bench --device cuda")]
    assert len(benches) == GPU_BENCH_ROWS
    assert sum("--data" in b for b in benches) == 1 and sum("--compile" in b for b in benches) == 1
    assert "3 JPEGs in" in log and not (out / "jpegs").exists()  # made for the folder run, then removed
    assert (out / "results.md").read_text().startswith("python ")  # the machine: python, torch, cuDNN
    header, rows = _table(out / "results.md")
    assert header == "| setting | precision: engine / tutorial loop | tutorial loop | tui-gan engine | ratio |"
    assert len(rows) == GPU_BENCH_ROWS
    assert all(row.endswith("| bf16 / tf32 | 1,234 img/s | 5,678 img/s | 4.60× |") for row in rows)
    limits = [int(line.rsplit("[at most ", 1)[1][:-2]) for line in log.splitlines() if "[at most " in line]
    assert len(limits) == HEADLESS_RUNS + QUALITY_RUNS + GPU_BENCH_ROWS + 1 and max(limits) <= 600  # + the JPEGs
    # bf16, TF32 and exact fp32 each have a row
    precisions = [(" --amp" in b, "--no-amp" in b, "--no-tf32" in b) for b in benches]
    assert precisions[:3] == [(False, False, False), (False, True, False), (False, True, True)]
    assert sum(amp for amp, _, _ in precisions) == 2
    quality = (out / "quality.md").read_text().splitlines()
    assert quality[0] == "| quality run | the last measurement |" and len(quality) == 2 + QUALITY_RUNS
    assert "bf16 (--amp), seed 999" in quality[2] and "no quality line" in quality[2]  # the stand-in trains nothing
    assert "needs two or more" in (out / "scaling.md").read_text()  # no GPU here
    assert done.stdout.rstrip().endswith(quality[-1])  # the tables come last, on the terminal too


@ONE_PYTHON
def test_gpu_bench_script_measures_scaling_over_the_gpus_it_has(tmp_path):
    done, out = _gpu_bench(tmp_path, NGPUS="4")
    runs = [line for line in (out / "log.txt").read_text().splitlines() if line.startswith("headless ")]
    nproc = [line.split("--nproc ")[1].split()[0] for line in runs if "--nproc" in line]
    assert nproc == ["1", "4", "4", "1"]  # one process, one per GPU, again with --sync-bn, then one resumes
    assert [("--sync-bn" in line) for line in runs if "--nproc" in line] == [False, False, True, False]
    assert f"--resume {out}/run-n4 --nproc 1" in runs[-QUALITY_RUNS - 1]
    rows = (out / "scaling.md").read_text().splitlines()
    assert rows[0] == "| processes | training images/s |" and [r.split(" |")[0] for r in rows[2:]] == ["| 1", "| 4", "| 4, --sync-bn"]


@ONE_PYTHON
def test_gpu_bench_script_cuts_steps_off_at_the_deadline(tmp_path):
    done, out = _gpu_bench(tmp_path, DEADLINE="100")
    log = (out / "log.txt").read_text()
    limits = [int(line.rsplit("[at most ", 1)[1][:-2]) for line in log.splitlines() if "[at most " in line]
    assert limits and all(30 <= limit <= 100 for limit in limits)  # 150 s asked for each bench
    assert not [line for line in log.splitlines() if "--compile" in line and "[at most " in line]  # needs 150 s
    assert done.returncode == 1 and "--compile (1 round) | | skipped: out of time" in (out / "results.md").read_text()


@ONE_PYTHON
def test_gpu_bench_script_skips_what_the_deadline_leaves_no_time_for(tmp_path):
    done, out = _gpu_bench(tmp_path, DEADLINE="20")  # a step starts only with 30 s or more left
    assert done.returncode == 1
    assert (out / "log.txt").read_text().count("-- skipped, out of time") == HEADLESS_RUNS + QUALITY_RUNS + 1
    _, rows = _table(out / "results.md")
    assert len(rows) == GPU_BENCH_ROWS and all("skipped" in row for row in rows)


@ONE_PYTHON
def test_the_engine_is_timed_over_its_training_only_never_over_an_epoch_end(monkeypatch):
    """16 images in batches of 8: an epoch ends every 2 steps, at steps 2, 4, 6 and 8 of the
    9 (1 warm-up, 8 timed), each with a sample grid and last.pt written. The tutorial loop
    writes nothing, so none of those writes may fall on the engine's clock: it runs in five
    stretches, stopped for each epoch's end."""
    import time

    from tui_gan.bench.compare import TUTORIAL_SETTINGS, engine_loop
    from tui_gan.core.config import TrainConfig
    from tui_gan.engine import checkpoint, outputs

    writes = []

    def timed(real):
        def write(*args, **kwargs):
            started = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                writes.append((started, time.perf_counter()))
        return write

    monkeypatch.setattr(checkpoint.CheckpointWriter, "save", timed(checkpoint.CheckpointWriter.save))
    monkeypatch.setattr(outputs, "save_grid", timed(outputs.save_grid))
    config = TrainConfig(image_size=16, batch_size=8, ngf=8, ndf=8, device="cpu", max_images=16, channels=3)
    timing = engine_loop(config, 8, 1, set(TUTORIAL_SETTINGS))
    first, last = timing.stretches[0][0], timing.stretches[-1][1]
    assert timing.images == 64 and timing.epoch_ends == 4 and len(timing.stretches) == 5
    assert len([w for w in writes if first < w[0] < last]) == 8  # a grid and last.pt at each epoch's end
    on_the_clock = [(w, s) for w in writes for s in timing.stretches if w[0] < s[1] and w[1] > s[0]]
    assert not on_the_clock
    assert timing.rate == pytest.approx(64 / sum(stop - start for start, stop in timing.stretches))
