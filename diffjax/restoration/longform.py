"""Long-form restoration: overlapping chunks of the model's length, joined by a crossfade.

Chunk k covers `[k hop, k hop + chunk_length)`, `hop = chunk_length - overlap` (the last chunk is
aligned to the end). It shares `shared >= overlap` samples with what is already restored. The
first `shared - fade` of them are held to the restored values by replacement at every level (the
`anchor` every method accepts), so the sampler continues the previous chunk instead of meeting it
(Moliner & Välimäki 2023, "unlimited length" inpainting; CQTdiff's chunked bandwidth extension).
The last `fade = ceil(overlap / 2)` shared samples are free in chunk k and crossfaded from the
previous output to chunk k by a raised cosine (`crossfade_ramp`, a partition of unity).

Why both: anchoring alone left a click where the pinned samples end (at the end of chunk k - 1:
0.25, 0.40, ... s for 0.25 s chunks and 0.1 s overlap, issue 21): the pinned values are chunk
k - 1's last samples, where its own edge (e.g. a circular filter's wrap-around) is least
consistent, and the free sample beside them is chunk k's, which need not agree. The crossfade
gives chunk k - 1's edge a vanishing weight and chunk k's pin boundary a vanishing weight, so the
output's jump at a boundary is bounded by the chunks' own jumps plus `max|a - b| pi / (2 (fade + 1))`.

The initial noise is drawn once for the whole signal (the key single mode uses) and cut to each
chunk, so a denoiser that acts sample by sample restores chunked exactly as in one pass (tested).

Time-invariant operators (filters, clipping, noise) act on each chunk as they are; masks are cut to
the chunk. All chunks have one shape, so the restoration compiles once.

Non-local operators (reverb: an RIR longer than the chunk's overlap spreads each sample across
chunks) cannot be cut. `windowed_denoiser` instead turns the model into a denoiser of the whole
signal: overlapping chunks denoised in one batch and blended by a partition of unity
(MultiDiffusion-style averaging, Bar-Tal et al. 2023), so any method runs once on the whole
signal with the whole operator.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.restoration.methods import get_method
from diffjax.restoration.operators import CoordinateMask

Array = jax.Array


def chunk_starts(length: int, chunk_length: int, overlap: int) -> list[int]:
    """Start samples of the chunks covering `length` (the last one ends at `length`)."""
    if not 0 <= overlap < chunk_length:
        raise ValueError(f"need 0 <= overlap < chunk_length, got overlap={overlap}, chunk={chunk_length}")
    if length <= chunk_length:
        return [0]
    hop = chunk_length - overlap
    starts = list(range(0, length - chunk_length, hop))
    return starts + [length - chunk_length]


def blend_weights(length: int, chunk_length: int, overlap: int) -> np.ndarray:
    """`[K, chunk_length]` weights of the chunks at `chunk_starts`: raised-cosine crossfades over
    each overlap, normalised so the weights of every sample sum to 1."""
    starts = chunk_starts(length, chunk_length, overlap)
    weights = np.ones((len(starts), chunk_length))
    for k in range(len(starts) - 1):
        shared = starts[k] + chunk_length - starts[k + 1]  # the last hop may be shorter
        ramp = np.sin(0.5 * np.pi * (np.arange(shared) + 0.5) / shared) ** 2  # > 0 everywhere
        weights[k + 1, :shared] *= ramp
        weights[k, chunk_length - shared:] *= 1.0 - ramp
    total = np.zeros(max(length, chunk_length))
    for start, w in zip(starts, weights):
        total[start:start + chunk_length] += w
    return weights / np.stack([total[s:s + chunk_length] for s in starts])


def windowed_denoiser(denoiser, *, length: int, chunk_length: int, overlap: int,
                      chunks_per_call: int | None = None):
    """`D(x, sigma)` for `x` `[B, length, C]` from a denoiser of context `chunk_length`.

    The K chunks of `chunk_starts(length, chunk_length, overlap)` are denoised as one batch
    `[B K, chunk_length, C]` (sigma scalar or `[B]`) and blended by `blend_weights`. A denoiser
    that acts sample by sample is reproduced exactly (tested). `chunks_per_call` bounds memory for
    long inputs: the chunks go through `lax.map` in groups of that many (times B), each group
    rematerialised in the backward pass (`jax.checkpoint`), so DPS/PiGDM gradients keep one group's
    activations at a time instead of all K.
    """
    if length <= chunk_length:
        return denoiser
    starts = np.asarray(chunk_starts(length, chunk_length, overlap))
    index = starts[:, None] + np.arange(chunk_length)[None, :]  # [K, chunk]
    weights = jnp.asarray(blend_weights(length, chunk_length, overlap))
    num_chunks = len(starts)
    grouped = chunks_per_call is not None and chunks_per_call < num_chunks

    def denoise(x, sigma):
        batch, tail = x.shape[0], x.shape[2:]
        sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), (batch,))
        chunks = x[:, index]  # [B, K, chunk, C]
        if grouped:
            one = jax.checkpoint(lambda c: denoiser(c, sigma))  # c: [B, chunk, C]
            x0 = jnp.moveaxis(jax.lax.map(one, jnp.moveaxis(chunks, 1, 0), batch_size=chunks_per_call), 0, 1)
        else:
            x0 = denoiser(chunks.reshape((batch * num_chunks, chunk_length) + tail),
                          jnp.repeat(sigma, num_chunks)).reshape(chunks.shape)
        x0 = x0 * weights.reshape((1,) + weights.shape + (1,) * (x.ndim - 2)).astype(x.dtype)
        return jnp.zeros_like(x).at[:, index].add(x0)

    return denoise


def _chunk_operator(operator, x_shape, start: int, stop: int):
    if operator.time_invariant:
        return operator
    mask = jnp.broadcast_to(jnp.asarray(operator.mask_for(x_shape)), tuple(x_shape[1:]))
    return CoordinateMask(mask=mask[start:stop], noise_sigma=operator.noise_sigma)


def crossfade_ramp(fade: int) -> np.ndarray:
    """`[fade]` weights of the incoming chunk over a crossfade: `w_i = sin^2(pi/2 (i + 1) / (fade + 1))`,
    strictly between 0 and 1 and rising; the outgoing chunk gets `1 - w_i`, so the two sum to 1.
    Each step of `w` is at most `pi / (2 (fade + 1))`."""
    return np.sin(0.5 * np.pi * (np.arange(fade) + 1.0) / (fade + 1.0)) ** 2


def fade_length(overlap: int) -> int:
    """Samples of the crossfade between chunks sharing `overlap` samples: the second half (the first
    half is anchored)."""
    return (overlap + 1) // 2


def restore_long(method: str, denoiser, operator, y: Array, *, length: int, chunk_length: int,
                 overlap: int, sigmas: Array, key: Array, channels: int | None = None,
                 progress=None, **options) -> Array:
    """Restores `x` `[B, length, C]` from `y` chunk by chunk with method `method`.

    Args:
      method: a registered method name.
      y: the measurement of the whole signal; its length is `length` times the operator's rate
        ratio (1, or 1/factor for decimation).
      length: samples of the restored signal.
      chunk_length: the model's context in samples (its training clip length).
      overlap: samples each chunk shares with the previous one.
      key: one key (chunk k, example b use `fold_in(fold_in(key, k), b)`).
      progress: optional callable `(done, total) -> None`.
      **options: passed to the method (sampler=, zeta=, ...).
    """
    batch = y.shape[0]
    channels = y.shape[2] if channels is None else channels
    ratio = y.shape[1] / length
    restore = get_method(method)
    x_shape = (batch, max(length, chunk_length), channels)
    if length < chunk_length:  # pad to the model's length; the padding is observed silence
        y = jnp.pad(y, ((0, 0), (0, int(round((chunk_length - length) * ratio))), (0, 0)))
        operator = _chunk_operator(operator, (batch, length, channels), 0, length)
        if not operator.time_invariant:
            operator = CoordinateMask(mask=jnp.pad(operator.mask, ((0, chunk_length - length), (0, 0)),
                                                   constant_values=1.0), noise_sigma=operator.noise_sigma)
    starts = chunk_starts(max(length, chunk_length), chunk_length, overlap)
    for s in starts:
        if s * ratio != int(s * ratio) or chunk_length * ratio != int(chunk_length * ratio):
            raise ValueError(f"chunk boundaries must fall on measurement samples (ratio {ratio:g}); "
                             "choose chunk_length and overlap as multiples of the decimation factor")

    total = max(length, chunk_length)
    noise = sigmas[0] * jax.random.normal(jax.random.fold_in(key, 1 << 20), (batch, total, channels), y.dtype)

    @jax.jit
    def run(op, y_chunk, x_init, anchor_values, anchor_mask, chunk_key):
        return restore(denoiser, op, y_chunk, x_init, sigmas, key=chunk_key,
                       anchor=(anchor_values, anchor_mask), **options)

    out = jnp.zeros(x_shape, y.dtype)
    done_until = 0
    if progress is not None:
        progress(0, len(starts))
    for k, start in enumerate(starts):
        stop = start + chunk_length
        op = _chunk_operator(operator, x_shape, start, stop)
        y_chunk = y[:, int(start * ratio):int(stop * ratio)]
        shared = max(done_until - start, 0)
        fade = min(fade_length(overlap), shared)
        mask = (np.arange(chunk_length) < shared - fade).astype(np.float32)[None, :, None]
        chunk = run(op, y_chunk, noise[:, start:stop], out[:, start:stop], jnp.asarray(mask),
                    jax.random.fold_in(key, k))
        if fade:
            w = jnp.asarray(crossfade_ramp(fade), y.dtype)[None, :, None]
            head = slice(shared - fade, shared)
            chunk = chunk.at[:, head].set((1 - w) * out[:, start + shared - fade:start + shared] + w * chunk[:, head])
        out = out.at[:, start:stop].set(chunk)
        done_until = stop
        if progress is not None:
            progress(k + 1, len(starts))
    return out[:, :length]
