"""Optimisers and learning-rate schedules named in recipes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from seqtag.recipe import TrainingConfig


def make_optimizer(
    parameters: Iterable[torch.nn.Parameter] | list[dict[str, Any]], config: TrainingConfig
) -> torch.optim.Optimizer:
    """SGD with momentum (Ma & Hovy), Adam, AdamW or AdaGrad (Tai et al.), as the recipe says.

    ``parameters`` is an iterable of parameters or a list of parameter groups
    (dicts with ``params`` and optionally ``lr_scale``). The multi-tensor
    (``foreach``) implementations are used: on a CPU they are a little faster.
    """
    items = list(parameters)
    if items and isinstance(items[0], dict):
        params: list[Any] = [
            {**group, "params": [p for p in group["params"] if p.requires_grad], "lr_scale": group.get("lr_scale", 1.0)}
            for group in items
        ]
        for group in params:
            group["lr"] = config.lr * group["lr_scale"]
    else:
        params = [p for p in items if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, foreach=True)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def learning_rate(config: TrainingConfig, epoch: int) -> float:
    """Ma & Hovy's decay: ``lr_t = lr_0 / (1 + decay * t)`` for epoch ``t`` counted from 0."""
    return config.lr / (1.0 + config.lr_decay * epoch)
