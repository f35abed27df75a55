"""Shared fixtures: a small synth_music dataset (8 kHz, half-second clips) and a classifier
trained on it briefly (configs/classifier.py:smoke), built once per session."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs import classifier as classifier_config  # noqa: E402
from diffjax import audio, data  # noqa: E402,F401  (audio registers its datasets)
from diffjax.jobs.classifier import load_classifier, train_classifier  # noqa: E402


@pytest.fixture(scope="session")
def eval_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("eval_cache"))


@pytest.fixture(scope="session")
def smoke_config(eval_cache):
    config = classifier_config.get_config("smoke")
    config.data.cache_dir = eval_cache
    return config


@pytest.fixture(scope="session")
def smoke_dataset(smoke_config):
    return data.build_dataset(smoke_config.data)


@pytest.fixture(scope="session")
def trained_classifier(smoke_config, tmp_path_factory):
    """(workdir, eval results) of the smoke classifier."""
    workdir = str(tmp_path_factory.mktemp("classifier"))
    return workdir, train_classifier(smoke_config, workdir)


@pytest.fixture(scope="session")
def loaded_classifier(trained_classifier):
    """The smoke classifier loaded from its workdir (a `diffjax.evaluation.Classifier`)."""
    return load_classifier(trained_classifier[0])



@pytest.fixture
def evaluate_main(monkeypatch):
    """`run(argv)`: experiments/evaluate.py's `main` on `argv`. The module is loaded once per process
    (absl defines a flag only once), and its flags and --config.* overrides are reset before each parse."""
    import importlib.util

    def run(argv):
        monkeypatch.setattr(sys, "argv", argv)  # config_flags registers the --config.* overrides from sys.argv
        module = sys.modules.get("evaluate_main")
        if module is None:
            repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            spec = importlib.util.spec_from_file_location("evaluate_main",
                                                          os.path.join(repo, "experiments", "evaluate.py"))
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules["evaluate_main"] = module
        for name in [n for n in module.FLAGS if n.startswith("config.")]:
            delattr(module.FLAGS, name)  # the overrides of the previous parse (redefined from argv)
        module.FLAGS.unparse_flags()
        module.FLAGS(argv)
        module.main([])

    return run
