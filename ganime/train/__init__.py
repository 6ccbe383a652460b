"""Training: data, losses, discriminators and the trainer behind ``ganime train``."""

from .trainer import StepReport, Stopped, Trainer, TrainOptions

__all__ = ["StepReport", "Stopped", "TrainOptions", "Trainer"]
