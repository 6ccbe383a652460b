"""Training: data, losses, discriminators and the trainer behind ``ganime train``."""

from .trainer import StepReport, Trainer, TrainOptions

__all__ = ["StepReport", "TrainOptions", "Trainer"]
