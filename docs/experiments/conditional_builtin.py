"""How often a conditional checkpoint's samples are the class asked for, read by the
independent glyph classifier of conditional.py (trained on real broad-style digits, never
on D): the shipped path end to end, `tui-gan --conditional` on the built-in digits, sampled
as `tui-gan sample --class` samples (batches that mix the classes).

    PYTHONPATH=. python docs/experiments/conditional_builtin.py RUN_DIR_OR_CHECKPOINT
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conditional import glyphs, predict, train_classifier  # noqa: E402

from tui_gan.engine.checkpoint import load_checkpoint  # noqa: E402
from tui_gan.engine.sampling import generator_from_checkpoint, sample_images  # noqa: E402

PER_CLASS = 100


def main() -> None:
    state = load_checkpoint(sys.argv[1])
    names = state["config"]["class_names"]
    size = state["config"]["image_size"]
    assert names == [str(d) for d in range(10)] and size == 32, "a conditional run on the built-in digits at 32 px"
    images, labels = glyphs(10_000, 1)
    test_images, test_labels = glyphs(2_000, 2)
    judge = train_classifier(torch.from_numpy(images), torch.from_numpy(labels).long(), 10, 6, 0)
    held_out = (predict(judge, torch.from_numpy(test_images)) == torch.from_numpy(test_labels)).float().mean()
    net = generator_from_checkpoint(state, torch.device("cpu"))
    asked = torch.arange(10).repeat_interleave(PER_CLASS)
    fake = sample_images(net, len(asked), 0, torch.device("cpu"), asked)
    right = (predict(judge, fake) == asked).float().view(10, PER_CLASS).mean(1)
    print(f"checkpoint {state['path']} at step {state['step']}: classifier held-out accuracy {held_out:.1%}")
    print(f"class accuracy {right.mean():.1%} mean, worst class {names[int(right.argmin())]} at {right.min():.1%}")


if __name__ == "__main__":
    main()
