"""Shared fixtures: a small synth_music dataset (8 kHz, half-second clips) and a classifier
trained on it briefly (configs/classifier.py:smoke), built once per session."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture(scope="session")
def eval_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("eval_cache"))


@pytest.fixture(scope="session")
def smoke_config(eval_cache):
    from configs import classifier as classifier_config

    config = classifier_config.get_config("smoke")
    config.data.cache_dir = eval_cache
    return config


@pytest.fixture(scope="session")
def smoke_dataset(smoke_config):
    from diffjax import audio, data  # noqa: F401  (audio registers its datasets)

    return data.build_dataset(smoke_config.data)


@pytest.fixture(scope="session")
def trained_classifier(smoke_config, tmp_path_factory):
    """(workdir, eval results) of the smoke classifier."""
    from diffjax.jobs.classifier import train_classifier

    workdir = str(tmp_path_factory.mktemp("classifier"))
    return workdir, train_classifier(smoke_config, workdir)


@pytest.fixture(scope="session")
def loaded_classifier(trained_classifier):
    """The smoke classifier loaded from its workdir (a `diffjax.evaluation.Classifier`)."""
    from diffjax.jobs.classifier import load_classifier

    return load_classifier(trained_classifier[0])
