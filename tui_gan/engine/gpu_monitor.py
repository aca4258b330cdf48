"""The GPU at a glance: its name, memory in use and utilisation, for the status panel.

Read on a thread of its own every ``INTERVAL_S`` seconds, never in the training thread, so
no reading can make the training wait for the device. The engine takes the newest reading
when it reports progress and passes it on as a ``DeviceStatus`` event.

Where each number comes from:

- memory in use / total: ``torch.cuda.mem_get_info`` (cudaMemGetInfo: the whole device,
  every process on it, as nvidia-smi counts it) and ``torch.cuda.memory_reserved`` (what
  this run's caching allocator holds: a host-side counter, no CUDA call);
- utilisation: ``torch.cuda.utilization``, which asks NVML and so needs the optional
  ``nvidia-ml-py`` binding (the ``gpu`` extra). Without it, or where NVML does not answer
  (some containers, MIG slices), utilisation is left out and the reading says why.

Only CUDA has such a monitor; on the CPU and MPS the engine gets ``NO_MONITOR``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import torch

from ..core import events as ev

INTERVAL_S = 2.0
"""Seconds between readings: NVML's utilisation is itself an average over 1/6 to 1 s."""
NO_NVML = "utilisation needs nvidia-ml-py: pip install 'tui-gan[gpu]'"


class NoMonitor:
    """The monitor of a device that has none (the CPU, MPS, ranks other than 0)."""

    def readings(self) -> Iterator[ev.DeviceStatus]:
        return iter(())

    def close(self) -> None:
        pass


NO_MONITOR = NoMonitor()


class GpuMonitor(NoMonitor):
    """Reads one CUDA device on a daemon thread; ``readings()`` yields the newest reading
    once (nothing when there is none since the last call).

    ``cuda``: the module whose functions it calls (torch.cuda; a stand-in in tests)."""

    def __init__(self, index: int, cuda: Any = None, interval: float = INTERVAL_S) -> None:
        self.index = index
        self.cuda = cuda if cuda is not None else torch.cuda
        self.interval = interval
        self._latest: ev.DeviceStatus | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._utilisation_note: str | None = None  # set once utilisation proved unreadable
        self._thread = threading.Thread(target=self._loop, name="tui-gan gpu monitor", daemon=True)

    @staticmethod
    def start_for(device: torch.device, main: bool) -> NoMonitor:
        """A started monitor for a CUDA ``device`` on rank 0, else NO_MONITOR."""
        if device.type != "cuda" or not main:
            return NO_MONITOR
        return GpuMonitor(device.index if device.index is not None else torch.cuda.current_device()).start()

    def start(self) -> GpuMonitor:
        self._thread.start()
        return self

    def readings(self) -> Iterator[ev.DeviceStatus]:
        with self._lock:
            latest, self._latest = self._latest, None
        if latest is not None:
            yield latest

    def close(self) -> None:
        """Stop reading, and wait for a reading under way (a CUDA or NVML call: milliseconds)
        so none runs while the engine tears down."""
        self._closed.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5.0)

    # ----------------------------------------------------------------- the monitor's thread

    def _loop(self) -> None:
        try:
            name = str(self.cuda.get_device_name(self.index))
        except Exception:  # noqa: BLE001 - a device that cannot be named cannot be read either
            return
        while not self._closed.is_set():
            try:
                reading = self.read(name)
            except Exception:  # noqa: BLE001 - the readout is a courtesy: it never troubles the run
                return
            with self._lock:
                self._latest = reading
            self._closed.wait(self.interval)

    def read(self, name: str) -> ev.DeviceStatus:
        """One reading (memory always; utilisation where NVML answers)."""
        free, total = self.cuda.mem_get_info(self.index)
        reserved = self.cuda.memory_reserved(self.index)
        utilisation = None
        if self._utilisation_note is None:
            try:
                utilisation = float(self.cuda.utilization(self.index))
            except ModuleNotFoundError:
                self._utilisation_note = NO_NVML
            except Exception as exc:  # noqa: BLE001 - NVML refuses (MIG, a container): say so once, stop asking
                self._utilisation_note = f"utilisation unavailable ({type(exc).__name__}: {exc})"[:120]
        return ev.DeviceStatus(name=name, memory_used=int(total - free), memory_total=int(total),
                               memory_reserved=int(reserved), utilisation=utilisation,
                               note=self._utilisation_note or "")
