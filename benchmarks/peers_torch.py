"""Peer half of benchmarks/peers.py: the PyTorch side of each row, in the peers' own venv.

    ~/.cache/diffjax/peers-venv/bin/python benchmarks/peers_torch.py

Reads one JSON job per line on stdin and answers one JSON line per job on stdout, so the model of a
row is built once and `peers.py` can alternate peer and diffjax measurements. A job is
`{"row": "diffwave" | "unet" | "sampler", "steps": n, ...row options}`; the answer is
`{"seconds": [n per-step or per-run wall times], "setup_s": s, ...}`, or `{"error": "..."}`. The first job of a row
builds it and runs `warmup` untimed steps (default 1; time in `setup_s`); later jobs only time.

Rows (shapes and options come from peers.py):
- 'diffwave': lmnt-com/diffwave's `DiffWave` (30 x 64, mel-conditioned), Adam, noise-prediction
  MSE on its discrete schedule (the learner's L1 replaced by MSE, as on the diffjax side);
- 'unet': audio-diffusion-pytorch's `UNetV0` (its `components.py` loaded with `torchaudio.transforms`
  stubbed: only its MelSpectrogram needs it), Adam, noise-prediction MSE on `x cos + eps sin`;
- 'sampler': k-diffusion's `sample_dpmpp_2m` / `sample_heun` on the exact GMM denoiser
  (`samplers_peer.gmm_denoiser`), inputs from an .npz; also returns the samples' path.
"""
import functools
import importlib.util
import json
import pathlib
import sys
import time
import types

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from samplers_peer import gmm_denoiser, load_k_diffusion_sampling  # noqa: E402

THREADS = 2


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def adam_mse_step(model, forward, lr=2e-4):
    """`step() -> loss`: one Adam step on the noise-prediction MSE `forward() -> (pred, eps)`."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        pred, eps = forward()
        loss = torch.mean((pred - eps) ** 2)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def build_diffwave(job):
    from diffwave.model import DiffWave

    schedule = np.linspace(1e-4, 0.05, 50)  # lmnt's params.noise_schedule
    params = types.SimpleNamespace(residual_layers=job["layers"], residual_channels=job["channels"],
                                   dilation_cycle_length=job["dilation_cycle"], n_mels=job["n_mels"],
                                   noise_schedule=schedule.tolist(), unconditional=False)
    model = DiffWave(params)
    gen = torch.Generator().manual_seed(0)
    audio = torch.randn(job["batch"], job["length"], generator=gen).clamp(-1, 1)
    mel = torch.randn(job["batch"], job["n_mels"], job["length"] // 256, generator=gen)
    noise_level = torch.tensor(np.cumprod(1 - schedule), dtype=torch.float32)

    def forward():  # lmnt's DiffWaveLearner.train_step, with MSE
        t = torch.randint(0, len(schedule), [audio.shape[0]])
        scale = noise_level[t].unsqueeze(1)
        eps = torch.randn_like(audio)
        noisy = scale**0.5 * audio + (1.0 - scale) ** 0.5 * eps
        return model(noisy, mel, t).squeeze(1), eps

    return adam_mse_step(model, forward), {"params": count_params(model)}


def load_unet_v0():
    """audio-diffusion-pytorch's `UNetV0`, from its components.py alone (its package imports torchaudio)."""
    root = pathlib.Path(importlib.util.find_spec("audio_diffusion_pytorch").submodule_search_locations[0])
    sys.modules.setdefault("torchaudio", types.SimpleNamespace(transforms=None))
    spec = importlib.util.spec_from_file_location("adp_components", root / "components.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.UNetV0


def build_unet(job):
    model = load_unet_v0()(dim=1, in_channels=1, channels=job["channels"], factors=job["factors"],
                           items=job["items"], attentions=job["attentions"],
                           attention_heads=job["heads"], attention_features=job["head_dim"],
                           modulation_features=job["modulation_features"])
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(job["batch"], 1, job["length"], generator=gen)

    def forward():
        t = torch.rand(x0.shape[0])
        angle = (t * torch.pi / 2).view(-1, 1, 1)
        eps = torch.randn_like(x0)
        return model(x0 * torch.cos(angle) + eps * torch.sin(angle), time=t), eps

    return adam_mse_step(model, forward), {"params": count_params(model)}


@functools.lru_cache(maxsize=None)
def k_diffusion_sampling():
    """`k_diffusion.sampling`, loaded once (the loader stubs the package, so it cannot run twice)."""
    sys.modules.setdefault("scipy", types.SimpleNamespace(integrate=None))  # only DPM-adaptive uses it
    return load_k_diffusion_sampling()


def build_sampler(job):
    sampling = k_diffusion_sampling()
    data = np.load(job["inputs"])
    denoise = gmm_denoiser(*(torch.from_numpy(data[k]) for k in ("weights", "means", "stds")))
    sigmas = torch.from_numpy(data["sigmas"])
    x_init = torch.from_numpy(data["x_init"]) * sigmas[0]
    sample = getattr(sampling, f"sample_{job['sampler']}")
    outputs = {}

    def step():
        outputs["x"] = sample(denoise, x_init, sigmas, disable=True)

    def finish():
        probe = torch.from_numpy(data["probe_x"])
        probe_sigma = torch.from_numpy(data["probe_sigma"])
        np.savez(job["outputs"], x=outputs["x"].numpy(), probe_d=denoise(probe, probe_sigma).numpy())
        return {"outputs": job["outputs"]}

    return step, {"finish": finish}


BUILDERS = {"diffwave": build_diffwave, "unet": build_unet, "sampler": build_sampler}


def run(job, cache):
    key = json.dumps({k: v for k, v in job.items() if k not in ("steps", "warmup")}, sort_keys=True)
    reply = {}
    if key not in cache:
        if job["row"] not in BUILDERS:
            raise ValueError(f"unknown row {job['row']!r}; valid rows: {sorted(BUILDERS)}")
        tic = time.perf_counter()
        step, info = BUILDERS[job["row"]](job)
        for _ in range(int(job.get("warmup", 1))):  # torch's first steps run several times slower
            step()
        cache[key] = (step, info)
        reply["setup_s"] = time.perf_counter() - tic
    step, info = cache[key]
    seconds = []
    for _ in range(int(job.get("steps", 1))):
        tic = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - tic)
    reply.update({k: v for k, v in info.items() if k != "finish"}, seconds=seconds)
    if "finish" in info:
        reply.update(info["finish"]())
    return reply


def main():
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    cache = {}
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        if line.strip():
            try:
                reply = run(json.loads(line), cache)
            except Exception as error:  # reported to peers.py, which skips the row and says why
                reply = {"error": f"{type(error).__name__}: {error}"}
            print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
