"""``python -m tests.hanging_rank [tui-gan flags] --nproc 2``, for tests/test_distributed.py:
tui-gan launching its processes as ``--nproc`` does, each of them running this module. In
rank 1 the 40th gradient all-reduce (step 20, after the first epoch's last.pt) writes its
pid to $HANG_FILE and then blocks in a wait that no peer's death ends (a TCPStore's wait
for a key nobody sets, in C++): a stand-in for a CUDA rank in SyncBatchNorm's all-gather or
its wait for the GPU, which NCCL does not end when another rank dies, where gloo's
collectives fail at once.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path


def hang_at_the_40th_reduce() -> None:
    import torch.distributed as dist

    from tui_gan.engine.world import World

    reduce = World.reduce_gradients
    calls = [0]

    def hanging(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 40:
            Path(os.environ["HANG_FILE"]).write_text(str(os.getpid()))
            store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=timedelta(hours=1))
            store.wait(["nobody sets this"])
        return reduce(self, *args, **kwargs)

    World.reduce_gradients = hanging  # type: ignore[method-assign]


def main() -> int:
    from tui_gan import launch
    from tui_gan.cli import main as tui_gan

    if "RANK" not in os.environ:  # the launcher: its processes run this module too
        start = launch.launch
        launch.launch = lambda args, argv, run_dir, module="tui_gan": start(args, argv, run_dir, "tests.hanging_rank")
    elif os.environ["RANK"] == "1":
        hang_at_the_40th_reduce()
    return tui_gan(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
