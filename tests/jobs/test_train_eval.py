"""The training PNG's data row comes from distinct items, even when the eval split is one file."""
import dataclasses

import numpy as np

from diffjax.jobs.train_eval import distinct_examples


@dataclasses.dataclass(frozen=True)
class _Files:
    """A stand-in dataset: crops of `files` files, crop j of a batch from file j % files; a crop's
    value is its split's offset plus its file's index, so a test can read which file it came from."""

    files: int
    offset: float
    eval_files: int = 1

    @property
    def eval(self):
        return _Files(self.eval_files, offset=100.0)

    def batch(self, step, batch_size, *, seed):
        index = np.arange(batch_size) % self.files
        return {"x": np.broadcast_to((self.offset + index)[:, None, None], (batch_size, 8, 1)), "index": index}


def _sources(crops):
    return crops[:, 0, 0].tolist()


def test_a_one_file_eval_split_is_completed_from_the_training_files():
    crops = distinct_examples(_Files(files=5, offset=0.0, eval_files=1), 4)
    assert crops.shape == (4, 8, 1)
    assert _sources(crops) == [100.0, 0.0, 1.0, 2.0]  # the eval file, then three distinct training files


def test_a_large_eval_split_is_used_alone():
    assert _sources(distinct_examples(_Files(files=5, offset=0.0, eval_files=6), 4)) == [100.0, 101.0, 102.0, 103.0]


def test_repeats_fill_in_only_when_the_data_hold_too_few_items():
    crops = _sources(distinct_examples(_Files(files=1, offset=0.0, eval_files=1), 3))
    assert crops[:2] == [100.0, 0.0] and len(crops) == 3  # both items first, then a second crop
