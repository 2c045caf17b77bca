"""The model registry: name -> family module with init_state, train_step, eval_step and sample/reconstruct."""

from genjax.errors import UserError
from genjax.models import ae, gan, vae
from genjax.models import ae_dense, ae_linear, dae, sparse_ae
from genjax.models import cvae, gmmn, iwae, vae_dense
from genjax.models import cgan, gan_mlp, wgan, wgan_gp

MODELS = {
    "ae": ae,
    "ae_dense": ae_dense,
    "ae_linear": ae_linear,
    "sparse_ae": sparse_ae,
    "dae": dae,
    "vae": vae,
    "vae_dense": vae_dense,
    "cvae": cvae,
    "iwae": iwae,
    "gmmn": gmmn,
    "gan": gan,
    "gan_mlp": gan_mlp,
    "wgan": wgan,
    "wgan_gp": wgan_gp,
    "cgan": cgan,
}


def get(name: str):
  """The family registered as `name`, or a UserError listing the choices."""
  if name not in MODELS:
    raise UserError(f"unknown model '{name}'; available: {', '.join(sorted(MODELS))}")
  return MODELS[name]
