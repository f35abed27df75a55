"""diffjax: diffusion models for music and sound, in JAX/Flax."""
from setuptools import find_packages, setup

setup(
    name="diffjax",
    version="0.1.0",
    description="Diffusion models for music and sound in JAX/Flax: SDEs, samplers, likelihoods, "
                "training, restoration and few-step generation.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["diffjax", "diffjax.*"]),
    install_requires=[
        "jax>=0.10.0",
        "flax>=0.12.0",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11.0",
        "numpy>=1.26",
        "librosa>=0.10.2",
        "ml-collections>=1.0.0",
        "chex>=0.1.88",
        "diffrax>=0.7.0",
        "equinox>=0.13.0",
        "soundfile>=0.12.1",
        "soxr>=0.5.0",
        "absl-py>=2.1.0",
        "tqdm>=4.66",
        "tensorboardX>=2.6.2",
        "matplotlib>=3.8",
        "tokenizers>=0.19",  # caption vocabularies trained in the project (text conditioning)
        "pretty_midi>=0.2.10",  # MIDI notes for notes-to-audio
        "mir_eval>=0.7",  # note onset/pitch F1 of generated audio
    ],
    extras_require={
        "test": ["pytest>=8.0", "pytest-xdist>=3.5"],
    },
)
