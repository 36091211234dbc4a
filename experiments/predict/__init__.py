"""Per-stage transferability scores in seconds (``transferability-predict``): how general each stage of a base
network is for target data, from its features of a sample of target images, without training the AnB grid.

``predict(base, data, ...)`` (``experiments.predict.run``) returns one :class:`ScoreRow` per cut point, estimator
and variant; the estimators are in ``experiments.predict.estimators``.
"""

from experiments.predict.estimators import ESTIMATORS
from experiments.predict.run import predict
from experiments.predict.scores import FIELDS, VARIANTS, ScoreRow

__all__ = ["ESTIMATORS", "FIELDS", "VARIANTS", "ScoreRow", "predict"]
