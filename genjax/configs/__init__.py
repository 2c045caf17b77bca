"""The default configs: one module per model, `genjax/configs/<model>.py`, plus named variants (`gmmn_ae`).

Each module's `get_config()` returns the model's `ml_collections.ConfigDict` (sections `model`, `data`, `optim`,
`step`, `train`, built on `genjax.config.base()`); its docstring gives the command, the expected result and the
hardware. Load one with `genjax.config.model_config(name)`; `genjax.config.load(path)` reads a file of your own.
"""
