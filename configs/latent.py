"""Latent diffusion: a DiT over the latents of an autoencoder trained by the project
(configs/autoencoder.py), as Stable Audio Open pairs its VAE with a DiT.

    python experiments/train.py --config configs/autoencoder.py --workdir runs/autoencoder
    python experiments/train.py --config configs/latent.py --workdir runs/latent \
        --config.codec.latent.workdir=runs/autoencoder

The training data is encoded once into a cache keyed by the autoencoder's weights
($XDG_CACHE_HOME/diffjax/latents); sampling decodes through the autoencoder's decoder.
`--config.model.name=unet1d` diffuses the same latents with the UNet1D.
"""
import ml_collections

from configs import default


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = default.get_config()
    config.codec.name = "latent"
    config.codec.latent.workdir = "runs/autoencoder"  # the autoencoder's training workdir
    config.precond.sigma_data = 1.0  # RMS of the latents: experiments/estimate_sigma_data.py --config
    config.model = ml_collections.ConfigDict(dict(name="dit", size="small", dtype="float32"))
    if "smoke" in arg.split(","):
        default.apply_smoke(config)
    return config
