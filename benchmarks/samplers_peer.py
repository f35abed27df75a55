"""Peer half of benchmarks/samplers.py: k-diffusion's DPM++ 2M on the same exact GMM denoiser.

Runs in the peer's own venv (torch + `k-diffusion --no-deps`), never in the test environment:

    /tmp/peer/bin/python benchmarks/samplers_peer.py IN.npz OUT.npz

Only `k_diffusion/sampling.py` is loaded, from its file: the package `__init__` imports torchvision
and more. Its unused imports (torchdiffeq, torchsde, tqdm) and its `utils.append_dims` are stubbed.
"""
import importlib.util
import pathlib
import sys
import time
import types

import numpy as np
import torch


def load_k_diffusion_sampling():
    spec = importlib.util.find_spec("k_diffusion")
    root = pathlib.Path(spec.submodule_search_locations[0])
    package = types.ModuleType("k_diffusion")
    package.__path__ = [str(root)]
    utils = types.ModuleType("k_diffusion.utils")
    utils.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
    stubs = {"k_diffusion": package, "k_diffusion.utils": utils,
             "torchdiffeq": types.SimpleNamespace(odeint=None),
             "torchsde": types.SimpleNamespace(BrownianTree=None),
             "tqdm": types.ModuleType("tqdm"),
             "tqdm.auto": types.SimpleNamespace(trange=lambda n, disable=None: range(n), tqdm=None)}
    sys.modules.update(stubs)
    module_spec = importlib.util.spec_from_file_location("k_diffusion.sampling", root / "sampling.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def gmm_denoiser(weights, means, stds):
    """Exact `E[x0 | x]` of `sum_k w_k N(mu_k, diag(c_k^2))` under `x = x0 + sigma eps` (float64)."""
    log_w = torch.log(weights)

    def denoise(x, sigma):
        s2 = sigma.reshape(-1, 1, 1) ** 2
        var = stds[None] ** 2 + s2
        diff = x[:, None, :] - means[None]
        log_comp = -0.5 * torch.sum(diff**2 / var + torch.log(2 * torch.pi * var), dim=-1) + log_w
        resp = torch.softmax(log_comp, dim=-1)
        return torch.einsum("bk,bkd->bd", resp, means[None] + stds[None] ** 2 / var * diff)

    return denoise


def main(path_in, path_out):
    torch.set_num_threads(1)
    data = np.load(path_in)
    sampling = load_k_diffusion_sampling()
    denoise = gmm_denoiser(*(torch.from_numpy(data[k]) for k in ("weights", "means", "stds")))
    x_init = torch.from_numpy(data["x_init"])
    out = {}
    for name in data["grid_names"]:
        sigmas = torch.from_numpy(data[f"grid_{name}"])
        start = time.perf_counter()
        x = sampling.sample_dpmpp_2m(denoise, x_init * sigmas[0], sigmas, disable=True)
        out[f"x_{name}"] = x.numpy()
        out[f"time_{name}"] = np.float64(time.perf_counter() - start)
    np.savez(path_out, **out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
