"""``ganime train``: fit a model to your shows, with the losses of its family.

The generator is the registry's own module (never a wrapper), so what is trained is
what converts. Checkpoints hold models, optimizers, step, best score and RNG state,
and are written atomically; batches depend only on (seed, step), so ``--resume``
continues exactly where a run stopped. Validation uses the eval metrics on held-out
shots: strip LPIPS (the eval's leading measure) when the perceptual weights can be
found, else strip PSNR; the weights with the best score so far are kept in the output
file, and every validation's metrics go to the JSONL log (and TensorBoard).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .. import perceptual as P
from .. import weights as W
from ..engine import configure_cpu_threads, select_device
from ..models import ARCHS, get_spec, load_model, resolve_weights
from . import distributed as D
from . import losses as L
from .data import DataOptions, Samples, gather
from .discriminators import GlcicDiscriminator, PatchDiscriminator
from .validation import Validation

FAMILY = {"context-encoder": "ce", "glcic": "glcic", "lama": "lama"}
# Fewer training shots than this draw a warning: a held-out show given as one clip (14
# frames in 3 shots) made validation LPIPS rise in every fine-tune tried (see weights/README.md);
# the network learns those few drawings, not the show.
FEW_SHOTS = 20
# Adam learning rates (generator, discriminator) by family: LaMa's published 1e-3 / 1e-4;
# the DCGAN-style 2e-4 of the Context Encoder, also used for GLCIC (its paper used Adadelta).
LR = {"ce": (2e-4, 2e-4), "glcic": (2e-4, 2e-4), "lama": (1e-3, 1e-4)}


@dataclass
class TrainOptions:
    """Everything a training run is told (the CLI builds one from its flags)."""

    data: list[Path]
    output: Path
    model: str = "glcic"
    steps: int = 1000
    batch_size: int = 8
    lr: float | None = None  # generator learning rate; None: the family's (LR)
    config: dict = field(default_factory=dict)  # overrides of the model's config (size)
    init: str | None = None  # registered name or weight file to start from
    resume: Path | None = None
    checkpoint: Path | None = None  # default: OUTPUT with .ckpt
    checkpoint_every: int = 200
    val_every: int = 200
    log: Path | None = None  # default: OUTPUT with .jsonl
    device: str = "auto"
    seed: int = 0
    height: int = 144
    width: int = 256
    glcic_phases: tuple[float, float] | None = None  # shares of the steps for phases 1 and 2 (None: see phases)
    freeze_norm: bool | None = None  # keep BatchNorm statistics as they are; None: when fine-tuning (--init)
    half: bool = True  # store the exported weights in half precision
    ssim_weight: float = 0.0  # weight of the optional structural term (1 - SSIM), every family
    val_frames: int = 128  # held-out frames scored at each validation
    perceptual: Path | None = None  # folder of perceptual weights (default: $GANIME_PERCEPTUAL)
    perceptual_weight: float | None = None  # VGG16 perceptual loss; None: the family's (LaMa 30, others 0)

    def resolved(self) -> TrainOptions:
        o = TrainOptions(**{**asdict(self), "data": [Path(p) for p in self.data], "output": Path(self.output)})
        o.checkpoint = Path(self.checkpoint) if self.checkpoint else o.output.with_suffix(".ckpt")
        o.log = Path(self.log) if self.log else o.output.with_suffix(".jsonl")
        o.resume = Path(self.resume) if self.resume else None
        o.perceptual = Path(self.perceptual) if self.perceptual else None
        return o


class Stopped(Exception):
    """The run was asked to stop (Ctrl-C or SIGTERM) and stopped after a whole step.

    Its checkpoint holds every finished step: ``--resume`` loses nothing.
    """

    def __init__(self, step: int, checkpoint: Path) -> None:
        super().__init__(f"stopped after step {step}; resume with --resume {checkpoint}")
        self.step = step
        self.checkpoint = checkpoint


class _StopRequest:
    """Turns the first SIGINT/SIGTERM into a request honoured between steps (a second
    Ctrl-C interrupts at once). Only the main thread can take signals; elsewhere a no-op."""

    def __init__(self) -> None:
        self.requested = False
        self._saved: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._saved.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


@dataclass(frozen=True)
class StepReport:
    """Progress of a run, for the caller to show."""

    step: int
    steps: int
    losses: dict[str, float]
    elapsed: float
    val: dict[str, float] | None = None


class Trainer:
    """One training run of one model."""

    def __init__(self, options: TrainOptions, progress: Callable[[StepReport], None] | None = None) -> None:
        self.o = options.resolved()
        self.progress = progress
        spec = get_spec(self.o.model)
        if spec.arch not in FAMILY:
            raise ValueError(f"{self.o.model} has no weights to train (choose a neural model)")
        self.arch = spec.arch
        self.family = FAMILY[spec.arch]
        self.world = D.world_from_env()  # one process, or one rank of a torchrun
        self.device = D.device_for(self.world, select_device(self.o.device))
        if self.device.type == "cpu":
            configure_cpu_threads()
        D.start(self.world, self.device)
        torch.manual_seed(self.o.seed)  # the same initial weights on every rank
        self.config = {**spec.config, **self.o.config}
        if self.arch == "context-encoder":  # it works at the training resolution, to its nearest multiple
            q = 2 ** int(self.config.get("depth", 5))  # of its stride (the fully connected layer needs one)
            self.config.update(height=max(q, round(self.o.height / q) * q), width=max(q, round(self.o.width / q) * q))
        if self.arch in ("glcic", "lama") and not self.config.get("working_height") and self.o.init is None:
            self.config["working_height"] = self.o.height  # converts taller frames at its training scale
        self.g = self._generator(spec.name).to(self.device)
        self.d = self._discriminator().to(self.device)
        betas = (0.5, 0.999)
        lr_g, lr_d = LR[self.family]
        if self.o.lr is not None:  # the ratio of the two is kept
            lr_g, lr_d = self.o.lr, self.o.lr * lr_d / lr_g
        self.lr = (lr_g, lr_d)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=lr_d, betas=betas)
        self.amp = self.device.type == "cuda"
        self.step = 0
        self.trained_seconds = 0.0  # wall-clock of the run so far, over every resume
        self.notes: list[str] = []  # what this run could not do as asked (logged at its start)
        self.perceptual = self._perceptual_loss()
        lpips = self._lpips()
        self.best_step = 0  # the step whose weights the output holds (0: the start)
        data = DataOptions(height=self.o.height, width=self.o.width)
        train, val = gather(self.o.data, data)
        self.shots = (len(train), sum(len(s.frames) for s in train), len(val), sum(len(s.frames) for s in val))
        if len(train) < FEW_SHOTS:
            self.notes.append(
                f"only {self.shots[1]} frames in {len(train)} shots to learn from (validation: {self.shots[3]} frames"
                f" in {len(val)} shots); with fewer than {FEW_SHOTS} shots a network learns those drawings, not"
                " the show: give it more episodes"
            )
        self.samples = Samples(train, val, data, seed=self.o.seed, shard=(self.world.rank, self.world.size))
        # The validation score the kept weights are chosen by; LPIPS lower is better.
        self.validation = Validation(*self.samples.validation(self.o.val_frames), self.device, lpips)
        self.best = self.validation.worst
        if self.world.distributed:
            torch.manual_seed(self.o.seed + self.world.rank)  # dropout and the like differ per rank
        if self.o.resume:
            self._load_checkpoint(self.o.resume)
        self.g_train: nn.Module = self.g
        if self.world.distributed:
            D.broadcast_module(self.g, self.world)
            D.broadcast_module(self.d, self.world)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_train = DistributedDataParallel(self.g, device_ids=ids)

    # --------------------------------------------------------------- building

    def _generator(self, name: str) -> nn.Module:
        if self.o.init is None:
            return ARCHS[self.arch](dict(self.config))
        init = Path(self.o.init)
        source = init if init.suffix == ".safetensors" else resolve_weights(self.o.init)
        arch, config, state, _ = W.read(source)  # type: ignore[arg-type]
        if arch != self.arch:
            raise W.WeightsError(f"{source}: holds a {arch} model, not {self.arch}")
        wanted = {**config, **self.o.config}
        self.config = wanted
        if wanted == config:
            return load_model(name, source, "cpu")
        # --set may add a Detail branch (models.start) to trained weights: it starts at
        # zero, so the fine-tune begins exactly where those weights are. Nothing else may
        # change shape.
        model = ARCHS[arch](wanted)
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        problem = f"{source}: its tensors do not fit the model with {self.o.config}"
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # a tensor of another shape
            raise W.WeightsError(problem) from e
        if unexpected or any(not k.startswith("detail.") for k in missing):
            raise W.WeightsError(problem)
        return model

    def _perceptual_loss(self) -> L.PerceptualLoss | None:
        weight = self.o.perceptual_weight
        wanted = weight if weight is not None else (30.0 if self.family == "lama" else 0.0)
        self.perceptual_weight = wanted
        if not wanted:
            return None
        try:
            vgg = P.load_vgg16(self.o.perceptual, self.device)
        except P.PerceptualError as e:
            if weight is not None:  # asked for by name: not having it is an error
                raise ValueError(str(e)) from None
            self.notes.append(f"no VGG16 perceptual loss ({e}); LaMa's gradient loss stands in")
            return None
        return L.PerceptualLoss(vgg)

    def _lpips(self) -> P.LPIPS | None:
        try:
            return P.load_lpips(self.o.perceptual, self.device)
        except P.PerceptualError as e:
            self.notes.append(f"validation by strip PSNR: {e}")
            return None

    def _discriminator(self) -> nn.Module:
        if self.family == "glcic":
            return GlcicDiscriminator((self.o.height, self.o.width), width=self.config.get("width", 1.0))
        return PatchDiscriminator(base=32 if self.family == "lama" else 24)

    # ------------------------------------------------------------------ steps

    @property
    def phases(self) -> tuple[float, float]:
        """GLCIC's schedule: generator alone (MSE), discriminator alone, then both.

        From scratch, the paper's shares; a fine-tune skips the generator's MSE phase
        (it is trained already and MSE would pull it towards a blur) and gives the
        fresh discriminator a short head start.
        """
        if self.o.glcic_phases is not None:
            return self.o.glcic_phases
        return (0.0, 0.05) if self.o.init else (0.18, 0.02)

    @property
    def freeze_norm(self) -> bool:
        return self.o.freeze_norm if self.o.freeze_norm is not None else self.o.init is not None

    def _train_mode(self) -> None:
        """Training mode, except frozen BatchNorm layers, which normalise by their running statistics.

        A fine-tune sees one show in small batches, whose statistics are far from those
        the weights were trained with (the usual practice when fine-tuning). Measured on
        a held-out show (GLCIC, ``--init glcic``, 100 steps): validation LPIPS 0.386 ->
        0.418 frozen, -> 0.463 with the statistics live; neither lowers it.
        """
        self.g.train()
        self.d.train()
        if self.freeze_norm:
            for m in self.g.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def _glcic_phase(self) -> int:
        p1, p2 = self.phases
        if self.step < p1 * self.o.steps:
            return 1
        return 2 if self.step < (p1 + p2) * self.o.steps else 3

    def train_step(self, images: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
        """One optimisation step of the family's losses."""
        self._train_mode()
        x, m = images.to(self.device), masks.to(self.device)
        learns = not (self.family == "glcic" and self._glcic_phase() == 2)  # phase 2 trains the discriminator alone
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp), torch.set_grad_enabled(learns):
            pred = (self.g_train if learns else self.g)(x * (1 - m), m).float()
        out = pred * m + x * (1 - m)  # what a viewer would see: the composite
        logs: dict[str, float] = {}
        if self.family == "glcic" and self._glcic_phase() == 1:
            loss_g = L.masked_l2(pred, x, m) + self._structure(out, x, m) + self._perceptual(out, x, m)
            self._update(self.opt_g, loss_g)
            return {"mse": float(loss_g.detach())}
        # Discriminator step.
        if self.family == "glcic":
            real_logits, fake_logits = self.d(x, m), self.d(out.detach(), m)
            loss_d = L.discriminator_adversarial(real_logits, fake_logits)
        elif self.family == "lama":
            real = x.detach().requires_grad_(True)
            real_logits, _ = self.d(real)
            fake_logits, _ = self.d(out.detach())
            loss_d = L.discriminator_adversarial(real_logits, fake_logits) + 0.001 * L.r1_penalty(real_logits, real)
        else:
            real_logits, _ = self.d(x)
            fake_logits, _ = self.d(out.detach())
            loss_d = L.discriminator_adversarial(real_logits, fake_logits)
        self._update(self.opt_d, loss_d, sync=self.d)
        logs["d"] = float(loss_d.detach())
        if self.family == "glcic" and self._glcic_phase() == 2:
            return logs
        # Generator step.
        if self.family == "glcic":
            rec = L.masked_l2(pred, x, m)
            loss_g = (
                rec
                + self._structure(out, x, m)
                + self._perceptual(out, x, m)
                + 0.0004 * L.generator_adversarial(self.d(out, m))
            )
        elif self.family == "lama":
            fake_logits, fake_feats = self.d(out)
            with torch.no_grad():
                _, real_feats = self.d(x)
            rec = L.masked_l1(pred, x, m)
            # The VGG16 term, or LaMa's stand-in where its weights are missing (see losses).
            perceptual = self._perceptual(out, x, m) if self.perceptual is not None else 30 * L.gradient_loss(out, x)
            loss_g = (
                10 * L.generator_adversarial(fake_logits)
                + 100 * L.feature_matching(fake_feats, real_feats)
                + 10 * L.masked_l1(pred, x, 1 - m)  # known pixels (zero for a prefilled model)
                + rec  # generated pixels: anchors colour (see losses)
                + perceptual
                + 10 * self._structure(out, x, m)  # weighted like LaMa's L1 term
            )
            logs["perceptual"] = float(perceptual.detach())
        else:
            fake_logits, _ = self.d(out)
            rec = L.masked_l2(pred, x, m)
            loss_g = (
                0.999 * (rec + self._structure(out, x, m))
                + 0.001 * L.generator_adversarial(fake_logits)
                + self._perceptual(out, x, m)
            )
        self._update(self.opt_g, loss_g)
        logs.update(g=float(loss_g.detach()), rec=float(rec.detach()))
        return logs

    def _structure(self, out: torch.Tensor, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """The optional 1 - SSIM term, weighted (zero and free when off)."""
        if not self.o.ssim_weight:
            return out.new_zeros(())
        return self.o.ssim_weight * L.ssim_loss(out, x, m)

    def _perceptual(self, out: torch.Tensor, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """The weighted VGG16 perceptual term (zero when off)."""
        if self.perceptual is None:
            return out.new_zeros(())
        return self.perceptual_weight * self.perceptual(out, x, m)

    def _update(self, opt: torch.optim.Optimizer, loss: torch.Tensor, sync: nn.Module | None = None) -> None:
        """One optimiser step; ``sync``: a module outside DDP whose gradients are averaged over the ranks."""
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training diverged (loss {float(loss)})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if sync is not None:
            D.average_gradients(sync, self.world)
        opt.step()

    # ------------------------------------------------------------- validation

    # ------------------------------------------------------------ checkpoints

    # -------------------------------------------------------------------- run

    def _log(self, record: dict) -> None:
        if not self.world.main:
            return
        assert self.o.log is not None
        self.o.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.o.log, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in record.items():
                if isinstance(v, float):
                    self._tb.add_scalar(k, v, record["step"])

    def run(self) -> Path:
        """Train to ``steps``; returns the weight file (the weights that validated best)."""
        self._tb = None
        if self.world.main:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.o.output.with_suffix(".tb")))
            except ImportError:  # TensorBoard is optional
                pass
        started = time.perf_counter()
        before = self.trained_seconds
        together = False
        try:
            with _StopRequest() as stop:
                self._loop(started, before, stop)
            together = True
        except Stopped:  # every rank stops at the same step (``any_rank``)
            together = True
            raise
        finally:
            if self._tb is not None:
                self._tb.close()
            D.finish(self.world, together=together)
        return self.o.output

    def _loop(self, started: float, before: float, stop: _StopRequest) -> None:
        main = self.world.main  # rank 0 alone validates and writes weights
        if self.step == 0 and main:  # where the run starts from (a prefilled model starts at its fill)
            val = self.validation(self.g)
            self._log(
                {
                    "step": 0,
                    "score": self.validation.score,
                    "notes": self.notes,
                    **{f"val_{k}": v for k, v in val.items()},
                }
            )
            # The start is a candidate too: the weights kept are never worse than it on validation.
            self.best = val[self.validation.score]
            self.export(self.o.output)
        while self.step < self.o.steps:
            images, masks = self.samples.batch(self.step, self.o.batch_size)
            logs = self.train_step(images, masks)
            self.step += 1
            self.trained_seconds = before + time.perf_counter() - started
            val = None
            if main and (self.step % self.o.val_every == 0 or self.step == self.o.steps):
                val = self.validation(self.g)
                better = self.validation.better(val, self.best)
                if better:
                    self.best, self.best_step = val[self.validation.score], self.step
                if better or not self.o.output.exists():
                    self.export(self.o.output)
            vals = {f"val_{k}": v for k, v in val.items()} if val else {}
            self._log({"step": self.step, "seconds": round(self.trained_seconds, 2), **logs, **vals})
            if self.step % self.o.checkpoint_every == 0 or self.step == self.o.steps:
                self.save_checkpoint()
            if self.progress:
                self.progress(StepReport(self.step, self.o.steps, logs, time.perf_counter() - started, val))
            if D.any_rank(stop.requested, self.world, self.device) and self.step < self.o.steps:
                self.save_checkpoint()
                raise Stopped(self.step, self.o.checkpoint)  # type: ignore[arg-type]

    # ------------------------------------------------------------ persistence

    def export(self, path: Path) -> Path:
        """Write the generator's weights as a ganime weight file, with how it was trained."""
        meta = {
            "trained_steps": self.step,
            "trained_seconds": f"{self.trained_seconds:.0f}",
            f"best_val_{self.validation.score}": f"{self.best:.4f}",
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
            "score": self.validation.score,
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
        if state.get("score", "psnr") == self.validation.score:  # the same measure: carry the best on
            self.best = float(state["best"])
            self.best_step = int(state.get("best_step", 0))
        rng = state["rng"]
        ranks = 1 if rng.dim() == 1 else rng.shape[0]
        if ranks != self.world.size:
            raise ValueError(f"{path}: written by {ranks} rank(s); resume it with as many (now {self.world.size})")
        torch.set_rng_state(rng if rng.dim() == 1 else rng[self.world.rank].clone())
