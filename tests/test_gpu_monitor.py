"""The GPU at a glance (engine/gpu_monitor.py), with a stand-in for torch.cuda: readings on
the monitor's own thread, never the training thread's; NVML missing or refusing; the event
through the engine, the report, the wire and the status panel."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from tui_gan.core import events as ev
from tui_gan.core.report import Report
from tui_gan.engine import engine as engine_module
from tui_gan.engine.gpu_monitor import NO_MONITOR, NO_NVML, GpuMonitor
from tui_gan.tui.widgets.status import StatusPanel, gpu_text

from .app_support import ScriptedEngine, quit_app, wait_until

GIB = 1 << 30


class StandInCuda:
    """torch.cuda's functions the monitor calls, answering like an 80 GiB A100; records the
    thread of every call."""

    def __init__(self, utilisation=lambda: 97):
        self.utilisation = utilisation
        self.threads: set[int] = set()
        self.utilisation_calls = 0

    def _called(self) -> None:
        self.threads.add(threading.get_ident())

    def get_device_name(self, index):
        self._called()
        return "NVIDIA A100-SXM4-80GB"

    def mem_get_info(self, index):
        self._called()
        return 60 * GIB, 80 * GIB  # (free, total)

    def memory_reserved(self, index):
        self._called()
        return 18 * GIB

    def utilization(self, index):
        self._called()
        self.utilisation_calls += 1
        return self.utilisation()


def first_reading(monitor: GpuMonitor, timeout: float = 5.0) -> ev.DeviceStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for reading in monitor.readings():
            return reading
        time.sleep(0.005)
    raise AssertionError("no reading")


def test_a_reading_is_taken_on_the_monitors_thread_and_handed_over_once():
    cuda = StandInCuda()
    monitor = GpuMonitor(0, cuda, interval=60.0).start()
    try:
        reading = first_reading(monitor)
        assert reading == ev.DeviceStatus("NVIDIA A100-SXM4-80GB", 20 * GIB, 80 * GIB, 18 * GIB, 97.0, "")
        assert list(monitor.readings()) == []  # nothing new until the next reading
        assert threading.get_ident() not in cuda.threads and len(cuda.threads) == 1
    finally:
        monitor.close()
    monitor._thread.join(5)
    assert not monitor._thread.is_alive()  # close() ends the wait at once


def missing_nvml():
    raise ModuleNotFoundError("nvidia-ml-py does not seem to be installed")


def nvml_refuses():
    raise RuntimeError("NVML: Not Supported")


@pytest.mark.parametrize("utilisation, note", [(missing_nvml, NO_NVML), (nvml_refuses, "NVML: Not Supported")])
def test_memory_is_shown_without_utilisation_where_nvml_does_not_answer(utilisation, note):
    cuda = StandInCuda(utilisation)
    monitor = GpuMonitor(0, cuda, interval=0.01).start()
    try:
        readings = [first_reading(monitor) for _ in range(3)]
    finally:
        monitor.close()
    assert all(r.utilisation is None and note in r.note and r.memory_used == 20 * GIB for r in readings)
    assert cuda.utilisation_calls == 1  # asked once, not every reading


def test_only_rank_0_on_cuda_gets_a_monitor():
    assert GpuMonitor.start_for(torch.device("cpu"), True) is NO_MONITOR
    assert GpuMonitor.start_for(torch.device("cuda", 0), False) is NO_MONITOR
    assert list(NO_MONITOR.readings()) == []


def test_the_engine_passes_readings_on_after_progress_and_never_reads_in_its_thread(
        make_engine, engine_thread, monkeypatch):
    cuda = StandInCuda()
    monkeypatch.setattr(engine_module.GpuMonitor, "start_for",
                        staticmethod(lambda device, main: GpuMonitor(0, cuda, interval=0.005).start()))
    run = engine_thread(make_engine(epochs=3))
    events = run.drain()
    statuses = [i for i, e in enumerate(events) if isinstance(e, ev.DeviceStatus)]
    assert statuses, "no DeviceStatus event"
    assert all(isinstance(events[i - 1], ev.Progress) for i in statuses)
    assert run.thread.ident not in cuda.threads  # every CUDA query ran on the monitor's thread
    assert isinstance(events[-1], ev.Finished)


def test_the_report_ends_progress_lines_with_the_gpu_and_says_why_utilisation_is_missing_once():
    report = Report()
    status = ev.DeviceStatus("NVIDIA A100", 20 * GIB, 80 * GIB, 18 * GIB, None, NO_NVML)
    assert [line.text for line in report.lines(status)] == [f"GPU NVIDIA A100: {NO_NVML}"]
    assert report.lines(status) == []
    progress = ev.Progress(10, 0, 10, 100, 1000, 0.5, 2.0, 0.7, 0.3, 0.2, 900.0, 60.0, 5.0, 2e-4, 2e-4)
    assert report.lines(progress)[0].text.endswith("| GPU 20.0/80.0 GiB")
    report.lines(ev.DeviceStatus("NVIDIA A100", 20 * GIB, 80 * GIB, 18 * GIB, 97.0))
    assert report.lines(progress)[0].text.endswith("| GPU 20.0/80.0 GiB · 97% busy")


def test_the_gpu_line_shortens_to_fit():
    status = ev.DeviceStatus("NVIDIA H200", int(41.2 * GIB), int(139.8 * GIB), 38 * GIB, 97.0)
    assert gpu_text(status, 60) == "41.2/139.8 GiB (run 38.0) · 97% busy"
    assert gpu_text(status, 30) == "41.2/139.8 GiB · 97% busy"
    assert gpu_text(status, 24) == "41.2/139.8 GiB 97%"


class EngineOnAGpu(ScriptedEngine):
    def run(self):
        for event in super().run():
            yield event
            if isinstance(event, ev.Progress):
                yield ev.DeviceStatus("NVIDIA H200", int(41.2 * GIB), int(139.8 * GIB), 38 * GIB, 97.0)


@pytest.mark.parametrize("size, shown", [((120, 40), "gpu    41.2/139.8 GiB (run 38.0) · 97% busy"),
                                         ((80, 24), "GPU 41.2/139.8 GiB 97%")])
async def test_the_status_panel_shows_the_gpu(attached_app, size, shown):
    app = attached_app(EngineOnAGpu(), run_name="demo")
    async with app.run_test(size=size) as pilot:
        panel = app.query_one(StatusPanel)
        await wait_until(pilot, lambda: panel.view.device_status is not None, what="the GPU's reading")
        await pilot.pause()
        lines = [panel.render_line(y).text.rstrip() for y in range(panel.size.height)]
        assert shown in lines, "\n".join(lines)
        assert lines[-1].strip() not in ("", "–")  # the run line still fits: the panel grew
        await quit_app(pilot, app)
