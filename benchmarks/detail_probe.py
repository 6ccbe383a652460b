"""How far a trained network can move by training its ``Detail`` branch alone (issue 21's probes).

    python benchmarks/detail_probe.py -d FOLDER_OR_FILE [-d ...] --minutes 25 --out run.jsonl
    python benchmarks/detail_probe.py -d ... --fills      # fixed corrections of the fill instead

The shipped network (``--init``, default ``lama``) gains a ``Detail`` branch
(``ganime/models/start.py``) that starts at zero; its core is frozen, so each training
sample's fill and core residual are computed once (``--pool`` samples) and every step
runs only the branch and the loss: LPIPS-VGG (LPIPS v0.1 linear layers over ImageNet
VGG16, from ``$GANIME_PERCEPTUAL``) on the side strips plus L1 on the generated pixels.
Validation is the trainer's: strip LPIPS (AlexNet) on held-out shots. The log has
``train_report.py``'s format.

``--fills`` scores, on the same validation frames, the fill under fixed corrections
(unsharp masking, a blend with ``edge``): whether a correction that helps exists at all.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from ganime import metrics
from ganime import perceptual as P
from ganime.models.classical import EdgeFill
from ganime.train import losses as L
from ganime.train.trainer import Trainer, TrainOptions


class LpipsVgg(torch.nn.Module):
    """LPIPS v0.1 over VGG16, differentiable (the LPIPS authors' choice for a training loss)."""

    def __init__(self, folder: Path | None) -> None:
        super().__init__()
        self.vgg = P.load_vgg16(folder)
        where = P.perceptual_dir(folder)
        assert where is not None, "set GANIME_PERCEPTUAL (the folder of perceptual weights)"
        lins = load_file(str(where / "lpips_v0.1_vgg_lin.safetensors"))
        self.lins = [lins[f"lin{i}.model.1.weight"] for i in range(5)]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = a.new_zeros(())
        for fa, fb, w in zip(self.vgg(a), self.vgg(b), self.lins, strict=True):
            na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + F.conv2d((na - nb) ** 2, w).mean()
        return total


def strips(img: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The left and right side strips of a batch, stacked."""
    span = L.side_span(m, context=0)
    w = img.shape[-1]
    return torch.cat([img[..., :span], img[..., w - span :]])


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = int(3 * sigma) * 2 + 1
    t = torch.arange(k) - k // 2
    g = torch.exp(-(t**2) / (2 * sigma * sigma))
    g = g / g.sum()
    x = F.pad(x, (k // 2,) * 4, mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, k).repeat(3, 1, 1, 1), groups=3)
    return F.conv2d(x, g.view(1, 1, k, 1).repeat(3, 1, 1, 1), groups=3)


def fills(t: Trainer) -> None:
    """Validation LPIPS / PSNR / sharpness of the fill under fixed corrections."""
    x, m = t.val_images, t.val_masks
    known = x * (1 - m)
    with torch.no_grad():
        p = torch.cat([t.g.prefill(known[i : i + 8], m[i : i + 8]) for i in range(0, len(x), 8)]).clamp(0, 1)
        e = EdgeFill()(known, m).clamp(0, 1)
    mask = m[0, 0].numpy() > 0.5

    def u8(v: torch.Tensor) -> np.ndarray:
        return (v.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()

    truth = u8(x)
    candidates = {
        "fill": p,
        "fill + 0.5 x (fill - blur 1.5 px)": p + 0.5 * (p - gaussian_blur(p, 1.5)),
        "fill + 1.0 x (fill - blur 1.5 px)": p + (p - gaussian_blur(p, 1.5)),
        "0.75 fill + 0.25 edge": 0.75 * p + 0.25 * e,
        "0.5 fill + 0.5 edge": 0.5 * p + 0.5 * e,
    }
    print("| correction | val LPIPS | val PSNR | val sharpness |\n|---|---|---|---|")
    for name, v in candidates.items():
        out = u8(v * m + x * (1 - m))
        lp = metrics.strip_lpips(out, truth, mask, t.lpips.distance)  # type: ignore[union-attr]
        print(
            f"| {name} | {lp:.4f} | {metrics.psnr(out, truth, mask):.2f} | {metrics.sharpness(out, truth, mask):.3f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-d", "--data", type=Path, action="append", required=True)
    ap.add_argument("--init", default="lama")
    ap.add_argument("--detail", type=int, default=24, help="channels of the Detail branch")
    ap.add_argument("--pool", type=int, default=1024, help="training samples prepared once")
    ap.add_argument("--minutes", type=float, default=25.0)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--val-every", type=int, default=50)
    ap.add_argument("--val-frames", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("detail_probe.jsonl"))
    ap.add_argument("--fills", action="store_true", help="score fixed corrections of the fill instead")
    a = ap.parse_args()
    options = TrainOptions(
        data=a.data, output=a.out.with_suffix(".safetensors"), model=a.init, init=a.init,
        config={"detail": a.detail}, val_frames=a.val_frames, batch_size=8,
    )  # fmt: skip
    t = Trainer(options)
    if t.lpips is None:
        raise SystemExit("needs the LPIPS weights: set GANIME_PERCEPTUAL")
    if a.fills:
        fills(t)
        return
    g = t.g.eval()
    loss_fn = LpipsVgg(None)
    started = time.perf_counter()
    xs, ms, inputs, residuals = [], [], [], []
    core = g._core if hasattr(g, "_core") else g._complete  # the network under the Detail branch
    with torch.no_grad():  # the frozen part, once per sample
        for i in range(0, a.pool, 8):
            x, m = t.samples.batch(i // 8, 8)
            fill = g.prefill(x * (1 - m), m).clamp(0, 1)
            inp = torch.cat([fill, m], dim=1)  # the training height is the working height
            xs.append(x)
            ms.append(m)
            inputs.append(inp)
            residuals.append(core(inp))
    X, M, INP, RES = (torch.cat(v) for v in (xs, ms, inputs, residuals))
    print(f"pool of {len(X)} samples in {time.perf_counter() - started:.0f} s", flush=True)

    def predict(inp: torch.Tensor, res: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        fill = inp[:, :3]
        gain = (fill.amax(1, keepdim=True) * 10).clamp(max=1)  # the residual's fade next to black (start.DARK)
        return torch.where(m > 0.5, (fill + gain * g.detail(inp, res)).clamp(0, 1), fill)

    g.requires_grad_(False)
    g.detail.requires_grad_(True)
    opt = torch.optim.Adam(g.detail.parameters(), lr=a.lr)
    rng = torch.Generator().manual_seed(0)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w") as log:
        v = t.validate()
        log.write(json.dumps({"step": 0, "seconds": 0.0, **{f"val_{k}": x for k, x in v.items()}}) + "\n")
        print(f"step 0: val LPIPS {v['lpips']:.5f}", flush=True)
        started, step = time.perf_counter(), 0
        while time.perf_counter() - started < a.minutes * 60:
            idx = torch.randint(0, len(X), (a.batch_size,), generator=rng)
            x, m = X[idx], M[idx]
            out = predict(INP[idx], RES[idx], m)
            loss = loss_fn(strips(out, m), strips(x, m)) + L.masked_l1(out, x, m)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % a.val_every == 0:
                v = t.validate()
                rec = {"step": step, "seconds": time.perf_counter() - started, "loss": float(loss.detach())}
                log.write(json.dumps({**rec, **{f"val_{k}": x for k, x in v.items()}}) + "\n")
                log.flush()
                print(f"step {step}: loss {float(loss.detach()):.4f} val LPIPS {v['lpips']:.5f}", flush=True)


if __name__ == "__main__":
    main()
