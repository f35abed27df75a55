"""EDM2's training recipe (Karras et al. 2024) on the quick start's DiT over mel frames:
magnitude-preserving layers with forced weight normalisation, the learned loss weighting u(sigma),
and post-hoc EMA snapshots; sharded over the mesh of `config.parallel`.

    python experiments/train.py --config configs/edm2.py --workdir runs/edm2
    python experiments/train.py --config configs/edm2.py --workdir runs/edm2 --config.parallel.fsdp=4   # 8 devices: data=2 x fsdp=4
    python experiments/reconstruct_ema.py --workdir runs/edm2 --sigma_rel 0.05,0.1,0.15
    python experiments/sample.py --workdir runs/edm2 --sigma_rel 0.1
    python experiments/sample.py --workdir runs/edm2 --sigma_rel 0.1 --guide_workdir runs/edm2 --guide_step 500 --guidance 2
"""
from configs import default


def get_config(arg: str = ""):
    config = default.get_config(arg)
    config.model.magnitude_preserving = True  # MP layers; forced weight normalisation after each step
    config.loss.weighting = "learned"  # lambda(sigma) / e^u(sigma) ||D - x0||^2 + u(sigma) (EDM2 eq. 21)
    # EDM2's pair of tracked lengths; any sigma_rel in (0, 0.289] is reconstructed from them.
    config.training.phema.sigma_rels = (0.05, 0.10)
    config.training.phema.snapshot_every = 2 if "smoke" in arg.split(",") else 250
    # EDM2 keeps the learning rate constant after warm-up (its inverse-sqrt decay starts late) and
    # relies on the EMA; forced weight normalisation keeps the effective step size from shrinking.
    config.optim.decay = "constant"
    config.optim.grad_clip = 0.0
    return config
