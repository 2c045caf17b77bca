"""The model registry: name -> `Family` (genjax.models.family), the one object the loop and evaluation call."""

from genjax.errors import UserError
from genjax.models import (
  ae,
  ae_dense,
  ae_linear,
  cgan,
  cvae,
  dae,
  gan,
  gan_mlp,
  gmmn,
  iwae,
  iwae2,
  sparse_ae,
  vae,
  vae_dense,
  wgan,
  wgan_gp,
)
from genjax.models.family import BLOCKS, Family

MODELS: dict[str, Family] = {
    "ae": ae.FAMILY,
    "ae_dense": ae_dense.FAMILY,
    "ae_linear": ae_linear.FAMILY,
    "sparse_ae": sparse_ae.FAMILY,
    "dae": dae.FAMILY,
    "vae": vae.FAMILY,
    "vae_dense": vae_dense.FAMILY,
    "cvae": cvae.FAMILY,
    "iwae": iwae.FAMILY,
    "iwae2": iwae2.FAMILY,
    "gmmn": gmmn.FAMILY,
    "gan": gan.FAMILY,
    "gan_mlp": gan_mlp.FAMILY,
    "wgan": wgan.FAMILY,
    "wgan_gp": wgan_gp.FAMILY,
    "cgan": cgan.FAMILY,
}

__all__ = ["BLOCKS", "MODELS", "Family", "get"]


def get(name: str) -> Family:
  """The family registered as `name`, or a UserError listing the choices."""
  if name not in MODELS:
    raise UserError(f"unknown model '{name}'; available: {', '.join(sorted(MODELS))}")
  return MODELS[name]
