"""Train the world's one tiny VAE (shared by every model in it)."""
from __future__ import annotations

import numpy as np


def train_vae(vae, images: np.ndarray, steps: int = 2000, batch_size: int = 64, lr: float = 2e-3,
              kl_weight: float = 1e-6, seed: int = 0, progress: bool = False):
    """Reconstruction + a small KL term; then set scaling_factor so latents have unit std,
    which the noise schedule assumes (an unscaled latent space is what costs memorization)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(images).permute(0, 3, 1, 2).float() * 2 - 1
    opt = torch.optim.AdamW(vae.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    vae.train()
    it = range(steps)
    if progress:
        from rich.progress import track
        it = track(it, description="training VAE", transient=True)
    for _ in it:
        x = data[torch.randint(0, len(data), (batch_size,), generator=gen)]
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        recon = vae.decode(z).sample
        loss = torch.nn.functional.mse_loss(recon, x) + kl_weight * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    vae.eval()
    with torch.no_grad():
        mean = torch.cat([vae.encode(data[i:i + 256]).latent_dist.mean for i in range(0, len(data), 256)])
        recon = torch.cat([vae.decode(mean[i:i + 256]).sample for i in range(0, len(mean), 256)])
    vae.register_to_config(scaling_factor=float(1.0 / mean.std()))
    rms = float(((recon - data) / 2).pow(2).mean(dim=(1, 2, 3)).sqrt().mean())
    return vae, rms


def round_trip(vae, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Images (N,H,W,3 in [0,1]) through the VAE's posterior mean and back: the most of an
    image a latent diffusion model can learn to reproduce."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(np.asarray(images[i:i + batch], np.float32)).permute(0, 3, 1, 2) * 2 - 1
            y = vae.decode(vae.encode(x.to(vae.dtype)).latent_dist.mean).sample.float()
            out.append(((y.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)
