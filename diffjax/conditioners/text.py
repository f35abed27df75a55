"""Text conditioning: captions -> tokens (a vocabulary trained in the project with HuggingFace
`tokenizers`; no download) -> a text encoder trained jointly with the diffusion network -> tokens
for cross-attention plus a pooled vector for the global conditioning (Stable Audio's T5 tokens and
adaLN global vector, Evans et al. 2024; Imagen's pooled text embedding, Saharia et al. 2022).

    tokenizer_json = train_tokenizer(dataset.caption_corpus())      # the jobs layer saves it
    text = get_conditioner("text", tokenizer=tokenizer_json)
    value = text.host_value({"caption": np.array(["a soft flute note"])})  # {"ids", "mask"} [B, S]
    text.embedder()(value)   # {"tokens" [B, S, width], "tokens_mask" [B, S], "global" [B, width]}

The encoder is chosen by name in `TEXT_ENCODERS`: a user with a pretrained encoder registers a
module `(ids [B, S], mask [B, S]) -> tokens [B, S, width]` and sets `conditioning.text.encoder`.
An empty caption has no tokens: it is the null value (the unconditional model).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from diffjax.conditioners.base import CONDITIONERS, AbstractConditioner
from diffjax.registry import Registry

Array = jax.Array
TEXT_ENCODERS = Registry("text encoder")
PAD, UNKNOWN = "[PAD]", "[UNK]"  # ids 0 and 1


def train_tokenizer(corpus: Sequence[str], *, min_frequency: int = 1) -> str:
    """A word-level vocabulary (lower-cased, split on whitespace and punctuation) trained on
    `corpus`; returns the tokenizer as JSON (saved beside the checkpoint). `[PAD]` is id 0 and
    unknown words map to `[UNK]` (id 1)."""
    corpus = [str(c) for c in corpus if str(c).strip()]
    if not corpus:
        raise ValueError("cannot train a caption vocabulary: the training data has no captions "
                         "(for a folder dataset set data.folder.metadata to a CSV or JSON-lines file)")
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNKNOWN))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=[PAD, UNKNOWN],
                                                                    min_frequency=min_frequency))
    return tokenizer.to_str()


@functools.lru_cache(maxsize=8)
def _load_tokenizer(tokenizer_json: str) -> Tokenizer:
    return Tokenizer.from_str(tokenizer_json)


def tokenize(tokenizer_json: str, captions: Sequence[str], max_tokens: int) -> dict[str, np.ndarray]:
    """Captions `[B]` -> `{"ids": int32 [B, max_tokens], "mask": bool [B, max_tokens]}` (truncated,
    padded with id 0)."""
    encoded = _load_tokenizer(tokenizer_json).encode_batch([str(c) for c in captions])
    ids = np.zeros((len(encoded), max_tokens), np.int32)
    for row, item in zip(ids, encoded):
        tokens = item.ids[:max_tokens]
        row[:len(tokens)] = tokens
    return {"ids": ids, "mask": ids > 0}


def vocabulary_size(tokenizer_json: str) -> int:
    return int(_load_tokenizer(tokenizer_json).get_vocab_size())


class EncoderBlock(nn.Module):
    """Pre-LN transformer encoder block with a key padding mask (Vaswani et al. 2017; Xiong et al. 2020)."""

    width: int
    num_heads: int

    @nn.compact
    def __call__(self, h: Array, mask: Array) -> Array:
        attention_mask = nn.make_attention_mask(mask, mask)
        u = nn.LayerNorm(name="norm_attn")(h)
        h = h + nn.MultiHeadDotProductAttention(self.num_heads, name="attn")(u, u, mask=attention_mask)
        u = nn.LayerNorm(name="norm_mlp")(h)
        u = nn.Dense(self.width, name="mlp_out")(nn.gelu(nn.Dense(4 * self.width, name="mlp_in")(u)))
        return h + u


@TEXT_ENCODERS.register("transformer", trained_jointly=True)
class TransformerTextEncoder(nn.Module):
    """Token and learned position embeddings, `depth` encoder blocks, a final LayerNorm:
    `(ids [B, S], mask [B, S]) -> [B, S, width]` (a small T5/BERT-style encoder trained from scratch)."""

    vocab_size: int
    max_tokens: int
    width: int = 128
    depth: int = 2
    num_heads: int = 4

    @nn.compact
    def __call__(self, ids: Array, mask: Array) -> Array:
        h = nn.Embed(self.vocab_size, self.width, name="token_embedding")(ids)
        h = h + self.param("position_embedding", nn.initializers.normal(0.02), (self.max_tokens, self.width))[None]
        for i in range(self.depth):
            h = EncoderBlock(self.width, self.num_heads, name=f"block_{i}")(h, mask)
        return nn.LayerNorm(name="final_norm")(h)


@TEXT_ENCODERS.register("bag_of_words", trained_jointly=True)
class BagOfWordsTextEncoder(nn.Module):
    """Token embeddings without context, `(ids, mask) -> [B, S, width]` (an ablation baseline)."""

    vocab_size: int
    max_tokens: int
    width: int = 128
    depth: int = 0
    num_heads: int = 1

    @nn.compact
    def __call__(self, ids: Array, mask: Array) -> Array:
        return nn.Embed(self.vocab_size, self.width, name="token_embedding")(ids)


class TextEmbedder(nn.Module):
    """`{"ids", "mask"}` -> cross-attention tokens and a pooled global vector (masked mean, then a
    Dense layer; exactly zero for a caption without tokens, so the null value adds nothing)."""

    encoder: nn.Module
    width: int

    @nn.compact
    def __call__(self, value: Mapping[str, Array]) -> dict:
        ids, mask = jnp.asarray(value["ids"], jnp.int32), jnp.asarray(value["mask"], bool)
        tokens = self.encoder(ids, mask)
        weights = mask.astype(tokens.dtype)[..., None]
        count = jnp.sum(weights, axis=1)
        pooled = jnp.sum(tokens * weights, axis=1) / jnp.maximum(count, 1.0)
        pooled = nn.Dense(self.width, name="pooled_proj")(pooled)
        return {"tokens": tokens, "tokens_mask": mask, "global": jnp.where(count > 0, pooled, 0.0)}


@CONDITIONERS.register("text")
@dataclasses.dataclass(frozen=True)
class TextConditioner(AbstractConditioner):
    """A caption per example (batch key `caption`, strings), tokenised on the host.

    Attributes:
      tokenizer: the trained vocabulary as JSON (`train_tokenizer`; the jobs layer saves it as
        `tokenizer.json` in the workdir and supplies it here).
      max_tokens: tokens kept per caption (longer captions are truncated).
      encoder: a name in `TEXT_ENCODERS`.
      width: token width (the network's cross-attention width) and pooled width.
      depth, num_heads: the encoder's blocks and heads.
      dropout: per example, the caption replaced by the empty caption in training.
    """

    tokenizer: str
    max_tokens: int = 24
    encoder: str = "transformer"
    width: int = 128
    depth: int = 2
    num_heads: int = 4
    dropout: float = 0.1

    def __post_init__(self):
        TEXT_ENCODERS.get(self.encoder)  # an unknown name lists the registered encoders
        if not self.tokenizer:
            raise ValueError("the text conditioner needs a trained tokenizer (the training job writes "
                             "tokenizer.json into the workdir from the training captions)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"conditioning.text.dropout must be in [0, 1), got {self.dropout}")

    def null(self, batch_size: int) -> dict:
        return {"ids": jnp.zeros((batch_size, self.max_tokens), jnp.int32),
                "mask": jnp.zeros((batch_size, self.max_tokens), bool)}

    def tokenize(self, captions: Sequence[str]) -> dict[str, np.ndarray]:
        return tokenize(self.tokenizer, captions, int(self.max_tokens))

    def host_value(self, batch: Mapping[str, Any]):
        return None if "caption" not in batch else self.tokenize(list(np.asarray(batch["caption"]).reshape(-1)))

    def train_value(self, value: dict, x0: Array, key: Array) -> dict:
        return value

    def network_inputs(self, value: dict) -> dict:
        return {"text": {"ids": jnp.asarray(value["ids"], jnp.int32), "mask": jnp.asarray(value["mask"], bool)}}

    def network_kwargs(self) -> dict:
        return {"cross_attention_dim": int(self.width), "global_dim": int(self.width)}

    def embedder(self) -> nn.Module:
        encoder = TEXT_ENCODERS.get(self.encoder)(vocab_size=vocabulary_size(self.tokenizer),
                                                  max_tokens=int(self.max_tokens), width=int(self.width),
                                                  depth=int(self.depth), num_heads=int(self.num_heads))
        return TextEmbedder(encoder=encoder, width=int(self.width))
