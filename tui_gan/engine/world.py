"""The run's processes (torch.distributed): which one this is, its share of each batch,
and the collectives the step and the requests need.

One process (no torchrun, ``--nproc 1``) gets ``World.single()``: every method returns at
once and changes nothing, so a one-process run is exactly the engine it always was.

Several processes (``tui-gan --nproc N`` or ``torchrun ... -m tui_gan``) share every
step's *global* batch (``--batch-size`` images, split into contiguous shares of
⌈B/N⌉ or ⌊B/N⌋ rows) and keep identical weights by summing their gradients. Each rank
weights its loss by its share of the batch before backward(), so the sum is the gradient
of the whole batch's mean loss, whatever N is and whether B divides by it, with BatchNorm
per rank or synchronised (SyncBatchNorm's backward sums terms across the ranks, which
weighting the gradients after backward() would get wrong). The noise and the augmentation's
draws are made for the whole batch on every process and sliced, so every process's
random generators stay in step and the data order is the one-process run's.

Two collectives per step (D's gradients; G's gradients with the five statistics appended,
so the losses shown are the whole batch's) plus one small broadcast of rank 0's requests
at a cadence every rank knows (see lockstep.py), and no wait for the device: BatchNorm
normalises each rank's share. With ``--sync-bn`` (gan.py) every BatchNorm pass adds one of
SyncBatchNorm's own, and every forward one a wait for the GPU. Gradients are reduced by
hand rather than through DistributedDataParallel: the GAN step runs D three times and G's
backward goes through D, whose gradients there are discarded, which DDP would reduce anyway.

A rank whose peer died while it waits in a collective that never fails (NCCL's) ends
itself a few seconds later (PeerWatch), so the launcher can name the dead one at once.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.config import PEER_LOST_EXIT, check_shared_batch, launched_rank
from ..core.errors import UserError

#: How long a collective may wait for a peer before the run fails (a paused run keeps
#: exchanging small packets, so pausing never comes near it). Tests shorten it with
#: TUI_GAN_COLLECTIVE_TIMEOUT (seconds) to show that a pause outlasts it.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


#: Seconds a process whose peer on this machine died leaves its own collective to fail (as
#: gloo's do at once) before it ends itself: NCCL's collectives and SyncBatchNorm's waits
#: for the GPU go on waiting for a dead peer.
PEER_GRACE_SECONDS = 5.0
PEER_POLL_SECONDS = 0.5


def collective_timeout() -> timedelta:
    try:
        return timedelta(seconds=float(os.environ["TUI_GAN_COLLECTIVE_TIMEOUT"]))
    except (KeyError, ValueError):
        return COLLECTIVE_TIMEOUT


@dataclass
class World:
    """This process's rank among ``size`` and the collectives of a run across them."""

    rank: int = 0
    size: int = 1
    control_group: Any = None
    """A gloo group for the requests' packets: CPU tensors, so a CUDA run's exchange never
    waits for the device (the gradients go through the default group, NCCL on CUDA)."""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    watch: PeerWatch | None = None
    """Ends this process soon after another of the run on this machine dies (PeerWatch)."""
    _shares: dict[int, tuple[slice, float]] = field(default_factory=dict)

    @classmethod
    def single(cls) -> World:
        return cls()

    @classmethod
    def join(cls, device: torch.device) -> tuple[World, torch.device]:
        """Join the process group torchrun's environment describes (gloo on the CPU, NCCL
        on CUDA, each process on the GPU of its local rank); a world of one where there is
        none. Returns the world and the device this process trains on."""
        if launched_rank()[1] == 1:
            return cls.single(), device
        import torch.distributed as dist

        if device.type not in ("cpu", "cuda"):
            raise UserError(f"several processes train on CUDA GPUs or on the CPU, not on {device.type}; "
                            "use --device cuda or --device cpu")
        if device.type == "cuda" and device.index:
            raise UserError(f"--device {device}: with several processes each one takes the GPU of its "
                            "local rank; use --device cuda")
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=collective_timeout())
        control = dist.new_group(backend="gloo", timeout=collective_timeout()) if backend != "gloo" else None
        rank, size = dist.get_rank(), dist.get_world_size()
        places: list[Any] = [None] * size
        dist.all_gather_object(places, (_this_machine(), os.getpid()), group=control)
        peers = {r: pid for r, (machine, pid) in enumerate(places) if machine == places[rank][0] and r != rank}
        return cls(rank, size, control, device, PeerWatch(rank, peers).start()), device

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the run directory, measures, and serves viewers."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def describe(self) -> str:
        """What the first log line adds after the device: '' for one process."""
        if not self.distributed:
            return ""
        backend = "NCCL" if self.device.type == "cuda" else "gloo"
        return f" × {self.size} processes ({backend})"

    def check_batch(self, batch_size: int) -> None:
        """UserError when some process would get no image of a global batch."""
        check_shared_batch(batch_size, self.size)

    def share(self, batch_size: int) -> tuple[slice, float]:
        """This rank's rows of a global batch, and its weight (rows / batch_size)."""
        if batch_size not in self._shares:
            base, extra = divmod(batch_size, self.size)
            start = self.rank * base + min(self.rank, extra)
            rows = base + (1 if self.rank < extra else 0)
            self._shares[batch_size] = (slice(start, start + rows), rows / batch_size)
        return self._shares[batch_size]

    def rows(self, batch_size: int) -> slice | None:
        """share()'s rows, or None in a world of one (the whole batch, sliced nowhere)."""
        return self.share(batch_size)[0] if self.distributed else None

    # ================================================================== collectives

    def weighted(self, loss: torch.Tensor, batch_size: int) -> torch.Tensor:
        """``loss``, this rank's mean over its rows, weighted by its share of the batch, for
        backward(): the ranks' weighted losses sum to the whole batch's mean loss, so their
        gradients need only be summed (reduce_gradients). Weighting the loss rather than the
        gradients is what makes this exact with SyncBatchNorm, whose backward already sums
        terms of every rank's gradient across the ranks: weighting the gradients after
        backward() would leave the other ranks' terms in each unweighted (up to 1.6% off with
        shares of 43, 43 and 42 rows). ``loss`` itself in a world of one."""
        return loss * self.share(batch_size)[1] if self.distributed else loss

    def reduce_gradients(self, module: nn.Module, batch_size: int, extra: torch.Tensor | None = None) -> torch.Tensor | None:
        """Replace ``module``'s gradients by their sum over the ranks (each rank's came from its
        ``weighted`` loss) and ``extra``, a vector of per-rank means, by the whole batch's: the
        sum of each weighted by its rank's share. One collective."""
        if not self.distributed:
            return extra
        import torch.distributed as dist

        grads = [p.grad for p in module.parameters() if p.grad is not None]
        parts = [g.reshape(-1) for g in grads]
        if extra is not None:
            parts.append(extra.float().reshape(-1) * self.share(batch_size)[1])
        flat = torch.cat(parts)
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view(g.shape))
            offset += g.numel()
        return flat[offset:] if extra is not None else None

    def broadcast_modules(self, modules: dict[str, Any]) -> None:
        """Rank 0's models and optimizers on every rank. An optimizer whose state rank 0 has
        emptied (a rollback to before the first step) is emptied everywhere first, so every
        rank sends and receives the same tensors."""
        if not self.distributed:
            return
        import torch.distributed as dist

        optimizers = [m for _name, m in sorted(modules.items()) if not isinstance(m, nn.Module)]
        counts = torch.tensor([len(o.state) for o in optimizers], dtype=torch.int64)
        dist.broadcast(counts, 0, group=self.control_group)  # CPU: the gloo group
        for optimizer, count in zip(optimizers, counts.tolist()):
            if count == 0:
                optimizer.state.clear()
        self.broadcast_state(state_tensors(modules))

    def broadcast_state(self, tensors: list[torch.Tensor]) -> None:
        """Rank 0's values of ``tensors`` (weights, buffers, optimizer moments) on every rank."""
        if not self.distributed:
            return
        import torch.distributed as dist

        for t in tensors:
            if t.device == self.device or self.device.type == "cpu":
                dist.broadcast(t, 0)
            else:  # NCCL sends device tensors only (Adam's step counts live on the CPU)
                on_device = t.to(self.device)
                dist.broadcast(on_device, 0)
                t.copy_(on_device)

    def exchange(self, packet: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``packet`` (a small float64 CPU vector) on every rank."""
        if self.distributed:
            import torch.distributed as dist

            dist.broadcast(packet, 0, group=self.control_group)
        return packet

    def close(self, together: bool = False) -> None:
        """Leave the process group. ``together``: the run ended normally, so every rank
        first waits for the others (rank 0 saves last.pt after the last step), so that all
        destroy the group at about the same time. Without it a follower that tore down its
        connections while rank 0 was still saving aborted twice in one CI run, of about 50
        launches seen ("terminate called without an active exception", SIGABRT); it could not
        be reproduced on demand, so the barrier is the likely fix, not a proven one."""
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                if together:
                    dist.barrier(group=self.control_group)  # the gloo group: no device involved
                dist.destroy_process_group()
        if self.watch is not None:  # this rank is done with the others: they may exit now
            self.watch.stop()


class PeerWatch:
    """A thread that ends this process when another process of the run on this machine has
    died and this one has not ended PEER_GRACE_SECONDS later. A rank blocked in a collective
    that never fails (NCCL's; SyncBatchNorm's wait for the GPU) would otherwise end only
    when the launcher gives up on it, 30 to 120 s later: the ranks other than 0 ignore its
    SIGTERM (rank 0 turns stop signals into a stop at a step all share), and rank 0 cannot
    act on it while it waits. Where gloo's collectives fail at once, the process reports the
    failure itself well within the grace. Peers on other machines are not watched."""

    def __init__(self, rank: int, peers: dict[int, int]) -> None:
        self.rank = rank
        self.peers = peers
        """Rank -> pid of the other processes of the run on this machine."""
        self._stopped = threading.Event()

    def start(self) -> PeerWatch:
        if self.peers:
            threading.Thread(target=self._watch, name="peer-watch", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def dead_peer(self) -> tuple[int, int] | None:
        """(rank, pid) of a peer that has died, if one has."""
        return next(((rank, pid) for rank, pid in sorted(self.peers.items()) if not _alive(pid)), None)

    def _watch(self) -> None:
        while not self._stopped.wait(PEER_POLL_SECONDS):
            dead = self.dead_peer()
            if dead is None:
                continue
            if self._stopped.wait(PEER_GRACE_SECONDS):
                return
            print(f"tui-gan: rank {self.rank}: rank {dead[0]} (pid {dead[1]}) has died and this process was still "
                  "waiting for it, so it ends too", file=sys.stderr, flush=True)
            os._exit(PEER_LOST_EXIT)  # the main thread is blocked in a collective: nothing to unwind


def _this_machine() -> str:
    """This machine and pid namespace, so that each rank watches only the pids it can see."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{socket.gethostname()} {boot} {os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return socket.gethostname()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs: it exists and is not a zombie (dead, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def lost_peer_message(exc: Exception, message: str) -> str:
    """A failed step across processes, in one line: a broken collective means another rank
    died (the launcher names it); the checkpoint kept is the last one written, not this
    half-done step."""
    text = str(exc)
    if isinstance(exc, RuntimeError) and any(s in text for s in ("Connection", "gloo", "NCCL", "closed", "timed out")):
        cause = text.strip().splitlines()[0][:120] if text.strip() else type(exc).__name__
        return ("another process of this run stopped (see the launcher's line), so training cannot go on "
                f"(the step it was in is not saved; {cause})")
    return message + " (the step it was in is not saved)"


def state_tensors(modules: dict[str, Any]) -> list[torch.Tensor]:
    """Every tensor of the models' and optimizers' states, in an order all ranks share."""
    out: list[torch.Tensor] = []
    for _name, obj in sorted(modules.items()):
        if isinstance(obj, nn.Module):
            out += [t for _k, t in sorted(obj.state_dict(keep_vars=True).items()) if isinstance(t, torch.Tensor)]
        else:  # an optimizer: its per-parameter state, in parameter order
            for group in obj.param_groups:
                for p in group["params"]:
                    for _k, t in sorted(obj.state.get(p, {}).items()):
                        if isinstance(t, torch.Tensor):
                            out.append(t)
    return [t.data if isinstance(t, nn.Parameter) else t for t in out]
