"""Sparse overcomplete autoencoder: the dense autoencoder plus a sparsity penalty on its code h = s(W x + b).

loss = mean_batch(reconstruction) + sparsity_weight * penalty, with penalty
- `l1`: mean over the batch of sum_j |h_j|;
- `kl`: sum_j KL(rho || rho_hat_j), rho_hat_j the batch mean of the sigmoid activation h_j (per device under
  shard_map/pmap).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from genjax.errors import UserError
from genjax.models import ae_dense
from genjax.models.ae_dense import forward, psnr, reconstruction_terms
from genjax.state import pmean, step_key

SPARSITY = ("l1", "kl")
ACTIVE_THRESHOLD = 0.1  # a code unit counts as active on an example when h_j > this
_EPS = 1e-6


def validate(config) -> None:
  ae_dense.validate_common(config)
  s = config.step
  if s.sparsity not in SPARSITY:
    raise UserError(f"step.sparsity must be one of {SPARSITY}, got '{s.sparsity}'")
  if s.sparsity_weight < 0:
    raise UserError(f"step.sparsity_weight must be >= 0, got {s.sparsity_weight}")
  if not 0.0 < s.rho < 1.0:
    raise UserError(f"step.rho must be in (0, 1), got {s.rho}")
  if s.sparsity == "kl" and config.model.activation != "sigmoid":
    raise UserError(f"step.sparsity='kl' needs codes in (0, 1): set model.activation=sigmoid "
                    f"(got '{config.model.activation}') or use step.sparsity=l1")


def l1_penalty(h_BxK):
  """sum_j |h_j| per example, [B]."""
  return jnp.sum(jnp.abs(h_BxK), axis=-1)


def kl_penalty(h_BxK, rho):
  """sum_j KL(rho || rho_hat_j) = sum_j [rho log(rho / rho_hat_j) + (1 - rho) log((1 - rho) / (1 - rho_hat_j))],
  rho_hat_j = mean over the batch of h_j in (0, 1) (clipped to [1e-6, 1 - 1e-6]); a scalar, zero iff rho_hat = rho."""
  rho_hat = jnp.clip(jnp.mean(h_BxK, axis=0), _EPS, 1.0 - _EPS)
  return jnp.sum(rho * jnp.log(rho / rho_hat) + (1.0 - rho) * jnp.log((1.0 - rho) / (1.0 - rho_hat)))


def penalty(h_BxK, sparsity: str, rho: float):
  """The batch's sparsity penalty (a scalar): mean_batch l1_penalty, or kl_penalty."""
  if sparsity == "l1":
    return jnp.mean(l1_penalty(h_BxK))
  if sparsity == "kl":
    return kl_penalty(h_BxK, rho)
  raise ValueError(f"unknown sparsity '{sparsity}'; expected one of {SPARSITY}")


def code_stats(h_BxK):
  """Batch means of: `active_frac`, the fraction of units with h_j > ACTIVE_THRESHOLD per example; `dead_frac`,
  the fraction of units active on no example of the batch; `mean_code`, the mean activation (compare with rho)."""
  active = h_BxK > ACTIVE_THRESHOLD
  return {"active_frac": jnp.mean(active), "dead_frac": jnp.mean(~jnp.any(active, axis=0)),
          "mean_code": jnp.mean(h_BxK)}


def train_step(state, batch, rng, *, loss: str = "mse", sparsity: str = "kl", sparsity_weight: float = 1e-3,
               rho: float = 0.05, axis_name=None):
  """One Adam step on mean_batch(reconstruction `loss`) + sparsity_weight * penalty(h) (see the module docstring)."""
  x = batch["image"]
  rng = step_key(rng, state.step, axis_name)  # used only by dropout

  def loss_fn(params):
    logits, h = forward(state, params, x, rng)
    per = reconstruction_terms(logits, x, (loss,))  # the other term is eval_step's, as in ae_dense.train_step
    pen = penalty(h, sparsity, rho)
    return jnp.mean(per[loss]) + sparsity_weight * pen, (per, pen, h)

  (value, (per, pen, h)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(pmean(grads, axis_name))
  metrics = {"loss": value, **{k: jnp.mean(v) for k, v in per.items()}, "penalty": pen, **code_stats(h)}
  return state, pmean(metrics, axis_name)


def eval_step(state, batch, rng):
  """Per-example `mse`, `bce` (nats), `psnr` (dB), `l1` = sum_j |h_j| and `active_frac`, each [B]."""
  del rng
  logits, h = forward(state, state.params, batch["image"])
  per = reconstruction_terms(logits, batch["image"])
  per["psnr"] = psnr(per["mse"])
  per["l1"] = l1_penalty(h)
  per["active_frac"] = jnp.mean(h > ACTIVE_THRESHOLD, axis=-1)
  return per


FAMILY = ae_dense.FAMILY._replace(name="sparse_ae", validate=validate, train_step=train_step, eval_step=eval_step)
