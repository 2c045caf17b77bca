"""The PyTorch reference of the benchmark suite: the same architectures, optimizer and batch as genjax's default
configs, trained the same way, eager or under `torch.compile`. Needs the bench extra (`pip install -e '.[bench]'`:
torch 2.13.0). It runs on the GPU when torch sees CUDA, as genjax does there, and each record names the device.

Each model mirrors its genjax counterpart layer for layer (same shapes, activations, losses, Adam settings), and each
step does the same work: the batch is gathered from resident uint8 images by index and scaled to [0, 1]. The GANs
draw fresh latents for the discriminator update and again for the generator update, as `gans.train_step` does.
Layouts follow each framework's convention (NCHW here, NHWC in genjax); depth-to-space (the 'subpixel' upsampling) is
`F.pixel_shuffle`, whose channel order differs from genjax's but costs the same.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from timing import WINDOW_STEPS, timed  # benchmarks/timing.py
from torch import nn

from genjax import config as cfg

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
  """genjax's Upsample2x of the default configs ('transpose'): a 4x4 stride-2 transposed conv, SAME on 7 and 14
  (padding 1). With kind='subpixel': a 3x3 conv to 4x the channels, then depth-to-space."""

  def __init__(self, cin, cout, bias=True, kind="transpose"):
    super().__init__()
    self.kind = kind
    if kind == "transpose":
      self.conv = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=bias)
    elif kind == "subpixel":
      self.conv = nn.Conv2d(cin, 4 * cout, 3, 1, 1, bias=bias)
    else:
      raise ValueError(f"unknown upsample {kind!r}")

  def forward(self, x):
    return self.conv(x) if self.kind == "transpose" else F.pixel_shuffle(self.conv(x), 2)


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


def _relu_mlp(sizes):
  """Linear layers between consecutive sizes, ReLU between them (vae_dense.MLP)."""
  layers = []
  for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
    layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
  return nn.Sequential(*layers)


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
    elif name in ("vae_dense", "iwae", "cvae"):
      m = cfg.model_config(name).model  # the sizes of genjax's default config (ReLU MLPs)
      cond = m.num_classes if name == "cvae" else 0  # cvae: the one-hot label joins both inputs
      self.enc = _relu_mlp([784 + cond, *m.hidden, 2 * m.latent_dim])
      self.dec = _relu_mlp([m.latent_dim + cond, *reversed(m.hidden), 784])
      self.net = nn.ModuleList([self.enc, self.dec])
      lr = 1e-3
    elif name in ("sparse_ae", "dae"):  # sigmoid codes: 1024 units with a KL-rho penalty; 256 on noisy inputs
      code = 1024 if name == "sparse_ae" else 256
      self.enc = nn.Sequential(nn.Flatten(), nn.Linear(784, code), nn.Sigmoid())
      self.dec = nn.Linear(code, 784)
      self.net = nn.ModuleList([self.enc, self.dec])
      lr = 3e-3 if name == "sparse_ae" else 1e-2
    self.opt = _adam(self.net.parameters(), lr)
    self.modules = [self.net]

  def compile(self):
    if hasattr(self, "enc"):
      self.enc, self.dec = torch.compile(self.enc), torch.compile(self.dec)
    else:
      self.net = torch.compile(self.net)

  def loss(self, x, y):
    flat = x.flatten(1)
    if self.name in ("vae_dense", "cvae", "iwae"):
      cond = [F.one_hot(y, 10).float()] if self.name == "cvae" else []
      mean, logvar = self.enc(torch.cat([flat, *cond], 1)).chunk(2, dim=1)
      if self.name == "iwae":  # k = 5 importance samples, the bound log (1/k) sum_i w_i
        eps = torch.randn(5, *mean.shape)
        z = mean + torch.exp(0.5 * logvar) * eps
        logits = self.dec(z.flatten(0, 1)).view(5, x.shape[0], 784)
        log_px = -F.binary_cross_entropy_with_logits(logits, flat.expand(5, -1, -1), reduction="none").sum(-1)
        log_pz = -0.5 * (z ** 2).sum(-1)
        log_qz = -0.5 * (eps ** 2 + logvar).sum(-1)
        return -(torch.logsumexp(log_px + log_pz - log_qz, 0) - np.log(5.0)).mean()
      z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
      logits = self.dec(torch.cat([z, *cond], 1))
      recon = F.binary_cross_entropy_with_logits(logits, flat, reduction="none").sum(1)
      return (recon + _kl(mean, logvar)).mean()
    if self.name == "vae":
      mean, logvar = self.enc(x).chunk(2, dim=1)
      z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
      logits = self.dec(z).flatten(1)
      recon = F.binary_cross_entropy_with_logits(logits, flat, reduction="none").sum(1)
      return (recon + _kl(mean, logvar)).mean()
    if self.name in ("sparse_ae", "dae"):
      noisy = x + 0.5 * torch.randn_like(x) if self.name == "dae" else x  # the loss is against the clean x
      h = self.enc(noisy)
      loss = ((torch.sigmoid(self.dec(h)) - flat) ** 2).mean(1).mean()
      if self.name == "sparse_ae":
        rho_hat = h.mean(0).clamp(1e-6, 1 - 1e-6)
        loss = loss + 1e-3 * (0.05 * torch.log(0.05 / rho_hat) + 0.95 * torch.log(0.95 / (1 - rho_hat))).sum()
      return loss
    out = self.net(x).flatten(1)
    if self.name == "ae":  # its default loss is bce on logits
      return F.binary_cross_entropy_with_logits(out, flat, reduction="none").sum(1).mean()
    if self.name == "ae_dense":
      out = torch.sigmoid(out)
    return ((out - flat) ** 2).sum(1).mean()

  def step(self, x, y):
    self.opt.zero_grad(set_to_none=True)
    loss = self.loss(x, y)
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


class _MLPGenerator(nn.Module):
  def __init__(self, cond=0):
    super().__init__()
    self.cond = cond
    self.layers = nn.ModuleList([nn.Linear(64 + cond, 256), nn.Linear(256 + cond, 512), nn.Linear(512 + cond, 784)])

  def forward(self, z, y1h):
    h = z
    for i, layer in enumerate(self.layers):
      h = layer(torch.cat([h, y1h], 1) if self.cond else h)
      h = F.relu(h) if i < 2 else torch.tanh(h)
    return h.view(-1, 1, 28, 28)


class _MLPDiscriminator(nn.Module):
  """cgan's appends the one-hot label to every layer's input and adds the projection <embed(y), h>."""

  def __init__(self, cond=0):
    super().__init__()
    self.cond = cond
    self.layers = nn.ModuleList([nn.Linear(784 + cond, 512), nn.Linear(512 + cond, 256), nn.Linear(256 + cond, 1)])
    self.embed = nn.Embedding(cond, 256) if cond else None

  def forward(self, x, y1h, y):
    h = x.flatten(1)
    for layer in self.layers[:2]:
      h = F.leaky_relu(layer(torch.cat([h, y1h], 1) if self.cond else h), 0.2)
    out = self.layers[2](torch.cat([h, y1h], 1) if self.cond else h)[:, 0]
    return out + (self.embed(y) * h).sum(1) if self.cond else out


class _DCDiscriminator(nn.Module):
  """genjax/models/gan.py's D: 4x4 stride-2 convs padded as flax's SAME (7x7 -> 4x4 pads 1 before and 2 after),
  LeakyReLU(0.2), the minibatch standard deviation appended as one more channel, a dense logit."""

  def __init__(self, features=(32, 64, 128, 256), minibatch_std=True):
    super().__init__()
    layers, c, size = [], 1, 28
    for f in features:
      out = -(-size // 2)
      pad = max((out - 1) * 2 + 4 - size, 0)
      layers += [nn.ZeroPad2d((pad // 2, pad - pad // 2, pad // 2, pad - pad // 2)), nn.Conv2d(c, f, 4, 2, 0),
                 nn.LeakyReLU(0.2)]
      c, size = f, out
    self.net, self.minibatch_std = nn.Sequential(*layers), minibatch_std
    self.out = nn.Linear(size * size * (c + minibatch_std), 1)

  def forward(self, x, y1h, y):
    h = self.net(x)
    if self.minibatch_std:
      s = torch.sqrt(h.var(dim=0, unbiased=False) + 1e-8).mean()
      h = torch.cat([h, s.expand(h.shape[0], 1, *h.shape[2:])], dim=1)
    return self.out(h.flatten(1))[:, 0]


class _GAN:
  """gan (DCGAN), gan_mlp and cgan (the non-saturating loss, Adam at the default config's rate, b1=0.5); wgan (5
  critic steps, weight clipping at the config's step.clip, RMSProp as genjax/configs/wgan.py) and wgan_gp (5 critic
  steps, a per-sample gradient penalty of weight 10 on interpolates, Adam as genjax/configs/wgan_gp.py)."""

  def __init__(self, name):
    self.name, self.latent = name, 64
    cond = 10 if name == "cgan" else 0
    self.gen = _DCGenerator() if name == "gan" else _MLPGenerator(cond)
    c = cfg.model_config(name)
    self.disc = (_DCDiscriminator(tuple(c.model.disc_features), c.model.minibatch_std) if name == "gan" else
                 _MLPDiscriminator(cond))
    self.n_critic = 5 if name.startswith("wgan") else 1
    self.clip = c.step.get("clip", 0.0)
    o = c.optim
    if o.name == "rmsprop":  # wgan: no momentum, eps added outside the square root (torch's form and optax's here)
      make = lambda params: torch.optim.RMSprop(params, lr=o.lr, alpha=o.b2, eps=1e-8, momentum=o.b1)
    else:
      make = lambda params: torch.optim.Adam(params, lr=o.lr, betas=(o.b1, o.b2), eps=o.get("eps", 1e-8))
    self.opt_g, self.opt_d = make(self.gen.parameters()), make(self.disc.parameters())
    self.modules = [self.gen, self.disc]

  def compile(self):
    self.gen, self.disc = torch.compile(self.gen), torch.compile(self.disc)

  def _g(self, b, y1h):
    return self.gen(torch.randn(b, self.latent), y1h) if self.name != "gan" else self.gen(torch.randn(b, self.latent))

  def step(self, x_all, y_all):
    x_all = 2.0 * x_all - 1.0
    b = x_all.shape[0] // self.n_critic
    for i in range(self.n_critic):  # each critic update reads its own real batch
      x, y = x_all[i * b:(i + 1) * b], y_all[i * b:(i + 1) * b]
      y1h = F.one_hot(y, 10).float()
      with torch.no_grad():
        fake = self._g(b, y1h)
      real_logits, fake_logits = self.disc(x, y1h, y), self.disc(fake, y1h, y)
      if self.name.startswith("wgan"):
        d_loss = fake_logits.mean() - real_logits.mean()
        if self.name == "wgan_gp":
          t = torch.rand(b, 1, 1, 1)
          mix = (t * x + (1 - t) * fake).requires_grad_(True)
          (grad,) = torch.autograd.grad(self.disc(mix, y1h, y).sum(), mix, create_graph=True)
          d_loss = d_loss + 10.0 * ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
      else:
        d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
      self.opt_d.zero_grad(set_to_none=True)
      d_loss.backward()
      self.opt_d.step()
      if self.name == "wgan":
        with torch.no_grad():
          for p in self.disc.parameters():
            p.clamp_(-self.clip, self.clip)
    x, y = x_all[:b], y_all[:b]
    y1h = F.one_hot(y, 10).float()
    logits = self.disc(self._g(b, y1h), y1h, y)
    g_loss = -logits.mean() if self.name.startswith("wgan") else F.softplus(-logits).mean()
    self.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()  # D's parameters get gradients too, cleared by opt_d.zero_grad before they are used
    self.opt_g.step()
    return g_loss


class _GMMN:
  """gmmn: uniform noise (10) -> ReLU 64, 256, 256, 1024 -> sigmoid pixels, trained on the unbiased MMD^2 with
  Gaussian kernels of bandwidths {2, 5, 10, 20, 40, 80}."""

  def __init__(self, name):
    sizes = (10, 64, 256, 256, 1024)
    layers = []
    for a, b in zip(sizes, sizes[1:]):
      layers += [nn.Linear(a, b), nn.ReLU()]
    self.gen = nn.Sequential(*layers, nn.Linear(1024, 784), nn.Sigmoid())
    self.opt = _adam(self.gen.parameters(), 1e-3)
    self.modules = [self.gen]

  def compile(self):
    self.gen = torch.compile(self.gen)

  @staticmethod
  def _kernel(a, b):
    d2 = ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T).clamp_min(0.0)
    return sum(torch.exp(-d2 / (2.0 * s * s)) for s in (2.0, 5.0, 10.0, 20.0, 40.0, 80.0))

  def step(self, x, y):
    real = x.flatten(1)
    b = real.shape[0]
    fake = self.gen(torch.rand(b, 10) * 2.0 - 1.0)
    off = lambda k: (k.sum() - k.diagonal().sum()) / (b * (b - 1))  # noqa: E731
    loss = off(self._kernel(fake, fake)) + off(self._kernel(real, real)) - 2.0 * self._kernel(fake, real).mean()
    self.opt.zero_grad(set_to_none=True)
    loss.backward()
    self.opt.step()
    return loss


MODELS = {**{n: _Reconstruct for n in ("ae", "ae_dense", "ae_linear", "sparse_ae", "dae", "vae", "vae_dense", "cvae",
                                       "iwae")},
          **{n: _GAN for n in ("gan", "gan_mlp", "cgan", "wgan", "wgan_gp")}, "gmmn": _GMMN}


def device() -> str:
  """Where PyTorch runs: the GPU when torch sees CUDA (as genjax runs on it), else the CPU."""
  return "cuda" if torch.cuda.is_available() else "cpu"


def measure(name: str, batch: int, mode: str, min_seconds: float) -> dict:
  """images/s of `name`'s training step at `batch`, `mode` 'eager' or 'compile', on `device()`; compile_s is the
  first steps' extra time over the steady state."""
  with torch.device(device()):  # parameters, optimizer state and every random draw made on the device
    return _measure(name, batch, mode, min_seconds)


def _measure(name: str, batch: int, mode: str, min_seconds: float) -> dict:
  torch.manual_seed(0)
  model = MODELS[name](name)
  if mode == "compile":
    # Compiled afresh for each model and batch, as in a new process. Dynamo's caches are per code object, and every
    # compiled module shares the wrapper's: in one long run they filled after 8 variants (at the 9th model), and
    # dynamo then ran the rest eagerly without an error. Should a single step still hit the limit, it now raises.
    torch._dynamo.reset()
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    model.compile()
  elif mode != "eager":
    raise ValueError(f"unknown PyTorch mode {mode!r}")
  for m in model.modules:
    m.train()
  gen = np.random.default_rng(0)
  dev = device()  # the data resident there too, as genjax's
  images = torch.from_numpy(gen.integers(0, 256, (POOL, 1, 28, 28), dtype=np.uint8)).to(dev)
  labels = torch.from_numpy(gen.integers(0, 10, (POOL,))).to(dev)
  idx = torch.from_numpy(gen.integers(0, POOL, (batch * getattr(model, "n_critic", 1),))).to(dev)

  def once():
    model.step(images[idx].float() / 255.0, labels[idx]).item()  # .item(): wait for the step

  def window():  # WINDOW_STEPS steps queued, then one wait, as genjax's timing
    for _ in range(WINDOW_STEPS - 1):
      model.step(images[idx].float() / 255.0, labels[idx])
    once()

  t = time.perf_counter()
  once()
  once()
  first = time.perf_counter() - t
  median, repeats = timed(window, min_seconds)
  median /= WINDOW_STEPS
  return {"images_per_sec": batch / median, "compile_s": max(first - 2 * median, 0.0), "repeats": repeats,
          "torch_device": dev}
