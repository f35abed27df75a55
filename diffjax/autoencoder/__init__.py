"""The audio autoencoder whose latent a diffusion model can work in (DESIGN.md, "a learned latent").

    from diffjax import autoencoder as ae
    module = ae.autoencoder("small")                 # or ae.AUTOENCODERS.build({"name": "oobleck", ...})
    params = ae.init_params(module, key)
    recon, aux = module.apply({"params": params}, audio, key)            # aux: kl [B], mean, std
    mean, std = module.apply({"params": params}, audio, method=module.encode_moments)
    audio_hat = module.apply({"params": params}, z, method=module.decode)[:, :length]
    loss, per_res = ae.multi_resolution_stft_loss(audio, recon)          # [B], {name: [B]}

- `networks`: Oobleck/DAC encoder and decoder, `AudioAutoencoder`, `AUTOENCODERS`, sizes.
- `bottleneck`: 'vae' and 'none' (`BOTTLENECKS`), the KL term.
- `losses`: multi-resolution STFT loss, waveform L1.
- `discriminator`: EnCodec's multi-scale STFT discriminator and its hinge / feature losses.
- `metrics`: SI-SDR, MR-STFT distance, log-mel L1, LSD, and a report with pitch confidence.
- `objective`: the training loss (and the discriminator's step) in the generic train step's contract.
- `codec`: the 'latent' codec (registered in `diffjax.audio.codecs.CODECS`).
- `latent_data`: pre-encoding and the dataset of pre-encoded latents.
"""
from diffjax.autoencoder import codec, latent_data, objective  # noqa: F401  (codec registers 'latent')
from diffjax.autoencoder.bottleneck import (BOTTLENECKS, AbstractBottleneck,  # noqa: F401
                                            IdentityBottleneck, VAEBottleneck, gaussian_sample,
                                            kl_divergence, vae_moments)
from diffjax.autoencoder.discriminator import (MultiScaleSTFTDiscriminator,  # noqa: F401
                                               STFTDiscriminator, feature_matching_loss,
                                               hinge_discriminator_loss, hinge_generator_loss)
from diffjax.autoencoder.losses import (log_magnitude_l1,  # noqa: F401
                                        multi_resolution_stft_loss, spectral_convergence,
                                        waveform_l1)
from diffjax.autoencoder.metrics import (log_mel_l1, log_spectral_distance,  # noqa: F401
                                         mr_stft_distance, reconstruction_report, si_sdr)
from diffjax.autoencoder.networks import (AUTOENCODER_SIZES, AUTOENCODERS,  # noqa: F401
                                          AudioAutoencoder, Snake, WNConv, WNConvTranspose,
                                          autoencoder, init_params, parameter_count)
