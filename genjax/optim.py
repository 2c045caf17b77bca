"""Optax transformations built from the `optim` config section."""

from __future__ import annotations

import optax

from genjax.errors import UserError

BURDA_STAGES = 8  # i = 0..7: 3^i epochs at lr 10^(-i/7) of the first, 3280 epochs in all


def burda_schedule(lr: float, epoch_steps: int):
  """Burda, Grosse and Salakhutdinov's (2015) schedule: 3^i epochs at lr * 10^(-i/7) for i = 0, ..., 7, then the
  last rate; `epoch_steps` steps make one epoch (60000 / 20 = 3000 for MNIST at their batch of 20)."""
  boundaries, at = {}, 0
  for i in range(BURDA_STAGES - 1):
    at += 3 ** i * epoch_steps
    boundaries[at] = 10 ** (-1 / 7)
  return optax.piecewise_constant_schedule(lr, boundaries)


def make_tx(optim, lr: float | None = None) -> optax.GradientTransformation:
  """Adam/AdamW/SGD/RMSProp with optional warmup, cosine decay, Burda et al.'s stepped decay and global-norm
  clipping; `lr` overrides `optim.lr`. schedule=cosine: from 0 up to `lr` over warmup_steps (at least one step),
  then a cosine down to 0 at decay_steps; with decay_start > 0, the warmup (none when warmup_steps is 0), `lr` held
  until decay_start, then the cosine from `lr` at decay_start to 0 at decay_steps."""
  lr = optim.lr if lr is None else lr
  schedule = lr
  if optim.get("schedule", "constant") == "cosine" and optim.get("decay_start", 0) > 0:
    # Linear warmup from 0 (if any), the rate held until decay_start, then a cosine to 0 at decay_steps.
    warmup, start = optim.warmup_steps, max(optim.decay_start, optim.warmup_steps)
    parts = [optax.linear_schedule(0.0, lr, warmup)] if warmup > 0 else []
    parts += [optax.constant_schedule(lr)] if start > warmup else []
    parts += [optax.cosine_decay_schedule(lr, optim.decay_steps - start)]
    schedule = optax.join_schedules(parts, [warmup] * (warmup > 0) + [start] * (start > warmup))
  elif optim.get("schedule", "constant") == "cosine":
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(optim.warmup_steps, 1), optim.decay_steps)
  elif optim.get("schedule", "constant") == "burda":
    schedule = burda_schedule(lr, optim.epoch_steps)
  elif optim.get("warmup_steps", 0) > 0:
    schedule = optax.linear_schedule(0.0, lr, optim.warmup_steps)
  name = optim.get("name", "adam")
  # inject_hyperparams: the learning rate lives in the optimizer state, not in the transformation's closure, so the
  # members of a population that sweeps optim.lr share one transformation (the same program) with their own rates.
  inject = optax.inject_hyperparams if optim.get("inject_hyperparams", False) else (lambda f: f)
  eps = optim.get("eps", 1e-8)  # Adam's epsilon (Burda et al. use 1e-4)
  if name == "adam":
    opt = inject(optax.adam)(schedule, b1=optim.b1, b2=optim.b2, eps=eps)
  elif name == "adamw":
    opt = inject(optax.adamw)(schedule, b1=optim.b1, b2=optim.b2, eps=eps, weight_decay=optim.weight_decay)
  elif name == "sgd":
    opt = inject(optax.sgd)(schedule, momentum=optim.b1 or None)
  elif name == "rmsprop":  # b2: the squared-gradient decay; b1: momentum (0: none); eps outside the sqrt, as torch
    opt = inject(optax.rmsprop)(schedule, decay=optim.b2, momentum=optim.b1 or None, eps_in_sqrt=False)
  else:
    raise UserError(f"unknown optimizer optim.name='{name}'; expected adam, adamw, sgd or rmsprop")
  clip = optim.get("grad_clip", 0.0)
  return optax.chain(optax.clip_by_global_norm(clip), opt) if clip > 0 else opt
