"""What a training run keeps: validation by the eval metrics, the exported weights, checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import metrics
from .. import weights as W
from ..models import ARCHS
from . import distributed as D


class TrainerState:
    """Methods of ``Trainer``: validation, export and checkpoints (resume is exact)."""

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """Strip LPIPS (where available), PSNR, SSIM and sharpness of the composite on held-out shots."""
        self.g.eval()
        outs = []
        for i in range(0, len(self.val_images), 8):
            x = self.val_images[i : i + 8].to(self.device)
            m = self.val_masks[i : i + 8].to(self.device)
            pred = self.g(x * (1 - m), m).float()
            outs.append((pred * m + x * (1 - m)).cpu())
        out = torch.cat(outs)

        def u8(t: torch.Tensor) -> np.ndarray:
            return (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()

        mask = self.val_masks[0, 0].numpy() > 0.5
        o, t = u8(out), u8(self.val_images)
        scores = {
            "psnr": metrics.psnr(o, t, mask),
            "ssim": metrics.ssim(o, t, mask),
            "sharpness": metrics.sharpness(o, t, mask),
        }
        if self.lpips is not None:
            lpips, dev = self.lpips, self.device
            scores["lpips"] = metrics.strip_lpips(o, t, mask, lambda a, b: lpips.distance(a.to(dev), b.to(dev)).cpu())
        return scores

    def _better(self, val: dict[str, float]) -> bool:
        v = val[self.score]
        return v < self.best if self.score == "lpips" else v > self.best

    def export(self, path: Path) -> Path:
        meta = {
            "trained_steps": self.step,
            "trained_seconds": f"{self.trained_seconds:.0f}",
            f"best_val_{self.score}": f"{self.best:.4f}",
            "model": self.o.model,
        }
        return W.save(self.g, path, self.arch, self.config, meta, half=self.o.half)

    def state_summary(self) -> str:
        """What a checkpoint holds, with sizes: both networks and their optimiser moments."""

        def mb(*modules: nn.Module) -> str:
            return f"{sum(p.numel() for m in modules for p in m.parameters()) * 4 * 3 / 1e6:.1f} MB"

        return (
            f"the generator and its Adam moments ({mb(self.g)}), the discriminator and its Adam"
            f" moments ({mb(self.d)}), the step, the best score and every rank's random state"
        )

    def save_checkpoint(self) -> Path:
        """Write what resuming needs (every rank calls it: the RNG states are gathered; rank 0 writes)."""
        path = self.o.checkpoint
        assert path is not None
        rngs = D.gather(torch.get_rng_state(), self.world)
        if not self.world.main:
            return path
        state = {
            "g": self.g.state_dict(),
            "d": self.d.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "step": self.step,
            "best": self.best,
            "best_step": self.best_step,
            "score": self.score,
            "seconds": self.trained_seconds,
            "config": json.dumps(self.config),
            "rng": rngs[0] if len(rngs) == 1 else torch.stack(rngs),  # type: ignore[arg-type]
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)  # a checkpoint on disk is always whole
        return path

    def _load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.config = json.loads(state["config"])
        self.g = ARCHS[self.arch](dict(self.config)).to(self.device)
        self.g.load_state_dict(state["g"])
        self.d.load_state_dict(state["d"])
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=self.lr[0], betas=(0.5, 0.999))
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for opt, lr in ((self.opt_g, self.lr[0]), (self.opt_d, self.lr[1])):
            for group in opt.param_groups:  # the rates of this invocation (the same: an exact resume)
                group["lr"] = lr
        self.step = int(state["step"])
        self.trained_seconds = float(state.get("seconds", 0.0))
        if state.get("score", "psnr") == self.score:  # the same measure: carry the best on
            self.best = float(state["best"])
            self.best_step = int(state.get("best_step", 0))
        rng = state["rng"]
        ranks = 1 if rng.dim() == 1 else rng.shape[0]
        if ranks != self.world.size:
            raise ValueError(f"{path}: written by {ranks} rank(s); resume it with as many (now {self.world.size})")
        torch.set_rng_state(rng if rng.dim() == 1 else rng[self.world.rank].clone())
