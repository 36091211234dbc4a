"""A synthetic results table with effects of known size, for the report's tests.

Every network's metric is its base's plus the planted effect plus noise. A seed effect shared by all
networks of one seed (which pairing by seed removes) and a per-network noise are added. With
``noise=None`` the per-network noise is a fixed zero-mean pattern over seeds, shifted per group of
networks, so every estimate equals its planted size exactly while the intervals still have width.
"""

from __future__ import annotations

import random
from typing import Any

LAYERS = range(1, 8)
DIP = {1: 0.0, 2: 0.0, 3: 0.0, 4: -0.03, 5: -0.05, 6: -0.01, 7: 0.0}  # BnB - base; n=3: no dip
TRANSFER = {1: 0.0, 2: 0.0, 3: -0.01, 4: -0.03, 5: -0.05, 6: -0.05, 7: -0.10}  # AnB - base
BOOST = 0.02  # AnB+ - base and AnB+ - BnB+ (BnB+ = base)
DISSIMILAR_EXTRA = 0.03  # the dissimilar split transfers *better* here: the paper's claim reversed
RANDOM_FEATURES = -0.3  # random - its base at every n
BASES = {
    ("random0", "A"): 0.85,
    ("random0", "B"): 0.80,
    ("dissimilar", "clothing"): 0.75,
    ("dissimilar", "footwear_bags"): 0.90,
    ("whole", "all"): 0.82,
}


def network(
    split: str,
    base: str | None,
    target: str,
    n: int,
    mode: str | None,
    seed: int,
    value: float,
    history: list[float] | None = None,
) -> dict[str, Any]:
    """One row of the results table in the study's vocabulary."""
    if n == 0:
        family = f"base{target}" if target in ("A", "B") else "base"
    elif base is None:
        family = "random"
    else:
        family = ("BnB" if base == target else "AnB") + ("+" if mode == "finetune" else "")
    body = f"base-{target}" if n == 0 else f"{base or 'random'}{n}{target}{'+' if mode == 'finetune' else ''}"
    return {
        "split": split,
        "base_half": base,
        "target_half": target,
        "n": n,
        "mode": mode,
        "family": family,
        "seed": seed,
        "top1_best_k_mean": value,
        "best_k": 2,
        "cell": f"{split}_{body}_s{seed}",
        "val_top1_history": history if history is not None else [value - 0.05, value - 0.002, value, value],
    }


def planted_rows(
    seeds: int = 5, noise: float = 0.002, seed_effect: float = 0.01, rng: random.Random | None = None
) -> list[dict[str, Any]]:
    """The study: random0 (bases A, B; BnB, BnB+ on B; AnB, AnB+ A->B), the dissimilar split, random features.

    Args:
        seeds: Networks per condition (seeds 0..seeds-1).
        noise: The per-network noise's scale (std with ``rng``, else the pattern's step).
        seed_effect: The scale of the effect shared by one seed's networks.
        rng: Draw Gaussian noise from it; None: the exact zero-mean pattern.
    """
    pattern = [i - (seeds - 1) / 2 for i in range(seeds)]  # zero mean over seeds
    groups: dict[tuple[Any, ...], int] = {}

    def jitter(key: tuple[Any, ...], seed: int) -> float:
        if rng is not None:
            return rng.gauss(0.0, noise)
        shift = groups.setdefault(key, len(groups))
        return noise * pattern[(seed + shift) % seeds]

    rows = []
    for seed in range(seeds):
        shared = rng.gauss(0.0, seed_effect) if rng is not None else seed_effect * pattern[seed]
        base = {key: level + shared for key, level in BASES.items()}
        for (split, target), level in base.items():
            rows.append(network(split, None, target, 0, None, seed, level + jitter((split, target, 0), seed)))
        for n in LAYERS:
            planted = [
                ("B", "frozen", DIP[n]),
                ("A", "frozen", TRANSFER[n]),
                ("B", "finetune", 0.0),
                ("A", "finetune", BOOST),
            ]
            for source, mode, effect in planted:
                value = base["random0", "B"] + effect + jitter((source, mode, n), seed)
                rows.append(network("random0", source, "B", n, mode, seed, value))
            for source, target in (("clothing", "footwear_bags"), ("footwear_bags", "clothing")):
                value = base["dissimilar", target] + TRANSFER[n] + DISSIMILAR_EXTRA + jitter((target, n), seed)
                rows.append(network("dissimilar", source, target, n, "frozen", seed, value))
            value = base["whole", "all"] + RANDOM_FEATURES + jitter(("random", n), seed)
            rows.append(network("whole", None, "all", n, "frozen", seed, value))
    return rows


EXTRA_LOSS = 0.04  # right_rows' frozen transfer loses this much more at n = 7, nothing more elsewhere


def right_rows() -> list[dict[str, Any]]:
    """The second study of the comparison tests: :func:`planted_rows` (5 seeds) with ``EXTRA_LOSS`` taken off
    AnB(7) of ``random0``, so that it differs from the unchanged table there alone."""
    rows = planted_rows(seeds=5)
    for row in rows:
        if row["family"] == "AnB" and row["split"] == "random0" and row["n"] == 7:
            row["top1_best_k_mean"] -= EXTRA_LOSS
    return rows
