"""Several processes (engine/world.py, engine/lockstep.py, launch.py): real gloo ranks on
the CPU, each a fresh interpreter, with short timeouts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from tui_gan.cli import main
from tui_gan.core import events as ev
from tui_gan.core.rundir import RunDir
from tui_gan.engine.world import World
from tui_gan.service.client import RemoteRun, connect_to_run

WORKER = Path(__file__).with_name("distributed_worker.py")
ROOT = Path(__file__).resolve().parents[1]


# Which tests CI runs on one Python (.ci/run): ranks' weights equal to one another's and to one
# process's, a resume across world sizes, and gloo's collective timeout are torch's. The launcher
# (a killed rank, the app finding rank 0's service) and the one-process path run on every Python.
ONE_PYTHON = pytest.mark.one_python


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_ranks(tmp_path: Path, ranks: int, steps: int, batch_size: int, variant: str = "") -> list[dict]:
    """Run tests/distributed_worker.py as ``ranks`` processes; each rank's saved state."""
    port, procs, outs = free_port(), [], []
    for rank in range(ranks):
        out = tmp_path / f"{variant or 'bn'}-{ranks}-{batch_size}-{rank}.pt"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        if ranks > 1:
            env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(ranks),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(out), str(steps), str(batch_size), variant],
                                      env=env, stderr=subprocess.PIPE, text=True))
        outs.append(out)
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
    return [torch.load(out, weights_only=True) for out in outs]


def test_a_world_of_one_shares_nothing_and_calls_no_collective(monkeypatch):
    """One process: the whole batch, no process group, and the gradients untouched."""
    import torch.distributed as dist

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for name in ("all_reduce", "broadcast", "init_process_group"):
        monkeypatch.setattr(dist, name, lambda *a, **k: pytest.fail("a collective in a world of one"))
    world, device = World.join(torch.device("cpu"))
    assert (world.size, world.rank, world.rows(128), device.type) == (1, 0, None, "cpu")
    net = torch.nn.Linear(3, 2)
    net(torch.ones(4, 3)).sum().backward()
    before = [p.grad.clone() for p in net.parameters()]
    stats = torch.arange(5.0)
    assert world.reduce_gradients(net, 128, stats) is stats
    assert all(torch.equal(a, p.grad) for a, p in zip(before, net.parameters()))


def test_nproc_1_is_the_one_process_engine_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.setenv("TUI_GAN_RUNTIME_DIR", tempfile.mkdtemp(prefix="tg-"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for name, extra in (("plain", []), ("one", ["--nproc", "1"])):
        assert main([*TINY, "--headless", "--max-steps", "5", "--run-dir", str(tmp_path / name), *extra]) == 0
    a, b = (checkpoint(tmp_path / name / "checkpoints" / "last.pt") for name in ("plain", "one"))
    for key in ("generator", "discriminator"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    assert all(torch.equal(x, y) for x, y in zip(a["optimizer_d"]["state"][0].values(), b["optimizer_d"]["state"][0].values()))


@pytest.mark.parametrize("batch_size, size, expected", [
    (128, 2, [(0, 64), (64, 128)]),
    (7, 2, [(0, 4), (4, 7)]),
    (10, 4, [(0, 3), (3, 6), (6, 8), (8, 10)]),
])
def test_shares_cover_the_global_batch_once(batch_size, size, expected):
    shares = [World(rank=r, size=size).share(batch_size) for r in range(size)]
    assert [(s.start, s.stop) for s, _ in shares] == expected
    assert sum(w for _, w in shares) == pytest.approx(1.0)


@ONE_PYTHON
def test_two_ranks_hold_identical_weights_and_roll_back_together(tmp_path):
    """With BatchNorm (each rank normalising its share) and the CPU's fast layers: after 6
    steps both ranks hold the same weights and optimizer moments, bit for bit (BatchNorm's
    running statistics are each rank's own on the CPU; only rank 0's are saved). Then the
    guard rolls rank 0 back (its weights went NaN) to its first state, kept before Adam had
    any, and the others take it (their Adam state emptied too), so all go on alike."""
    a, b = train_ranks(tmp_path, 2, 6, 16, "fast")
    assert len(a["state"]) == len(b["state"]) > 20
    assert all(torch.equal(x, y) for x, y in zip(a["state"], b["state"]))
    assert torch.equal(a["stats"], b["stats"])  # the whole batch's losses, on every rank
    assert len(a["restored"]) == len(b["restored"]) and all(torch.isfinite(x).all() for x in a["restored"])
    assert all(torch.equal(x, y) for x, y in zip(a["restored"], b["restored"]))


@ONE_PYTHON
def test_two_ranks_train_one_process_maths(tmp_path, batch_size=7):  # 7: shares of 4 and 3
    """Without BatchNorm in the way, two ranks on the same global batches end where one
    process does, to float rounding (the sums are taken in another order), also when the
    batch does not divide by the ranks; the noise and augmentation draws stay in step."""
    one = train_ranks(tmp_path, 1, 6, batch_size, "nobn")[0]
    two = train_ranks(tmp_path, 2, 6, batch_size, "nobn")
    for rank in two:
        assert torch.equal(rank["noise"], one["noise"])
        assert torch.allclose(rank["stats"], one["stats"], rtol=1e-4, atol=1e-5)
        for x, y in zip(rank["state"], one["state"]):
            assert torch.allclose(x, y, rtol=1e-4, atol=1e-6), (x - y).abs().max()


@pytest.mark.parametrize("ranks_bn, one_bn", [("syncbn", "syncbn"), ("", "ghost3")], ids=["synchronised", "per-rank"])
def test_three_uneven_shares_train_the_whole_batch_with_batchnorm(tmp_path, ranks_bn, one_bn):
    """128 images over 3 ranks (43, 43, 42), with BatchNorm: synchronised (a CPU stand-in of
    SyncBatchNorm's maths, whose backward sums gradient terms across the ranks) against one
    process's BatchNorm over the whole batch, and per rank against one process normalising
    the same three shares on their own. The gradients of a step, the losses it reports and
    the weights after it are the one process's, to float rounding. (Weighting each rank's
    gradients by its share after backward() was 0.2-1.6% off with synchronised statistics.)"""
    one = train_ranks(tmp_path, 1, 1, 128, one_bn)[0]
    three = train_ranks(tmp_path, 3, 1, 128, ranks_bn)
    for rank in three:
        errors = [((x - y).norm() / y.norm()).item() for x, y in zip(rank["grads"], one["grads"])]
        assert len(errors) == 12 and max(errors) < 1e-4, errors  # rounding gave under 3e-6
        assert torch.allclose(rank["stats"], one["stats"], rtol=1e-5, atol=1e-6)
        for x, y in zip(rank["state"], one["state"]):
            assert torch.allclose(x, y, rtol=1e-4, atol=1e-6)


TINY = ["--image-size", "16", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "16",
        "--max-images", "224", "--device", "cpu", "--quality-images", "0", "--log-every", "0.5"]


def tui_gan(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "tui_gan", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def checkpoint(path: Path) -> dict:
    return torch.load(path, weights_only=True)


@ONE_PYTHON
def test_nproc_2_trains_resumes_and_leaves_one_process_checkpoints(tmp_path):
    """--nproc 2 --headless: rank 0 logs and writes the run; a resume with 2 processes
    continues it exactly (the same weights as the run straight through), and a one-process
    run and `sample` take its checkpoints."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    done = tui_gan(*TINY, "--headless", "--nproc", "2", "--max-steps", "10", "--run-dir", str(straight))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "training on cpu × 2 processes (gloo)" in done.stdout
    assert tui_gan(*TINY, "--headless", "--nproc", "2", "--max-steps", "6", "--run-dir", str(split)).returncode == 0
    resumed = tui_gan("--headless", "--nproc", "2", "--resume", str(split), "--max-steps", "10")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = checkpoint(straight / "checkpoints" / "last.pt"), checkpoint(split / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 10
    for net in ("generator", "discriminator"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net] if "running" not in k)
    one = tui_gan("--headless", "--resume", str(split), "--max-steps", "12")  # another world size
    assert one.returncode == 0 and checkpoint(split / "checkpoints" / "last.pt")["step"] == 12, one.stderr[-2000:]


def start_launcher(run: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "tui_gan", *TINY, "--epochs", "100000", "--headless", "--nproc", "2",
                             "--run-dir", str(run), *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def wait_for(predicate, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def workers(launcher: subprocess.Popen) -> list[int]:
    """The launcher's training processes (its children that run tui_gan)."""
    out = subprocess.run(["pgrep", "-P", str(launcher.pid), "-f", "tui_gan"], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def test_a_killed_rank_ends_the_run_in_one_line_naming_it(tmp_path):
    run = tmp_path / "run"
    launcher = start_launcher(run)
    try:
        wait_for(lambda: (run / "checkpoints" / "last.pt").exists() or (run / "metrics.csv").exists()
                 and len((run / "metrics.csv").read_text().splitlines()) > 3)
        record = json.loads((run / "service.json").read_text())
        (follower,) = [pid for pid in workers(launcher) if pid != record["pid"]]
        os.kill(follower, signal.SIGKILL)
        _, err = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("tui-gan: rank 1 (pid") and "SIGKILL" in line, err[-2000:]


def test_a_rank_that_dies_while_another_hangs_in_a_collective_ends_the_run_within_seconds(tmp_path):
    """Rank 1 blocks in a wait that no peer's death ends (tests/hanging_rank.py: a stand-in for
    SyncBatchNorm's all-gather on CUDA, where NCCL waits on), rank 0 waits for it in its
    gradient all-reduce, and then rank 0 is killed. Rank 1 ignores the launcher's SIGTERM
    (stop signals are rank 0's to act on), so the run used to end only when the launcher
    gave up on it (31 s with torch 2.14's); it ends within seconds (6.4 s measured) with the
    one line that names rank 0 and the last checkpoint."""
    run, hang = tmp_path / "run", tmp_path / "hanging"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HANG_FILE": str(hang)}
    launcher = subprocess.Popen([sys.executable, "-m", "tests.hanging_rank", *TINY, "--epochs", "100000", "--headless",
                                 "--nproc", "2", "--run-dir", str(run)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: hang.exists() and hang.read_text() and (run / "service.json").exists())
        time.sleep(1)  # rank 0 is in its all-reduce, waiting for rank 1
        os.kill(json.loads((run / "service.json").read_text())["pid"], signal.SIGKILL)
        killed = time.monotonic()
        _, err = launcher.communicate(timeout=60)
        ended = time.monotonic() - killed
    finally:
        with contextlib.suppress(ProcessLookupError):  # a hanging rank of a failed test, too
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("tui-gan: rank 0 (pid") and "SIGKILL" in line, err[-2000:]
    assert line.endswith(f"the last checkpoint is {run / 'checkpoints' / 'last.pt'}"), line
    assert ended < 15, f"the run took {ended:.1f} s to end"


def test_the_launcher_names_the_rank_that_failed_not_one_that_ended_after_it(tmp_path, monkeypatch, capsys):
    """A rank whose peer died while it waited ends with PEER_LOST_EXIT (world.py, PeerWatch);
    when the launcher sees it fail beside the rank that failed first (here with bad input,
    exit 2), its line and exit code are the first one's."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure
    from torch.distributed.launcher import api

    from tui_gan.core.config import PEER_LOST_EXIT
    from tui_gan.launch import launch

    def failed(*_args):
        raise ChildFailedError("tui_gan", {0: ProcessFailure(0, 4241, PEER_LOST_EXIT, "<N/A>"),
                                           1: ProcessFailure(1, 4242, 2, "<N/A>")})

    monkeypatch.setattr(api, "elastic_launch", lambda *_args: failed)
    code = launch({"nproc": 2, "device": "cpu"}, [], RunDir(tmp_path / "run"))
    line = capsys.readouterr().err.strip()
    assert (code, line) == (2, "tui-gan: rank 1 (pid 4242) exited with code 2; the run stopped and no checkpoint "
                               "was written yet")


@pytest.mark.parametrize("flags, message", [
    (["--nproc", "0"], "--nproc: must be a positive integer"),
    (["--nproc", "2", "--device", "cuda:1"], "--device cuda:1 picks one GPU"),
    (["--nproc", "2", "--device", "mps"], "not on mps"),
    (["--nproc", "3", "--device", "cuda"], "this machine has 2 GPU(s)"),
    (["--nproc", "2", "--device", "cuda", "--master-port", "PORT"], "cannot be used"),
    (["--nproc", "2", "--batch-size", "1"], "--batch-size 1 is smaller than the 2 processes"),
    (["--nproc", "2", "--sync-bn"], "--sync-bn: synchronised BatchNorm runs on CUDA GPUs only, not on cpu"),
])
def test_bad_nproc_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, flags, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a stand-in machine with 2 GPUs
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        flags = [str(busy.getsockname()[1]) if f == "PORT" else f for f in flags]
        code = main([*TINY[:-4], *flags, "--headless", "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


@ONE_PYTHON
def test_a_pause_outlasts_the_collective_timeout_and_sigterm_stops_every_rank(tmp_path, monkeypatch):
    """Viewers attach to rank 0 as to one process. Paused for twice the collectives' timeout
    (shortened to 4 s here; rank 0's epoch ends, which the others wait for, stay well inside
    it), the run resumes; SIGTERM to the launcher then ends every rank at one step, with one
    checkpoint written (a viewer's stop takes the same path from rank 0 on). A rank that
    timed out in the pause (4 s in) ends the run: the launcher has gone by 8 s, or is
    stopping rank 0, which takes no step past the pause."""
    monkeypatch.setenv("TUI_GAN_RUNTIME_DIR", tempfile.mkdtemp(prefix="tg-"))
    monkeypatch.setenv("TUI_GAN_COLLECTIVE_TIMEOUT", "4")
    run = RunDir(tmp_path / "run")
    launcher = start_launcher(run.root, "--max-images", "4000")
    try:
        wait_for(lambda: run.metrics.exists() and len(run.metrics.read_text().splitlines()) > 3)
        remote = RemoteRun(connect_to_run(run)[0], run)
        events: list = []
        threading.Thread(target=lambda: events.extend(remote.run()), daemon=True).start()
        wait_for(lambda: any(isinstance(e, ev.Attached) for e in events))
        remote.control.pause()
        wait_for(lambda: any(isinstance(e, ev.Paused) for e in events))
        paused_at = next(e.step for e in events if isinstance(e, ev.Paused))
        time.sleep(8)
        assert launcher.poll() is None
        remote.control.resume()
        wait_for(lambda: any(isinstance(e, ev.Progress) and e.step > paused_at + 5 for e in events))
        launcher.send_signal(signal.SIGTERM)
        wait_for(lambda: any(isinstance(e, ev.Finished) for e in events))
        out, err = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode == 128 + signal.SIGTERM, err[-2000:]
    finished = next(e for e in events if isinstance(e, ev.Finished))
    assert finished.reason == "terminated (SIGTERM)" and "finished (terminated (SIGTERM))" in out
    assert checkpoint(run.last)["step"] == finished.step > paused_at
    assert sorted(p.name for p in (run.root / "checkpoints").iterdir()) == ["last.pt"]


def test_synchronised_batchnorm_draws_samples_within_one_process(monkeypatch):
    """On CUDA the nets' BatchNorm is synchronised across processes; rank 0 draws samples
    alone, so drawing must not synchronise (it would wait for the other ranks forever),
    and it gives the same images as plain BatchNorm, with the state unchanged."""
    from torch import nn

    from tui_gan.core.config import TrainConfig
    from tui_gan.engine.models import SampleableSyncBatchNorm, generate, synchronise_batchnorm
    from tui_gan.engine.nets import build_models

    config = TrainConfig(image_size=16, ngf=8, ndf=8, nz=16, channels=3)
    torch.manual_seed(0)
    plain, _ = build_models(config)
    synced = synchronise_batchnorm(build_models(config)[0])
    synced.load_state_dict(plain.state_dict())
    layers = [m for m in synced.modules() if isinstance(m, nn.SyncBatchNorm)]
    assert layers and all(type(m) is SampleableSyncBatchNorm for m in layers)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in plain.modules())
    monkeypatch.setattr(nn.SyncBatchNorm, "forward", lambda *a: pytest.fail("a synchronised forward while drawing"))
    z = torch.randn(8, 16, 1, 1)
    assert torch.allclose(generate(synced, z), generate(plain, z), atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(synced.state_dict().values(), plain.state_dict().values()))


def test_batchnorm_is_each_processs_own_unless_sync_bn():
    """Several processes normalise each its own share by default, on CUDA as on the CPU (no
    collective and no wait for the GPU in BatchNorm); --sync-bn synchronises BatchNorm on
    CUDA and is refused elsewhere. (The nets are built on the CPU; the world says CUDA.)"""
    from tui_gan.core.config import TrainConfig
    from tui_gan.core.errors import UserError
    from tui_gan.engine.gan import Gan

    def batchnorms(world: World, sync_bn: bool) -> set[str]:
        config = TrainConfig(image_size=16, ngf=8, ndf=8, nz=16, channels=3, batch_size=16, amp=False,
                             channels_last=False, sync_bn=sync_bn)
        gan = Gan(config, torch.device("cpu"), world)
        return {type(m).__name__ for net in (gan.netG, gan.netD) for m in net.modules() if "BatchNorm" in type(m).__name__}

    on_gpus = World(rank=0, size=2, device=torch.device("cuda"))
    assert batchnorms(on_gpus, sync_bn=False) == {"BatchNorm2d"}
    assert batchnorms(on_gpus, sync_bn=True) == {"SampleableSyncBatchNorm"}
    assert batchnorms(World.single(), sync_bn=True) == {"BatchNorm2d"}  # one process: the whole batch anyway
    with pytest.raises(UserError, match="--sync-bn: synchronised BatchNorm runs on CUDA GPUs only"):
        batchnorms(World(rank=0, size=2), sync_bn=True)


def test_sync_bn_is_the_runs_setting_and_a_resume_keeps_it(tmp_path, monkeypatch):
    """--sync-bn is saved with the run (one process trains with it: its BatchNorm sees the
    whole batch either way); a resume keeps it unless --no-sync-bn or --sync-bn says otherwise."""
    from tui_gan.commands.flags import prepare_training, train_parser

    monkeypatch.setenv("TUI_GAN_RUNTIME_DIR", tempfile.mkdtemp(prefix="tg-"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    run = RunDir(tmp_path / "run")
    assert main([*TINY, "--headless", "--max-steps", "2", "--sync-bn", "--run-dir", str(run.root)]) == 0
    assert checkpoint(run.last)["config"]["sync_bn"] is True and "sync_bn = true" in run.config.read_text()
    for flags, expected in (([], True), (["--no-sync-bn"], False), (["--sync-bn"], True)):
        engine = prepare_training(vars(train_parser().parse_args(["--resume", str(run.root), *flags])), run.root)
        assert engine.config.sync_bn is expected, flags


def test_the_app_finds_the_service_rank_0_hosts(tmp_path, monkeypatch):
    """`tui-gan --nproc 2` (the app) spawns the launcher and waits for a service; rank 0,
    the launcher's child, hosts it, and the app connects to it as to one process's."""
    from tui_gan.service.client import wait_for_service
    from tui_gan.service.start import start_service

    monkeypatch.setenv("TUI_GAN_RUNTIME_DIR", tempfile.mkdtemp(prefix="tg-"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run = RunDir(tmp_path / "run")
    process = start_service([*TINY, "--epochs", "100000", "--nproc", "2"], run)
    try:
        remote = wait_for_service(run, process, timeout=90)
        assert remote is not None
        events: list = []
        threading.Thread(target=lambda: events.extend(remote.run()), daemon=True).start()
        wait_for(lambda: any(isinstance(e, ev.Attached) for e in events))
        remote.control.stop("q")
        wait_for(lambda: any(isinstance(e, ev.Finished) for e in events))
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    record = json.loads(run.service_record.read_text())
    assert record["launcher"] == process.pid != record["pid"] and record["state"] == "stopped"
