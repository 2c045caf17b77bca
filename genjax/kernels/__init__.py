"""genjax's CPU kernels: ops with hand-written gradients in the forms XLA:CPU runs fast, each equal to XLA's own op
in value and both gradients, and the hooks through which Flax layers use them.

`enabled()` is the one decision of when they replace XLA's own ops (on the CPU backend). Flax hooks:
nn.Dense(dot_general=dot_general) and nn.Conv(conv_general_dilated=conv_hook(impl)); where Flax has none
(nn.ConvTranspose, nn.BatchNorm), nets.ConvTranspose4x4 and nets.BatchNorm call `conv_transpose` and
`batch_norm_train`. What each kernel was measured to gain: docs/kernels.md.
"""

from genjax.kernels.backend import enabled, platform
from genjax.kernels.conv import (
           CONV_IMPLS,
           DN,
           TAPS_MAX_FEATURES,
           canonical_conv,
           conv_4x4_stride2,
           conv_general_dilated,
           conv_hook,
           conv_taps,
           explicit_pads,
           patches,
           same_padding,
           space_to_depth,
           taps_pays,
           xla_conv,
)
from genjax.kernels.conv_transpose import conv_transpose, conv_transpose_4x4_s2
from genjax.kernels.dot import LOW_PRECISION, dot_general
from genjax.kernels.norm import batch_norm_train, channel_sums

__all__ = ["CONV_IMPLS", "DN", "LOW_PRECISION", "TAPS_MAX_FEATURES", "batch_norm_train", "canonical_conv",
           "channel_sums", "conv_4x4_stride2", "conv_general_dilated", "conv_hook", "conv_taps", "conv_transpose",
           "conv_transpose_4x4_s2", "dot_general", "enabled", "explicit_pads", "patches", "same_padding",
           "platform", "space_to_depth", "taps_pays", "xla_conv"]
