"""bf16 by capability: what the device has decides auto's choice (stand-in capabilities
here, so the tests mean the same on every machine), --amp/--no-amp force it, and the
checkpoints of both precisions are interchangeable."""

from __future__ import annotations

import pytest
import torch

from tui_gan.core import events as ev
from tui_gan.core.config import TrainConfig
from tui_gan.core.errors import UserError
from tui_gan.engine import devices
from tui_gan.engine.devices import choose_precision, cpu_capabilities, native_bf16

from .conftest import EXPLICIT, tiny_config

CPU = torch.device("cpu")
AMX_CPU = {"avx2": True, "avx512_f": True, "avx512_bf16": True, "amx_tile": True, "amx_bf16": True}
COOPER_LAKE = {"avx2": True, "avx512_f": True, "avx512_bf16": True, "amx_bf16": False}
ICE_LAKE = {"avx2": True, "avx512_f": True, "avx512_bf16": False}  # AVX-512, but bf16 only emulated
ZEN_3 = {"avx2": True}


@pytest.mark.parametrize(("features", "units"), [(AMX_CPU, "AMX"), (COOPER_LAKE, "AVX-512 BF16"),
                                                 (ICE_LAKE, None), (ZEN_3, None), ({}, None)])
def test_a_cpu_runs_bf16_natively_with_amx_or_avx512_bf16_only(features, units):
    assert native_bf16(CPU, cpu_features=features) == units


@pytest.mark.parametrize(("capability", "units"), [((8, 0), "compute capability 8.0"), ((9, 0), "compute capability 9.0"),
                                                   ((8, 6), "compute capability 8.6"), ((7, 5), None), ((6, 1), None)])
def test_a_gpu_runs_bf16_natively_from_ampere(capability, units):
    assert native_bf16(torch.device("cuda", 0), cuda_capability=capability) == units


def test_mps_is_left_in_fp32_until_measured():
    assert native_bf16(torch.device("mps")) is None


def test_this_cpu_is_read_from_torch_or_else_from_proc_cpuinfo(tmp_path, monkeypatch):
    reported = cpu_capabilities()
    assert isinstance(reported, dict) and reported  # torch's cpuinfo names every feature
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n\n"
                       "processor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)  # a torch without it
    flags = cpu_capabilities(cpuinfo)
    assert flags["amx_bf16"] and flags["avx512_bf16"] and "avx512_vnni" not in flags
    assert native_bf16(CPU, cpu_features=flags) == "AMX"
    assert cpu_capabilities(tmp_path / "absent") == {}  # not Linux: nothing known, so fp32


@pytest.mark.parametrize("features", [AMX_CPU, ZEN_3])
def test_amp_and_no_amp_force_the_choice_and_auto_follows_the_units(features, monkeypatch):
    monkeypatch.setattr(devices, "cpu_capabilities", lambda: features)
    native = features is AMX_CPU
    auto = choose_precision(None, CPU)
    assert auto.bf16 == native and auto.name == ("bf16" if native else "fp32")
    assert auto.why == ("auto: AMX" if native else "auto: no bf16 units in this CPU "
                        f"({torch.backends.cpu.get_cpu_capability()})")
    assert choose_precision(True, CPU) == devices.Precision(True, "--amp")  # bf16 autocast exists on every CPU
    assert choose_precision(False, CPU) == devices.Precision(False, "--no-amp")


def test_auto_stays_in_fp32_where_autocast_cannot_run_and_amp_says_why(monkeypatch):
    monkeypatch.setattr(devices, "native_bf16", lambda device: "compute capability 9.0")
    meta = torch.device("meta")  # a device torch has no bf16 autocast for
    chosen = choose_precision(None, meta)
    assert not chosen.bf16 and chosen.why.startswith("auto: compute capability 9.0, but ")
    with pytest.raises(UserError, match=r"^--amp: bf16 autocast is not available on meta .*run without --amp$"):
        choose_precision(True, meta)


def test_gpus_without_bf16_units_say_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (7, 5))
    chosen = choose_precision(None, torch.device("cuda", 0))
    assert chosen == devices.Precision(False, "auto: no bf16 units before compute capability 8.0 (this GPU: 7.5)")


def test_fp32_on_a_gpu_with_tf32_is_named_tf32_unless_tf32_is_off(monkeypatch):
    """From Ampere, PyTorch runs fp32 convolutions in TF32 by default (cudnn.allow_tf32):
    a run that says fp32 there would mislabel them. Exact fp32 is named fp32: TF32 off in
    torch (allow_tf32(False), which `tui-gan bench --no-tf32` calls) or cuDNN-wide
    (NVIDIA_TF32_OVERRIDE=0), and before Ampere, which has no TF32."""
    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (8, 0))
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)  # PyTorch's default; restored after
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)
    chosen = choose_precision(False, gpu)
    assert (chosen.name, chosen.bf16) == ("tf32", False)
    assert chosen.why == "--no-amp; TF32 convolutions, PyTorch's default on this GPU"
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "0")
    assert choose_precision(False, gpu) == devices.Precision(False, "--no-amp")
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE")
    devices.allow_tf32(False)
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert choose_precision(False, gpu).name == "fp32"
    devices.allow_tf32(True)
    assert choose_precision(False, gpu).name == "tf32"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (7, 5))
    assert choose_precision(False, gpu).name == "fp32" and choose_precision(False, CPU).name == "fp32"


def test_amp_is_auto_unless_set_and_only_true_or_false_otherwise():
    assert TrainConfig().amp is None
    TrainConfig(amp=True).validate()
    TrainConfig(amp=False).validate()
    with pytest.raises(UserError, match="amp must be true or false, got 'yes'"):
        TrainConfig(amp="yes").validate()
    assert "# amp = (not set)" in TrainConfig().to_toml()  # reads back as auto


def _train(make_engine, monkeypatch, features, **overrides):
    monkeypatch.setattr(devices, "cpu_capabilities", lambda: features)
    engine = make_engine(**overrides)
    events = list(engine.run())
    return engine, next(e for e in events if isinstance(e, ev.Started)), events[-1]


def test_a_run_on_a_cpu_with_bf16_units_trains_in_bf16_without_the_cpu_layers(make_engine, monkeypatch):
    from tui_gan.core.report import Report

    engine, started, finished = _train(make_engine, monkeypatch, AMX_CPU, amp=None, max_steps=3)
    assert isinstance(finished, ev.Finished) and engine.step == 3
    assert (started.precision, started.precision_why) == ("bf16", "auto: AMX")
    assert engine.gan.bf16 and isinstance(engine.gan.autocast(), torch.autocast)
    assert isinstance(engine.gan.criterion, torch.nn.BCEWithLogitsLoss)
    assert not engine.gan.speed.cpu_layers  # bf16 wins where both could run (speed/__init__.py)
    (line,) = Report().lines(started)
    assert line.text.startswith("training on cpu in bf16, preset ") and "bf16 (auto: AMX)" in line.detail

    engine, started, _ = _train(make_engine, monkeypatch, ZEN_3, amp=None, max_steps=3)
    assert (started.precision, started.precision_why[:18]) == ("fp32", "auto: no bf16 unit")
    assert engine.gan.speed.cpu_layers and isinstance(engine.gan.criterion, torch.nn.BCELoss)


def test_checkpoints_of_either_precision_resume_in_the_other(make_engine, monkeypatch):
    """A run started on an AMX machine (auto: bf16) resumes on one without (auto: fp32) and
    back again: the weights and optimizer states are fp32 in both."""
    from tui_gan.engine.checkpoint import load_checkpoint
    from tui_gan.engine.engine import Engine

    engine, _, _ = _train(make_engine, monkeypatch, AMX_CPU, amp=None, max_steps=3)
    saved = load_checkpoint(engine.run_dir)
    assert saved["config"].get("amp") is None  # auto stays auto: the next machine decides
    assert all(t.dtype == torch.float32 for t in saved["generator"].values() if t.is_floating_point())
    for features, steps, precision in ((ZEN_3, 5, "fp32"), (AMX_CPU, 7, "bf16")):
        monkeypatch.setattr(devices, "cpu_capabilities", lambda features=features: features)
        resumed = Engine(tiny_config(amp=None, max_steps=steps), engine.run_dir, explicit=EXPLICIT,
                         resume=load_checkpoint(engine.run_dir))
        events = list(resumed.run())
        assert isinstance(events[-1], ev.Finished) and resumed.step == steps
        assert next(e for e in events if isinstance(e, ev.Started)).precision == precision
