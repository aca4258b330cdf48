import io
import os
import pickle
import random
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from tui_gan.cli import main
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
    assert torch.load(path, weights_only=True)["step"] == 1
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


# ----------------------------------------------------------------------------- any file at all
# `tui-gan sample FILE` and `tui-gan --resume FILE` must end in one line and exit code 2 for
# every file that is not a tui-gan checkpoint, whatever its bytes: never a traceback, never
# code run from the file, never a run that starts from damaged weights.


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory) -> bytes:
    """The bytes of a real (tiny) checkpoint, written once for the tests that damage it."""
    from tui_gan.engine.engine import Engine

    root = tmp_path_factory.mktemp("real")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUI_GAN_CACHE_DIR", str(root / "cache"))
        list(Engine(tiny_config(max_steps=2), root / "run", explicit=EXPLICIT).run())
    return (root / "run" / "checkpoints" / "last.pt").read_bytes()


def _torch_bytes(obj, **kwargs) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


def _real_state(real: bytes) -> dict:
    return torch.load(io.BytesIO(real), weights_only=True)


class RunsCode:
    """Pickled, it calls os.mkdir(path) when unpickled: evidence if a load ran it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _refusal(capsys, argv, keep_err: bool = False) -> str | None:
    """None when ``main(argv)`` exits 2 with one 'tui-gan: error:' line (``keep_err``: that
    line); else what it did."""
    try:
        code = main(argv)
    except BaseException as exc:  # noqa: BLE001 - exactly what this test looks for
        capsys.readouterr()
        return f"raised {type(exc).__name__}: {str(exc)[:80]}"
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    if code != 2 or len(lines) != 1 or not lines[0].startswith("tui-gan: error: ") or "Traceback" in err:
        return f"code {code}, stderr {err[-160:]!r}"
    return lines[0] if keep_err else None


def _sample_argv(path, tmp_path) -> list[str]:
    return ["sample", str(path), "--n", "4", "--device", "cpu", "--out", str(tmp_path / "grid.png")]


def _resume_argv(path, tmp_path) -> list[str]:
    return ["--resume", str(path), "--headless", "--run-dir", str(tmp_path / "resumed"), "--max-steps", "3"]


def _check_all_refused(capsys, tmp_path, patterns: dict[str, bytes], argv=_sample_argv) -> None:
    failures = {}
    for name, data in patterns.items():
        path = tmp_path / f"{name}.pt"
        path.write_bytes(data)
        problem = _refusal(capsys, argv(path, tmp_path))
        if problem:
            failures[name] = problem
    assert not failures, failures
    assert not (tmp_path / "grid.png").exists() and not (tmp_path / "resumed" / "checkpoints").exists()


def _random_patterns() -> dict[str, bytes]:
    rng = random.Random(20240611)  # fixed: a failure names a pattern that reproduces
    patterns = {"empty": b""}
    for i, n in enumerate([1, 2, 3, 5, 7, 8, 16, 50, 64, 100, 255, 500, 512, 1000, 4096, 5000, 20000] * 2):
        patterns[f"random{i}-{n}"] = rng.randbytes(n)
    # random bytes behind the headers that lead the decoders further in: a zip's local and
    # end records, pickle protocols 2 and 4, and the legacy torch.save format's magic number
    legacy = _torch_bytes({"format": "x"}, _use_new_zipfile_serialization=False)[:12]
    for label, prefix in [("zip", b"PK\x03\x04"), ("zipend", b"PK\x05\x06"), ("pickle2", b"\x80\x02"),
                          ("pickle4", b"\x80\x04\x95"), ("legacy", legacy)]:
        for n in (0, 10, 300):
            patterns[f"{label}+{n}"] = prefix + rng.randbytes(n)
    return patterns


def test_random_bytes_are_refused_in_one_line(capsys, tmp_path):
    _check_all_refused(capsys, tmp_path, _random_patterns())


def _record_offsets(real: bytes) -> list[int]:
    """Offsets whose bytes matter: headers, and the start, middle and end of records (the
    pickle and tensors). Elsewhere (alignment padding, some directory fields) a flipped byte
    leaves the same checkpoint."""
    with zipfile.ZipFile(io.BytesIO(real)) as archive:
        infos = archive.infolist()
    offsets = {0, len(real) - 22}  # the first local header's signature, the end record's
    for info in (infos[0], infos[1], infos[len(infos) // 2], infos[-1]):
        name_len, extra_len = struct.unpack("<HH", real[info.header_offset + 26 : info.header_offset + 30])
        start = info.header_offset + 30 + name_len + extra_len
        offsets |= {info.header_offset + 30, start, start + info.file_size // 2, start + info.file_size - 1}
    directory = real.find(b"PK\x01\x02", infos[-1].header_offset)
    offsets |= {directory + 16, directory + 46}  # the first directory entry's CRC and name
    return sorted(offsets)


def _damaged(real: bytes) -> dict[str, bytes]:
    patterns = {f"cut{n}": real[:n] for n in (1, 30, 100, 1000, len(real) // 3, len(real) // 2,
                                               len(real) - 100, len(real) - 22, len(real) - 1)}
    for offset in _record_offsets(real):
        flipped = bytearray(real)
        flipped[offset] ^= 0xFF
        patterns[f"flip{offset}"] = bytes(flipped)
    return patterns


def test_truncated_and_flipped_checkpoints_are_refused(capsys, tmp_path, real_checkpoint):
    good = tmp_path / "good.pt"
    good.write_bytes(real_checkpoint)
    assert main(_sample_argv(good, tmp_path)) == 0  # the undamaged file samples
    (tmp_path / "grid.png").unlink()
    _check_all_refused(capsys, tmp_path, _damaged(real_checkpoint))


def _foreign_and_edited(real: bytes, evidence) -> dict[str, bytes]:
    state = _real_state(real)
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("archive/data.pkl", b"not a pickle")
        archive.writestr("notes.txt", "hello")

    def edited(**changes):
        return _torch_bytes({**state, **changes})

    config = state["config"]
    weights = state["generator"]
    return {
        "plain-zip": plain_zip.getvalue(),
        "list": _torch_bytes([1, 2, 3]),
        "tensor": _torch_bytes(torch.ones(3)),
        "no-marker": _torch_bytes({"step": 1, "generator": {}}),
        "marker-only": _torch_bytes({"format": "tui-gan-checkpoint"}),
        "step-str": edited(step="x"),
        "step-negative": edited(step=-1),
        "epoch-float": edited(epoch=1.5),
        "generator-tensor": edited(generator=torch.ones(2)),
        "generator-list": edited(generator={**weights, "main.0.weight": [1.0, 2.0]}),
        "generator-complex": edited(generator={k: v.to(torch.complex64) if v.is_floating_point() else v
                                               for k, v in weights.items()}),
        "discriminator-missing": edited(discriminator={}),
        "config-list": edited(config=[1]),
        "config-huge": edited(config={"image_size": "huge"}),
        "config-unknown": edited(config={**config, "colour": "blue"}),
        "config-tensor": edited(config={**config, "image_size": torch.ones(2)}),
        "config-float-size": edited(config={**config, "image_size": 16.0}),
        "config-ngf": edited(config={**config, "ngf": config["ngf"] * 2}),  # weights don't match
        "optimizer-empty": edited(optimizer_g={}),
        "lr-nan": edited(lr_g=float("nan")),
        "pending-lr": edited(pending_lr="soon"),
        "noise-shape": edited(fixed_noise=torch.zeros(4, 3)),
        "rng-int": edited(rng=3),
        "history-3d": edited(history={"columns": ["step"], "values": torch.ones(2, 2, 2)}),
        "elapsed-str": edited(elapsed_s="long"),
        "runs-code-pickle2": pickle.dumps(RunsCode(evidence), protocol=2),
        "runs-code-pickle4": pickle.dumps(RunsCode(evidence), protocol=4),
        "runs-code-torch": _torch_bytes(RunsCode(evidence)),
        "runs-code-in-state": edited(config=RunsCode(evidence)),
    }


def test_foreign_and_edited_files_are_refused_without_running_code(capsys, tmp_path, real_checkpoint):
    evidence = tmp_path / "code-ran"
    _check_all_refused(capsys, tmp_path, _foreign_and_edited(real_checkpoint, evidence))
    assert not evidence.exists()


def test_resume_refuses_what_sample_refuses(capsys, tmp_path, real_checkpoint):
    evidence = tmp_path / "code-ran"
    damaged, edited = _damaged(real_checkpoint), _foreign_and_edited(real_checkpoint, evidence)
    random_ = _random_patterns()
    chosen = {"empty": b"", "random": random_["random16-20000"], "pickle2": random_["pickle2+300"],
              **{k: damaged[k] for k in list(damaged)[::4]},
              **{k: edited[k] for k in ("list", "step-str", "config-huge", "config-ngf", "generator-tensor",
                                        "runs-code-torch", "runs-code-in-state")}}
    _check_all_refused(capsys, tmp_path, chosen, argv=_resume_argv)
    assert not evidence.exists()


def test_paths_that_are_not_checkpoint_files(capsys, tmp_path):
    empty_dir = tmp_path / "run-without-checkpoint"
    (empty_dir / "checkpoints").mkdir(parents=True)
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"x")
    paths = [empty_dir, blocker / "last.pt", tmp_path / ("x" * 5000)]
    if hasattr(os, "mkfifo"):  # reading it would wait for a writer forever
        os.mkfifo(tmp_path / "fifo.pt")
        paths.append(tmp_path / "fifo.pt")
    for path in paths:
        for argv in (_sample_argv(path, tmp_path), _resume_argv(path, tmp_path)):
            assert _refusal(capsys, argv) is None, (str(path)[:60], argv[0])


UNPRIVILEGED = 65534  # nobody


def _refusals_of_unreadable(capsys, path, tmp_path) -> list[str | None]:
    """For sample and --resume of ``path``: their one-line error, or what they did instead."""
    return [_refusal(capsys, argv, keep_err=True) for argv in (_sample_argv(path, tmp_path),
                                                               _resume_argv(path, tmp_path))]


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_unreadable_checkpoint(capsys, tmp_path, real_checkpoint):
    """A checkpoint its user may not read is a one-line error that says so. Root reads any
    file, and CI runs as root: there the check runs in a child that has dropped root."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="tui-gan-unreadable-"))  # not under pytest's root-only folder
    folder.chmod(0o777)  # the user the check runs as may enter it and make the resumed run's folder
    path = folder / "locked.pt"
    path.write_bytes(real_checkpoint)
    path.chmod(0)
    try:
        if os.geteuid() != 0:
            results = _refusals_of_unreadable(capsys, path, folder)
        else:
            results = _as_unprivileged_user(lambda: _refusals_of_unreadable(capsys, path, folder))
        for line in results:  # the error is the file's, and says why
            assert line and line.startswith("tui-gan: error: ") and str(path) in line and "ermission" in line, line
    finally:
        shutil.rmtree(folder)


def _as_unprivileged_user(check):
    """``check()``'s result (JSON-able), computed in a child that has dropped root. The
    modules the commands import as they run are loaded first: root's Python may live in a
    folder only root can enter."""
    import json

    import tui_gan.commands.outputs  # noqa: F401
    import tui_gan.engine.engine  # noqa: F401
    import tui_gan.engine.sampling  # noqa: F401
    import tui_gan.service.main  # noqa: F401

    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.close(read_end)
            os.setgroups([])
            os.setresgid(UNPRIVILEGED, UNPRIVILEGED, UNPRIVILEGED)
            os.setresuid(UNPRIVILEGED, UNPRIVILEGED, UNPRIVILEGED)
            os.write(write_end, json.dumps([os.geteuid(), check()]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    import select
    import signal

    report = b""
    with os.fdopen(read_end, "rb", buffering=0) as answer:
        while select.select([answer], [], [], 60)[0]:  # a child that hangs (a run that trains) is killed
            chunk = answer.read(1 << 16)
            if not chunk:
                break
            report += chunk
        else:
            os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    assert report, "the unprivileged child reported nothing within 60 s"
    uid, results = json.loads(report)
    assert uid == UNPRIVILEGED
    return results


@pytest.mark.parametrize("damage", ["rng-size", "extra-param-group", "moment-shape", "history-nan-step"])
def test_restore_refuses_content_only_loading_shows(tmp_path, real_checkpoint, damage):
    """Damage that passes load_checkpoint's checks ends in a UserError from restore_run,
    not in a traceback (or a failed first step)."""
    from tui_gan.core.config import TrainConfig
    from tui_gan.engine.checkpoint import restore_run
    from tui_gan.engine.gan import Gan

    state = _real_state(real_checkpoint)
    if damage == "rng-size":
        state["rng"] = {**state["rng"], "torch_cpu": torch.zeros(3, dtype=torch.uint8)}
    elif damage == "extra-param-group":
        groups = state["optimizer_g"]["param_groups"]
        state["optimizer_g"] = {**state["optimizer_g"], "param_groups": groups + groups}
    elif damage == "moment-shape":
        first = next(iter(state["optimizer_d"]["state"].values()))
        first["exp_avg"] = torch.zeros(3)
    else:
        state["history"]["values"][0, 0] = float("nan")
    path = tmp_path / "edited.pt"
    torch.save(state, path)
    loaded = load_checkpoint(path)  # its structure is right
    rng = torch.get_rng_state()
    gan = Gan(TrainConfig.from_dict(loaded["config"]), torch.device("cpu"))
    try:
        with pytest.raises(UserError, match="cannot continue from this checkpoint"):
            restore_run(gan, loaded, steps_per_epoch=14, keep_pending_lrs=True)
    finally:
        torch.set_rng_state(rng)


def test_resume_from_content_only_loading_shows_is_one_line(capsys, tmp_path, real_checkpoint):
    """The same end to end: the engine's setup ends in the one-line error."""
    state = _real_state(real_checkpoint)
    state["rng"] = {**state["rng"], "torch_cpu": torch.zeros(3, dtype=torch.uint8)}
    path = tmp_path / "edited.pt"
    torch.save(state, path)
    rng = torch.get_rng_state()
    try:
        assert _refusal(capsys, _resume_argv(path, tmp_path)) is None
    finally:
        torch.set_rng_state(rng)
