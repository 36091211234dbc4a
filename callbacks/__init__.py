"""Callbacks: the paper's layer transfer, and checkpointing that a long run can resume from."""

from callbacks.checkpoint import BestAndLastCheckpoint, LearningRateMonitorWhenLogging
from callbacks.transfer import TransferCallback

__all__ = ["BestAndLastCheckpoint", "LearningRateMonitorWhenLogging", "TransferCallback"]
