"""The PyTorch DCGAN tutorial's training loop, written out as the tutorial has it: its
Generator and Discriminator (64×64; other sizes use tui-gan's models, which at 64×64 are
the same layer for layer), BCELoss, two Adam optimizers, batches from a DataLoader moved to
the device one at a time, and the three ``.item()`` calls per step that sync the device.
``tui-gan bench`` (compare.py) measures tui-gan's engine against it.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn, optim

from ..core.config import TrainConfig
from ..data.pixels import from_uint8
from ..engine.devices import synchronize
from ..engine.models import weights_init
from ..engine.nets import build_models


class TutorialGenerator(nn.Module):
    def __init__(self, nz=100, ngf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, input):
        return self.main(input)


class TutorialDiscriminator(nn.Module):
    def __init__(self, ndf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, input):
        return self.main(input)


def tutorial_models(config: TrainConfig) -> tuple[nn.Module, nn.Module]:
    if config.image_size == 64:
        netG = TutorialGenerator(config.nz, config.ngf, config.channels)
        netD = TutorialDiscriminator(config.ndf, config.channels)
        netG.apply(weights_init)
        netD.apply(weights_init)
        return netG, netD
    return build_models(config)


def tutorial_folder_dataset(folder: str, image_size: int):
    """The tutorial's data path: ImageFolder with Resize, CenterCrop, ToTensor, Normalize.
    ImageFolder wants class subfolders; a flat folder of images is read with the same
    transforms (the tutorial puts its images in one subfolder)."""
    import torchvision.datasets as dset
    import torchvision.transforms as transforms
    from PIL import Image

    from ..data.imagefiles import scan_folder

    transform = transforms.Compose([
        transforms.Resize(image_size),
        transforms.CenterCrop(image_size),
        transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])
    root = Path(folder).expanduser()
    if any(p.is_dir() for p in root.iterdir()):
        return dset.ImageFolder(root=str(root), transform=transform)
    files = scan_folder(root)

    class Flat(torch.utils.data.Dataset):
        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            with Image.open(files[i]) as img:
                return transform(img.convert("RGB")), 0

    return Flat()


def tutorial_loop(config: TrainConfig, images, device: torch.device, steps: int, warmup: int,
                  workers: int = 2, seconds: float | None = None) -> tuple[float, int]:
    """The tutorial's loop for ``warmup`` + ``steps`` steps over ``images``: uint8 (CPU) in
    memory, or a dataset on disk read by ``workers`` DataLoader workers as the tutorial's
    (workers=2). With ``seconds``, the timed steps go on until that many seconds have
    passed and at least ``steps`` are done. Returns images per second over the timed
    steps, and how many there were."""
    torch.manual_seed(config.seed)
    netG, netD = (m.to(device) for m in tutorial_models(config))
    criterion = nn.BCELoss()
    real_label, fake_label = 1.0, 0.0
    optimizerD = optim.Adam(netD.parameters(), lr=config.lr_d, betas=(config.beta1, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=config.lr_g, betas=(config.beta1, 0.999))
    if isinstance(images, torch.Tensor):  # in memory: normalised once, as ImageFolder would yield them
        dataset, workers = torch.utils.data.TensorDataset(from_uint8(images)), 0
    else:
        dataset = images
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True,
                                             num_workers=workers)
    nz = config.nz
    done, started = 0, 0.0

    def enough() -> bool:  # the tutorial's .item() calls keep the clock honest
        return done >= warmup + steps and (seconds is None or time.perf_counter() - started >= seconds)

    while not enough():  # epochs: a new pass over the data only if more steps are due
        for data in dataloader:
            if done == warmup:
                synchronize(device)
                started = time.perf_counter()
            netD.zero_grad()
            real_cpu = data[0].to(device)
            b_size = real_cpu.size(0)
            label = torch.full((b_size,), real_label, dtype=torch.float, device=device)
            output = netD(real_cpu).view(-1)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()  # noqa: F841 - the tutorial's per-step syncs
            noise = torch.randn(b_size, nz, 1, 1, device=device)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach()).view(-1)
            errD_fake = criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()  # noqa: F841
            errD = errD_real + errD_fake  # noqa: F841
            optimizerD.step()
            netG.zero_grad()
            label.fill_(real_label)
            output = netD(fake).view(-1)
            errG = criterion(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()  # noqa: F841
            optimizerG.step()
            done += 1
            if enough():
                break
    synchronize(device)
    timed = done - warmup
    return timed * config.batch_size / (time.perf_counter() - started), timed
