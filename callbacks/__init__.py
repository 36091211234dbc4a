"""Callbacks: the paper's layer transfer."""

from callbacks.transfer import TransferCallback

__all__ = ["TransferCallback"]
