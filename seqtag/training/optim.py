"""Optimisers and learning-rate schedules named in recipes."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from seqtag.recipe import TrainingConfig


def make_optimizer(parameters: Iterable[torch.nn.Parameter], config: TrainingConfig) -> torch.optim.Optimizer:
    """SGD with momentum (Ma & Hovy), Adam or AdamW, as the recipe says."""
    params = [p for p in parameters if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def learning_rate(config: TrainingConfig, epoch: int) -> float:
    """Ma & Hovy's decay: ``lr_t = lr_0 / (1 + decay * t)`` for epoch ``t`` counted from 0."""
    return config.lr / (1.0 + config.lr_decay * epoch)
