"""Offline evaluation of generated audio: metrics that need no downloaded weights.

FAD needs pretrained VGGish/PANNs/CLAP weights; diffjax instead trains its own classifier on the
labelled data (`classifier.py`, Inception's role for FID) and offers feature statistics that need
no training, plus any user embedding model through the `EMBEDDERS` registry:

    from diffjax import evaluation as ev
    ev.EMBEDDERS.names()                         # ['callable', 'classifier', 'mel_stats', 'mfcc_stats']
    ev.get_embedder("classifier", classifier=clf)  # clf: a loaded `Classifier` (diffjax.jobs.classifier)
    ev.frechet_distance(ev.gaussian_stats(x), ev.gaussian_stats(y))
    ev.kernel_distance(x, y)                     # KID, unbiased
    ev.kernel_audio_distance(x, ref)             # KAD (Chung et al. 2025), unbiased, Gaussian kernel
    ev.distance_with_interval("kad", x, ref)     # FD or KAD ('fd', 'kad': ev.DISTANCES) + bootstrap interval
    ev.folder_features(emb, "my_music", sample_rate=sr, crop_seconds=2.0)   # every file's crops
    ev.inception_score(probs); ev.modified_inception_score(probs); ev.ndb(x, y)
    ev.evaluate_generator(generate_fn, embedders=..., reference=..., num=1000, sample_rate=16000)

Paired (reference) metrics of restoration, SI-SDR, SNR, LSD and multi-resolution STFT distance,
live in `diffjax.audio.metrics`; `paired.paired_metrics` applies them all to a batch.
Everything here takes arrays, datasets and loaded models; evaluating a workdir's checkpoints and
training the classifier read files, so they are jobs (`diffjax.jobs.evaluate`,
`diffjax.jobs.classifier`). See docs/evaluation.md.
"""
from diffjax.evaluation.classifier import (AudioClassifier, Classifier,  # noqa: F401
                                           ClassifierEmbedder)
from diffjax.evaluation.features import (EMBEDDERS, AbstractEmbedder, embed_all,  # noqa: F401
                                         get_embedder)
from diffjax.evaluation.frechet import (GaussianStats, frechet_distance,  # noqa: F401
                                        frechet_distance_features, gaussian_stats)
from diffjax.evaluation.distances import (DISTANCES, bootstrap_interval,  # noqa: F401
                                          distance_with_interval)
from diffjax.evaluation.kad import kernel_audio_distance  # noqa: F401
from diffjax.evaluation.kid import kernel_distance, mmd2_unbiased  # noqa: F401
from diffjax.evaluation.reference import folder_features, reference_features  # noqa: F401
from diffjax.evaluation.report import markdown_table  # noqa: F401
from diffjax.evaluation.scores import (class_accuracy, inception_score,  # noqa: F401
                                       modified_inception_score, ndb)
from diffjax.evaluation.suite import (MetricOptions, evaluate_generator,  # noqa: F401
                                      generation_metrics)
