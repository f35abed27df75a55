"""Score networks, registered by name. Each is a flax.linen Module called as

    net.apply({"params": params}, x, c_noise, cond=None) -> F  (same shape as x)

with `x` batch-first and channels-last ([B, D], [B, L, C] or [B, T, F, C]), `c_noise` a [B] float
noise conditioning from the parameterisation (`diffjax.precond`), and `cond` None or a dict with
optional keys 'label' (int32 [B]; the value `num_classes` is the null class for classifier-free
guidance) and 'features' (float conditioning features such as a mel spectrogram).
"""
from __future__ import annotations

from diffjax.models.base import MODELS, get_model, logical_axes, unbox  # noqa: F401
from diffjax.models import diffwave, dit, mlp, unet  # noqa: F401  (importing a network registers it)
