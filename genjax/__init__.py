"""genjax: a JAX model zoo of autoencoders, VAEs, GANs and generative matching networks."""

from genjax import checkpoint, data, losses, models, optim, pictures, rng, state, xla
from genjax.errors import UserError
from genjax.models import MODELS
from genjax.state import GANState, TrainState

__version__ = "0.1.0"
__all__ = ["MODELS", "GANState", "TrainState", "UserError", "checkpoint", "data", "losses", "models", "optim",
           "pictures", "rng", "state", "xla"]
