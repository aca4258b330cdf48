"""The tui-gan command: bad input, headless end to end, signals, resume, sample."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tui_gan.cli import main

TINY = ["--image-size", "16", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "16",
        "--max-images", "224", "--device", "cpu", "--headless"]


def run_cli(args, timeout=120, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "tui_gan", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)


def _one_line_error(capsys, code):
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tui-gan: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--lr", "0"], "--lr"),
        (["--lr-g", "nan"], "--lr-g"),
        (["--lr-d", "-1"], "--lr-d"),
        (["--lr", "inf"], "finite"),
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "abc"], "--batch-size"),
        (["--epochs", "-3"], "--epochs"),
        (["--nz", "0"], "--nz"),
        (["--ngf", "1.5"], "--ngf"),
        (["--ndf", "-8"], "--ndf"),
        (["--image-size", "48"], "not supported"),
        (["--channels", "2"], "--channels"),
        (["--channels", "rgb"], "--channels"),
        (["--image-size", "512"], "not supported"),
        (["--max-steps", "0"], "--max-steps"),
        (["--beta1", "1.5"], "--beta1"),
        (["--device", "tpu"], "unknown device"),
        (["--device", "cuda:x"], "unknown device"),
        (["--data", "/definitely/not/here"], "no such file"),
        (["--no-such-flag"], "unrecognized"),
        (["--resume", "/definitely/not/here"], "no such checkpoint"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, expected):
    line = _one_line_error(capsys, main(args + ["--headless"]))
    assert expected in line


def test_bad_data_folders(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no image files" in _one_line_error(capsys, main(["--data", str(empty), "--headless"]))
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"")
    (junk / "b.jpg").write_bytes(b"not a jpeg")
    code = main(["--data", str(junk), "--run-dir", str(tmp_path / "r"), *TINY])
    assert "could be read" in _one_line_error(capsys, code)


def test_unavailable_device(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code = main(["--device", "cuda", "--run-dir", str(tmp_path / "r"), "--headless"])
    assert "CUDA is not available" in _one_line_error(capsys, code)


def test_unwritable_run_dir(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["--run-dir", str(blocker / "run"), *TINY])
    assert "cannot write the run directory" in _one_line_error(capsys, code)


def test_corrupt_resume_and_sample_checkpoints(capsys, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    assert "not a readable" in _one_line_error(capsys, main(["--resume", str(bad), "--headless"]))
    assert "not a readable" in _one_line_error(capsys, main(["sample", str(bad), "--out", str(tmp_path / "g.png")]))
    assert "no such checkpoint" in _one_line_error(capsys, main(["sample", str(tmp_path / "nope.pt"), "--out", "x.png"]))
    assert "required" in _one_line_error(capsys, main(["sample", str(bad)]))


def test_bad_config_file(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("lr_g = -1.0\n")
    assert "lr_g" in _one_line_error(capsys, main(["--config", str(cfg), "--headless"]))


def test_headless_end_to_end_resume_and_sample(tmp_path, capsys):
    """A run, its resume and a run of its config.toml as the command runs them, each in a
    process of its own; a refused change and `sample` in this one (an interpreter each would
    be seconds of loading torch)."""
    run = tmp_path / "run"
    result = run_cli([*TINY, "--epochs", "1", "--run-dir", str(run), "--log-every", "0.01"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "training on cpu" in out
    assert "loss_D" in out and "D(x)" in out and "img/s" in out and "ETA" in out
    assert "epoch 1/1 done at step 14" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("finished (completed): 14 steps") and "last.pt" in last
    assert (run / "checkpoints" / "last.pt").is_file()

    # resume with a longer run: settings from the checkpoint, a new total; the data may
    # be streamed this time
    result = run_cli(["--resume", str(run), "--epochs", "2", "--headless", "--log-every", "60", "--stream"])
    assert result.returncode == 0, result.stderr
    assert "resumed from step 14" in result.stdout
    assert "streamed from the decode cache by" in result.stdout
    assert "finished (completed): 28 steps" in result.stdout
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 28 and state["epoch"] == 2

    # settings other than length / learning rates cannot change on resume
    code = main(["--resume", str(run), "--image-size", "32", "--headless"])
    assert "cannot change a resumed run" in _one_line_error(capsys, code)

    # config.toml of the run is a valid --config (in a process of its own: it streams, as the
    # resume did, and DataLoader's workers are forked, which this threaded process should not do)
    result = run_cli(["--config", str(run / "config.toml"), "--max-steps", "2", "--run-dir", str(tmp_path / "again"),
                      "--headless"])
    assert result.returncode == 0, result.stderr
    assert "finished (max steps): 2 steps" in result.stdout

    grid = tmp_path / "grid.png"
    assert main(["sample", str(run), "--n", "10", "--seed", "3", "--out", str(grid)]) == 0
    from PIL import Image

    assert Image.open(grid).size == (2 + 4 * 18, 2 + 3 * 18)  # 10 tiles: 4 columns x 3 rows
    singles = tmp_path / "singles"
    assert main(["sample", str(run / "checkpoints" / "last.pt"), "--n", "3", "--out-dir", str(singles)]) == 0
    files = sorted(p.name for p in singles.iterdir())
    assert files == ["sample-0000.png", "sample-0001.png", "sample-0002.png"]
    assert Image.open(singles / files[0]).size == (16, 16)


def test_sample_is_deterministic_by_seed(tmp_path):
    from tui_gan.engine.checkpoint import load_checkpoint
    from tui_gan.engine.engine import Engine
    from tui_gan.engine.sampling import generator_from_checkpoint, sample_images

    from .conftest import EXPLICIT, tiny_config

    engine = Engine(tiny_config(max_steps=1), tmp_path / "r", explicit=EXPLICIT)
    list(engine.run())
    g = generator_from_checkpoint(load_checkpoint(tmp_path / "r"), torch.device("cpu"))
    a = sample_images(g, 5, 1, torch.device("cpu"))
    b = sample_images(g, 5, 1, torch.device("cpu"))
    c = sample_images(g, 5, 2, torch.device("cpu"))
    assert a.shape == (5, 3, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)
    assert sample_images(g, 70, 1, torch.device("cpu")).shape[0] == 70


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_signals_save_last_checkpoint(tmp_path, sig):
    """Each stop signal saves last.pt first, and the run's record says it stopped there."""
    from tui_gan.core.rundir import RunDir
    from tui_gan.service.runfiles import ServiceRecord

    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tui_gan", *TINY, "--epochs", "1000", "--run-dir", str(run),
                             "--log-every", "0.01"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # wait until training is under way
        deadline = time.time() + 60
        for line in proc.stdout:
            if line.startswith("epoch "):
                break
            assert time.time() < deadline
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    signum = getattr(signal, sig)
    assert proc.returncode == 128 + signum, err
    record = ServiceRecord.read(RunDir(run))
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert record.state == "stopped" and state["step"] == record.step > 0
    if sig != "SIGHUP":
        assert "finished" in out


def test_speed_flags_can_be_turned_off_on_resume(tmp_path):
    """--amp, --compile, --cudnn-benchmark and --fused-adam have --no-* forms, so a run that
    used them can resume where they are unavailable or slower (another device, say)."""
    from tui_gan.commands.flags import prepare_training, train_parser

    run = tmp_path / "run"
    assert main([*TINY, "--max-steps", "2", "--run-dir", str(run), "--fused-adam", "--cudnn-benchmark"]) == 0
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["config"]
    assert saved["fused_adam"] is True and saved["cudnn_benchmark"] is True
    flags = ["--resume", str(run), "--no-fused-adam", "--no-cudnn-benchmark", "--no-amp", "--no-compile"]
    args = vars(train_parser().parse_args(flags))
    assert {k: args[k] for k in ("fused_adam", "cudnn_benchmark", "amp", "compile")} == dict.fromkeys(
        ("fused_adam", "cudnn_benchmark", "amp", "compile"), False)
    engine = prepare_training(args, run)
    assert not engine.config.fused_adam and not engine.config.cudnn_benchmark
    assert "amp" not in vars(train_parser().parse_args([]))  # absent stays absent: the checkpoint's value


def test_resume_message_lists_every_setting_a_resume_may_change():
    import re

    from tui_gan.commands.flags import RESUME_OVERRIDABLE, resume_flags, train_parser

    flags = {f.replace("[no-]", "") for f in re.findall(r"--(?:\[no-\])?[a-z-]+", resume_flags())}
    listed = {a.dest for a in train_parser()._actions if set(a.option_strings) & flags}
    assert listed - {"lr"} == RESUME_OVERRIDABLE
    assert "--[no-]fused-adam" in resume_flags() and resume_flags().endswith(" and --device")


def test_the_launched_processes_get_the_flags_without_the_launchers_own():
    from tui_gan.commands.flags import without_flags
    from tui_gan.launch import LAUNCH_FLAGS

    argv = ["--npro", "2", "--master-port=29500", "--epochs", "3", "--run-dir", "runs/x", "--data", "builtin"]
    assert without_flags(argv, LAUNCH_FLAGS) == ["--epochs", "3", "--data", "builtin"]


def test_help_lists_the_other_commands_from_the_one_table(capsys):
    from tui_gan.cli import COMMANDS

    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    for name, command in COMMANDS.items():
        assert f"tui-gan {name}" in help_text and command.description in help_text


def test_the_service_entry_point_takes_the_training_flags_and_needs_its_run_dir(capsys):
    """`python -m tui_gan.service` is started by the app with --run-dir; without it, or with a
    bad flag, it says so in one line (the line the app shows from train.log)."""
    from tui_gan.service.main import main as service_main

    assert "--run-dir" in _one_line_error(capsys, service_main(["--epochs", "2"]))
    assert "unrecognized" in _one_line_error(capsys, service_main(["--no-such-flag", "--run-dir", "x"]))
