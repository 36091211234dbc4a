"""The paper's names for its networks, one home for the study (which names its cells) and the report (which reads them).

``experiments.study.grid.Cell.family`` gives each cell its name (``baseA``, ``BnB``, ``AnB+``, ``random``, ...);
these are the names other modules choose rows by.
"""

from __future__ import annotations

from typing import Literal

Figure2Family = Literal["BnB", "AnB", "BnB+", "AnB+"]
# Figure 2's transfer families, in the paper's order of its legend (selffer and transfer, frozen then fine-tuned).
FIGURE2_FAMILIES: tuple[Figure2Family, ...] = ("BnB", "AnB", "BnB+", "AnB+")
# The base half of a network that copied a pretrained weights file (experiments.study.grid.PretrainedCells): its
# A is the data the file was trained on, not a half.
PRETRAINED = "pretrained"
# The other families: a base network on a split whose halves are not A and B (the dissimilar split's; a split's
# bases on A and B are ``baseA`` and ``baseB``), frozen random features (no base), and a base network trained on
# fewer images per class.
BASE = "base"
RANDOM_FEATURES = "random"
REDUCED_DATA = "reduced"
