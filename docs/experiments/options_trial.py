"""The trial behind docs/options.md: EMA, DiffAugment and hinge + spectral norm at equal
training time, on the cpu preset (the default CPU run's settings).

usage: python docs/experiments/options_trial.py VARIANT IMAGES SEED CPU_SECONDS OUT.json [STEPS]
VARIANT: bce (the tutorial's step, Gan.train_step itself) | augment | hinge | hinge_augment
IMAGES: built-in images to train on; CPU_SECONDS: stop after this much process CPU time
(docs/options.md used 1e9 and STEPS instead: step counts from each variant's measured cost).

Every run also keeps a moving average of G (it never feeds back into training) and
reports the SWD of the live and the averaged generator on 1,024 images, against 1,024 real
images of a fresh built-in set (seed 4242). The DiffAugment here became
tui_gan/engine/augment.py; the hinge + SN discriminator (BatchNorm left out, every
convolution spectrally normalised) was left out of tui-gan.
"""
import copy
import json
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from tui_gan.core.config import TrainConfig
from tui_gan.data.loader import load_dataset
from tui_gan.engine.augment import diff_augment
from tui_gan.engine.gan import Gan
from tui_gan.engine.models import generate
from tui_gan.engine.quality import RealReference

variant, n_images, seed, budget, out_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
max_steps = int(sys.argv[6]) if len(sys.argv) > 6 else 10**9
torch.set_num_threads(2)
device = torch.device("cpu")
cfg = TrainConfig(seed=seed, max_images=n_images, cache=False, amp=False)  # fp32, as measured
cfg.apply_preset("cpu", set())
cfg.channels = 3
data = load_dataset(cfg, device, None, [])
ref_cfg = TrainConfig(seed=4242, max_images=2048, cache=False)
ref_cfg.apply_preset("cpu", set())
ref_cfg.channels = 3
reference = RealReference(load_dataset(ref_cfg, device, None, []).subset(2048, 0)[:1024], seed=7)
gan = Gan(cfg, device)


def augment(x):
    """DiffAugment as tui_gan/engine/augment.py has it (the trial's own copy was identical:
    checked bit for bit), then channels-last as the cpu layers want."""
    return diff_augment(x, gan.noise_gen).contiguous(memory_format=torch.channels_last)


use_aug = "augment" in variant
hinge = variant.startswith("hinge")
aug = augment if use_aug else (lambda x: x)

if hinge:
    layers = []
    for m in gan.netD.main:
        if isinstance(m, nn.Sigmoid):
            continue
        if isinstance(m, nn.BatchNorm2d):
            continue
        if isinstance(m, nn.Conv2d):
            conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, bias=False)
            conv.weight.data.copy_(m.weight.data)
            m = spectral_norm(conv)
        layers.append(m)
    netD = nn.Sequential(*layers).to(memory_format=torch.channels_last)
    optD = torch.optim.Adam(netD.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, 0.999))
else:
    netD, optD = gan._d_forward, gan.optD

ema = copy.deepcopy(gan.netG)
ema.requires_grad_(False)
ema_params = list(ema.parameters())
g_params = list(gan.netG.parameters())
EMA_DECAY = 0.999


def ema_update(step):
    decay = min(EMA_DECAY, (1 + step) / (10 + step))
    torch._foreach_lerp_(ema_params, g_params, 1 - decay)


def step_fn(real):
    b = real.size(0)
    real = real.contiguous(memory_format=torch.channels_last)
    if variant == "bce":
        return gan.train_step(real)
    ones, zeros = torch.ones(b), torch.zeros(b)
    # (1) D
    netD.zero_grad(set_to_none=True)
    noise = torch.randn(b, cfg.nz, 1, 1, generator=gan.noise_gen)
    fake = gan.netG(noise)
    out_r = netD(aug(real)).view(-1)
    out_f = netD(aug(fake.detach())).view(-1)
    if hinge:
        loss_d = F.relu(1 - out_r).mean() + F.relu(1 + out_f).mean()
    else:
        loss_d = gan.criterion(out_r, ones) + gan.criterion(out_f, zeros)
    loss_d.backward()
    optD.step()
    # (2) G
    gan.netG.zero_grad(set_to_none=True)
    cpu = gan.speed.cpu_layers and not hinge
    if cpu:
        gan.netD.requires_grad_(False)
    out = netD(aug(fake)).view(-1)
    loss_g = -out.mean() if hinge else gan.criterion(out, ones)
    loss_g.backward(inputs=g_params)
    if cpu:
        gan.netD.requires_grad_(True)
    gan.optG.step()
    return loss_d.detach()


noise_eval = torch.randn(1024, cfg.nz, 1, 1, generator=torch.Generator().manual_seed(99))


def swd(netG):
    with torch.no_grad():
        fake = torch.cat([generate(netG, z) for z in noise_eval.split(64)])
    q = reference.compare(fake)
    return q.swd, q.diversity


step, epoch = 0, 0
used = 0.0
ema_time = 0.0
wall0 = time.perf_counter()
while used < budget and step < max_steps:
    for real in data.epoch_batches(seed, epoch, 0, cfg.batch_size):
        c0 = time.process_time()
        step_fn(real)
        e0 = time.process_time()
        ema_update(step)
        c1 = time.process_time()
        used += c1 - c0
        ema_time += c1 - e0
        step += 1
        if used >= budget or step >= max_steps:
            break
    epoch += 1
wall = time.perf_counter() - wall0
live = swd(gan.netG)
averaged = swd(ema)
result = dict(variant=variant, images=n_images, seed=seed, steps=step, cpu_s=used, wall_s=wall,
              ema_cpu_s=ema_time, swd_live=live[0], div_live=live[1], swd_ema=averaged[0], div_ema=averaged[1])
print(json.dumps(result))
with open(out_path, "w") as f:
    json.dump(result, f)
