"""Training: state and EMA, the pure train step, checkpoints, the loop and evaluation."""
from diffjax.training.loop import train_and_evaluate  # noqa: F401
