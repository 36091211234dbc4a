"""The catalogue of shipped studies and their prose: what the results pages say that the tables cannot hold.

Each :class:`StudyPage` of :data:`STUDIES` is a study whose results table ``docs/<name>_results.csv`` is shipped: its
title, what was run (the config, the schedule, when, on what machine, how long) and the readings to keep.
:data:`COMPARISON` names the two studies compared side by side, :data:`HEADLINE_FIGURE` the README's figure and
:data:`HEADLINE_CLAIMS` the rows of the at-a-glance table. When a study is re-run (or a new one shipped), copy its
``results.csv`` to ``docs/<name>_results.csv``, edit its entry here (its prose; a new study is a new
:class:`StudyPage`), then write the pages from it with ``python -m experiments.report.pages`` (or ``make docs``).
The results themselves (every estimate, interval, verdict and seed count) come from the tables, never from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StudyPage:
    """A shipped study: its files' prefix in ``docs/``, a title, what was run (prose) and the readings to keep."""

    name: str
    title: str
    about: str
    readings: tuple[str, ...]


STUDIES: tuple[StudyPage, ...] = (
    StudyPage(
        "default_study",
        "The default study (`make study`)",
        (
            "`experiments/configs/studies/fmnist_default.yaml` with the small CaffeNet of "
            "`experiments/configs/fmnist/base.yaml` (widths 16, 32, 48, 48, 32, 128, 128; 5x5 conv1 stride 1; fc8 10 "
            "wide, as the paper's 1000 for all of ImageNet): batch 128 (about 1.3 epochs of a half), validation every "
            "100 steps, lr x0.1 after step 200. The dissimilar split is clothing / footwear and bags, both directions, "
            "frozen; random frozen features are trained on all 10 classes. Re-run on 2026-12-07 with this code (its "
            "base A of seed 0 re-trained alone gave the same paper metric to the last digit) on the 2-core development "
            "machine without GPU, `--launcher cpus`, with other work sharing the cores: about 50 minutes; alone, `make "
            "study` took 16 min 56 s on 2026-11-29, the 50 frozen transfer networks in 8 fused groups, plus about 2 "
            "minutes of set-up on a fresh clone. Figure 2's third panel is the layer similarity (debiased linear CKA) "
            "of bases A and B per layer (`docs/default_study_cka.csv`); the checkpoints are not shipped."
        ),
        (
            'BnB and the "+" networks measure extra training as much as transfer: a reversed dip is BnB sitting above '
            "its base, more training of an unconverged network, and AnB+ - BnB+ compares with a BnB+ that has seen its "
            "own half twice as long.",
            "The default study is a fast, honest run of the whole pipeline; the effects that need converged networks "
            "need a study that passes the check (the `fmnist_converged` preset once a schedule passes, the "
            "paper-scale study on ImageNet).",
        ),
    ),
    StudyPage(
        "fmnist_4000_steps",
        "The 4000-step study",
        (
            "The default grid with every network trained 4000 steps of batch 128, lr 0.01 x0.1 at step 3000, "
            'validation every 250 steps, at n = 1, 3, 5, 7, run on 2026-11-29. It shipped that day as "converged": '
            "it passed the old rule, but its BnB+ beat its own "
            "base in every seed, and that is what an under-trained base predicts (BnB+ is the base trained again). "
            "It is re-reported here from its results table under the current statistics."
        ),
        (
            "Its bases are flat at the end: the plateau after the lr drop hides the under-training that BnB+ shows.",
            "A reversed AnB+ - BnB+ is what BnB+'s extra training of its own half predicts.",
            "Its CKA panel used the biased estimator (it falls with a network's width whatever was shared) and was "
            "withdrawn with its file; the checkpoints to recompute it are gone.",
        ),
    ),
    StudyPage(
        "fmnist_vit",
        "A modern backbone at the same scale (`fmnist_vit`)",
        (
            "The 4000-step grid with the small ViT of `experiments/configs/fmnist/vit.yaml` (7x7 patches, 6 blocks of "
            "width 64: n = 1..7 are `embed`, `block1`..`block6`) and its recipe (AdamW 1e-3, 200 warm-up steps, cosine "
            "to 0). Run on 2026-11-29/30 in about 4 h 45 min of wall time on the 2-core machine without GPU, and "
            "re-reported here from its results table under the current statistics; its preset "
            "(`experiments/configs/studies/fmnist_vit.yaml`) now has 3 seeds in every panel (99 networks, about 7 "
            "hours on 2 cores), and this run was not repeated."
        ),
        (
            "Not converged, so no verdict of this study that needs converged networks is interpretable; the dip's and "
            "the boost's intervals hold zero anyway.",
            "Its CKA table used the biased estimator and its checkpoints are gone, so it was withdrawn; a re-run "
            "computes the debiased panel.",
        ),
    ),
)
# The comparison: (left study, right study, their labels, the files' prefix in docs/).
COMPARISON = ("fmnist_4000_steps", "fmnist_vit", "CaffeNet", "ViT", "fmnist_vit_vs_caffenet")
HEADLINE_FIGURE = "fmnist_4000_steps_figure2.png"
HEADLINE_FIGURE_TITLE = "Figure 2 of the 4000-step study"  # its alt text, before the study's convergence status
COMPARISON_ABOUT = "The two 4000-step studies side by side"  # the comparison section's first words
COMPARISON_STAGES = "n = 7 is CaffeNet's fc7 and the ViT's block6"  # what one n names in the two networks
HEADLINE_CLAIMS = (  # (row label, claim, contrast, which row of the effects table: the first or the deepest n)
    ("co-adaptation dip: BnB - base, pooled", "co-adaptation dip", "BnB - base", 0),
    ("specificity: AnB - BnB, deepest n", "specificity", "AnB - BnB", -1),
    ("lasting boost: AnB+ - base, pooled over every n", "lasting boost", "AnB+ - base", 0),
)
