"""The old home of ``CaffeNetClassifier`` (until 2026-12-07), kept for what was written then: checkpoints and run
folders record the class as ``models.module.CaffeNetClassifier``, and resuming or loading them imports this path.
New code and configs name ``models.CaffeNetClassifier`` (defined in ``models.caffenet_classifier``)."""

from models.caffenet_classifier import CaffeNetClassifier

__all__ = ["CaffeNetClassifier"]
