"""Captions to tokens (`train_tokenizer`, `tokenize`), the text encoders, conditioner errors that
name their fix (`merge_network_kwargs`, unknown encoders, empty corpora, notes out of range), and
the text embedder's null value for each registered encoder."""
import dataclasses

import jax
import numpy as np
import pytest

from diffjax.conditioners import (TEXT_ENCODERS, AbstractConditioner, get_conditioner, merge_network_kwargs,
                                  tokenize, train_tokenizer)

CORPUS = ["A soft flute note", "kick drum pattern", "a bright bell", ""]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CORPUS)


def vocabulary(tokenizer_json):
    from tokenizers import Tokenizer
    return Tokenizer.from_str(tokenizer_json).get_vocab()


def test_the_vocabulary_holds_the_lower_cased_words_after_pad_and_unknown(tokenizer):
    vocab = vocabulary(tokenizer)
    assert vocab["[PAD]"] == 0 and vocab["[UNK]"] == 1
    words = {w for caption in CORPUS for w in caption.lower().split()}
    assert set(vocab) == words | {"[PAD]", "[UNK]"}


def test_tokenize_pads_truncates_and_maps_unknown_words_to_one(tokenizer):
    vocab = vocabulary(tokenizer)
    out = tokenize(tokenizer, ["soft FLUTE", "a soft flute note kick drum", "theremin flute", ""], 4)
    assert out["ids"].dtype == np.int32 and out["mask"].dtype == bool and out["ids"].shape == (4, 4)
    np.testing.assert_array_equal(out["ids"][0], [vocab["soft"], vocab["flute"], 0, 0])  # padded
    np.testing.assert_array_equal(out["ids"][1], [vocab[w] for w in ("a", "soft", "flute", "note")])  # truncated
    np.testing.assert_array_equal(out["ids"][2], [1, vocab["flute"], 0, 0])  # unknown word -> [UNK] = 1
    np.testing.assert_array_equal(out["ids"][3], 0)
    np.testing.assert_array_equal(out["mask"], out["ids"] > 0)
    assert out["mask"][2, 0]  # an unknown word is still a token


@pytest.mark.parametrize("corpus", [[], ["", "   "]])
def test_a_corpus_without_captions_raises_naming_the_metadata_option(corpus):
    with pytest.raises(ValueError, match=r"data\.folder\.metadata"):
        train_tokenizer(corpus)


def test_an_unknown_text_encoder_lists_the_registered_ones(tokenizer):
    with pytest.raises(ValueError, match="valid names: " + ", ".join(TEXT_ENCODERS.names())):
        get_conditioner("text", tokenizer=tokenizer, encoder="t5_xxl")
    assert {"transformer", "bag_of_words"} <= set(TEXT_ENCODERS.names())


@dataclasses.dataclass(frozen=True)
class Needs(AbstractConditioner):
    """A stand-in conditioner that only states network kwargs."""

    kwargs: tuple
    dropout: float = 0.0

    def null(self, batch_size):
        return np.zeros(batch_size)

    def host_value(self, batch):
        return None

    def train_value(self, value, x0, key):
        return value

    def network_inputs(self, value):
        return {}

    def network_kwargs(self):
        return dict(self.kwargs)

    def embedder(self):
        return None


def test_merge_network_kwargs_sums_global_dims_and_rejects_conflicts(tokenizer):
    text = get_conditioner("text", tokenizer=tokenizer, width=16)
    timing = get_conditioner("timing", max_seconds=1.0, width=4)
    label = get_conditioner("label", num_classes=5)
    merged = merge_network_kwargs({"text": text, "timing": timing, "label": label})
    assert merged == {"cross_attention_dim": 16, "global_dim": 16 + 2 * 4, "num_classes": 5}
    agree = merge_network_kwargs({"text": text, "z": Needs((("cross_attention_dim", 16),))})
    assert agree["cross_attention_dim"] == 16
    with pytest.raises(ValueError, match=r"cross_attention_dim=32.*16.*conditioning\.z"):
        merge_network_kwargs({"text": text, "z": Needs((("cross_attention_dim", 32),))})


def test_notes_outside_the_pitch_range_raise_naming_the_range_and_the_source():
    notes = get_conditioner("notes", latent_shape=(16, 1), frames_per_second=16.0, low_pitch=60, high_pitch=72)
    events = np.full((2, 3, 4), -1.0, np.float32)  # pitch -1: padding, ignored
    events[0, 0] = [64, 0.0, 0.25, 0.9]
    value = notes.roll(events, source="song.mid")
    assert value["roll"].shape == (2, 16, 13, 2) and value["roll"][0, 0, 4, 0] == 1.0
    np.testing.assert_array_equal(value["given"], 1.0)
    events[1, 1] = [80, 0.0, 0.25, 0.9]
    events[1, 2] = [59, 0.5, 0.25, 0.9]
    with pytest.raises(ValueError, match=r"song\.mid.*\[59, 80\].*\[60, 72\]"):
        notes.roll(events, source="song.mid")
    with pytest.raises(ValueError, match=r"the batch.*\[60, 72\]"):
        notes.host_value({"events": events})


# ---------------------------------------------------------------------------------------------
# The text embedder's null value, for every registered encoder
# ---------------------------------------------------------------------------------------------

def embed(tokenizer, encoder, captions):
    """The text embedder of `encoder` on `captions` and on the null value, with random parameters
    (host-drawn from the init's shapes: every output depends on them)."""
    text = get_conditioner("text", tokenizer=tokenizer, max_tokens=4, width=8, depth=1, num_heads=2,
                           encoder=encoder)
    embedder = text.embedder()
    value = text.tokenize(captions)
    null = text.null(len(captions))
    shapes = jax.eval_shape(embedder.init, jax.random.key(0), value)["params"]
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(np.float32), shapes)
    apply = jax.jit(lambda v: embedder.apply({"params": params}, v))
    return value, jax.tree.map(np.asarray, apply(value)), jax.tree.map(np.asarray, apply(null))


def check_null_embedding(value, given, null):
    np.testing.assert_array_equal(null["global"], 0.0)  # exactly zero: adds nothing to the DiT's c
    assert not null["tokens_mask"].any()
    np.testing.assert_array_equal(given["tokens_mask"], value["mask"])
    has_tokens = value["mask"].any(axis=1)
    np.testing.assert_array_equal(given["global"][~has_tokens], 0.0)  # the empty caption is null too
    assert np.all(np.abs(given["global"][has_tokens]).max(axis=1) > 1e-3)


def test_the_bag_of_words_embedder_maps_the_null_value_to_nothing(tokenizer):
    check_null_embedding(*embed(tokenizer, "bag_of_words", ["soft flute", "", "kick drum pattern"]))


def test_the_transformer_embedder_maps_the_null_value_to_nothing(tokenizer):
    # Also traces under `jax_numpy_rank_promotion="raise"` (tests/conftest.py): its position
    # embedding [S, W] is broadcast over the batch explicitly.
    check_null_embedding(*embed(tokenizer, "transformer", ["soft flute", "", "kick drum pattern"]))
