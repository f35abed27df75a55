"""The training library (DESIGN.md, "Layers", 5): TrainState with EMAs and a method-state field,
the generic train step, the diffusion objective, data parallelism (`parallel`, the only module
that knows devices) and the orbax checkpoint manager. The training job is `diffjax.jobs.train`."""
