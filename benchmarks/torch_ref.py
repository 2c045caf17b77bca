"""The PyTorch reference of the benchmark suite: the same architectures, optimizer and batch as genjax's default
configs, trained the same way, eager or under `torch.compile`. Needs the bench extra (`pip install -e '.[bench]'`:
torch 2.13.0, the CPU build).

Each model mirrors its genjax counterpart layer for layer (same shapes, activations, losses, Adam settings), and each
step does the same work: the batch is gathered from resident uint8 images by index and scaled to [0, 1]. The GANs
draw fresh latents for the discriminator update and again for the generator update, as `gans.train_step` does.
Layouts follow each framework's convention (NCHW here, NHWC in genjax); depth-to-space is `nn.PixelShuffle`, whose
channel order differs from genjax's but costs the same.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

POOL = 4096


def _adam(params, lr, b1=0.9):
  return torch.optim.Adam(params, lr=lr, betas=(b1, 0.999))


def _conv_encoder(out_dim, features=(32, 64)):
  layers, c = [], 1
  for f in features:  # 4x4 stride 2, SAME on 28 and 14 is padding 1
    layers += [nn.Conv2d(c, f, 4, 2, 1), nn.LeakyReLU(0.2)]
    c = f
  return nn.Sequential(*layers, nn.Flatten(), nn.Linear(7 * 7 * c, out_dim))


class _Upsample(nn.Module):
  """genjax's 'subpixel' Upsample2x: a 3x3 conv to 4x the channels, then depth-to-space."""

  def __init__(self, cin, cout, bias=True):
    super().__init__()
    self.conv = nn.Conv2d(cin, 4 * cout, 3, 1, 1, bias=bias)

  def forward(self, x):
    return F.pixel_shuffle(self.conv(x), 2)


class _ConvDecoder(nn.Module):
  def __init__(self, in_dim, features=(64, 32)):
    super().__init__()
    self.f0 = features[0]
    self.project = nn.Linear(in_dim, 7 * 7 * features[0])
    self.up1 = _Upsample(features[0], features[1])
    self.up2 = _Upsample(features[1], 1)

  def forward(self, z):
    h = F.relu(self.project(z)).view(-1, self.f0, 7, 7)
    return self.up2(F.relu(self.up1(h)))


def _kl(mean, logvar):
  return 0.5 * torch.sum(mean ** 2 + logvar.exp() - 1.0 - logvar, dim=1)


class _Reconstruct:
  """ae, ae_dense, ae_linear, vae, vae_dense: one network, one optimizer."""

  def __init__(self, name):
    self.name = name
    if name == "ae_dense":
      self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Sigmoid(), nn.Linear(32, 784))
      lr = 1e-2
    elif name == "ae_linear":
      self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.Linear(16, 784))
      lr = 3e-3
    elif name == "ae":
      self.net = nn.Sequential(_conv_encoder(16), _ConvDecoder(16))
      lr = 1e-3
    elif name == "vae":
      self.enc, self.dec = _conv_encoder(32), _ConvDecoder(16)
      self.net = nn.ModuleList([self.enc, self.dec])
      lr = 1e-3
    elif name == "vae_dense":
      self.enc = nn.Sequential(nn.Flatten(), nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 40))
      self.dec = nn.Sequential(nn.Linear(20, 400), nn.ReLU(), nn.Linear(400, 784))
      self.net = nn.ModuleList([self.enc, self.dec])
      lr = 1e-3
    self.opt = _adam(self.net.parameters(), lr)
    self.modules = [self.net]

  def compile(self):
    if self.name.startswith("vae"):
      self.enc, self.dec = torch.compile(self.enc), torch.compile(self.dec)
    else:
      self.net = torch.compile(self.net)

  def loss(self, x):
    flat = x.flatten(1)
    if self.name.startswith("vae"):
      mean, logvar = self.enc(x).chunk(2, dim=1)
      z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
      logits = self.dec(z).flatten(1)
      recon = F.binary_cross_entropy_with_logits(logits, flat, reduction="none").sum(1)
      return (recon + _kl(mean, logvar)).mean()
    out = self.net(x).flatten(1)
    if self.name == "ae":  # its default loss is bce on logits
      return F.binary_cross_entropy_with_logits(out, flat, reduction="none").sum(1).mean()
    if self.name == "ae_dense":
      out = torch.sigmoid(out)
    return ((out - flat) ** 2).sum(1).mean()

  def step(self, x):
    self.opt.zero_grad(set_to_none=True)
    loss = self.loss(x)
    loss.backward()
    self.opt.step()
    return loss


class _DCGenerator(nn.Module):
  def __init__(self, latent=64, features=(128, 64)):
    super().__init__()
    self.f0 = features[0]
    self.project = nn.Linear(latent, 7 * 7 * features[0], bias=False)
    self.bn0 = nn.BatchNorm1d(7 * 7 * features[0], momentum=0.1)  # flax's BatchNorm on the dense output
    self.up1 = _Upsample(features[0], features[1], bias=False)
    self.bn1 = nn.BatchNorm2d(features[1], momentum=0.1)
    self.up2 = _Upsample(features[1], 1)

  def forward(self, z):
    h = F.relu(self.bn0(self.project(z))).view(-1, self.f0, 7, 7)
    return torch.tanh(self.up2(F.relu(self.bn1(self.up1(h)))))


class _GAN:
  """gan (DCGAN) and gan_mlp: the non-saturating loss, Adam(2e-4, b1=0.5) for both players."""

  def __init__(self, name):
    self.latent = 64
    if name == "gan":
      self.gen = _DCGenerator()
      self.disc = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(32, 64, 4, 2, 1),
                                nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(7 * 7 * 64, 1))
    else:
      self.gen = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 784),
                               nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))
      self.disc = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256),
                                nn.LeakyReLU(0.2), nn.Linear(256, 1))
    self.opt_g = _adam(self.gen.parameters(), 2e-4, 0.5)
    self.opt_d = _adam(self.disc.parameters(), 2e-4, 0.5)
    self.modules = [self.gen, self.disc]

  def compile(self):
    self.gen, self.disc = torch.compile(self.gen), torch.compile(self.disc)

  def step(self, x):
    x = 2.0 * x - 1.0
    b = x.shape[0]
    with torch.no_grad():
      fake = self.gen(torch.randn(b, self.latent))
    real_logits, fake_logits = self.disc(x)[:, 0], self.disc(fake)[:, 0]
    d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    self.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    self.opt_d.step()
    fake = self.gen(torch.randn(b, self.latent))
    g_loss = F.softplus(-self.disc(fake)[:, 0]).mean()
    self.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()  # D's parameters get gradients too, cleared by opt_d.zero_grad before they are used
    self.opt_g.step()
    return g_loss


MODELS = {"ae_dense": _Reconstruct, "ae_linear": _Reconstruct, "ae": _Reconstruct, "vae": _Reconstruct,
          "vae_dense": _Reconstruct, "gan": _GAN, "gan_mlp": _GAN}


def measure(name: str, batch: int, mode: str, min_seconds: float) -> dict:
  """images/s of `name`'s training step at `batch`, `mode` 'eager' or 'compile'; compile_s is the first steps'
  extra time over the steady state."""
  torch.manual_seed(0)
  model = MODELS[name](name)
  if mode == "compile":
    model.compile()
  elif mode != "eager":
    raise ValueError(f"unknown PyTorch mode {mode!r}")
  for m in model.modules:
    m.train()
  gen = np.random.default_rng(0)
  images = torch.from_numpy(gen.integers(0, 256, (POOL, 1, 28, 28), dtype=np.uint8))
  idx = torch.from_numpy(gen.integers(0, POOL, (batch,)))

  def once():
    model.step(images[idx].float() / 255.0).item()  # .item(): wait for the step, as genjax's timing does

  t = time.perf_counter()
  once()
  once()
  first = time.perf_counter() - t
  times, start = [], time.perf_counter()
  while time.perf_counter() - start < min_seconds or len(times) < 3:
    t = time.perf_counter()
    once()
    times.append(time.perf_counter() - t)
  median = statistics.median(times)
  return {"images_per_sec": batch / median, "compile_s": max(first - 2 * median, 0.0), "repeats": len(times)}
