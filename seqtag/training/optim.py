"""Optimisers and learning-rate schedules named in recipes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from seqtag.config import TrainingConfig


def make_optimizer(
    parameters: Iterable[torch.nn.Parameter] | list[dict[str, Any]], config: TrainingConfig
) -> torch.optim.Optimizer:
    """SGD with momentum (Ma & Hovy), Adam, AdamW or AdaGrad (Tai et al.), as the recipe says.

    ``parameters`` is an iterable of parameters or a list of parameter groups
    (dicts with ``params`` and optionally ``lr_scale``, and ``plain_sgd: True`` for a group
    updated by plain SGD whatever the optimiser, see :func:`with_plain_sgd_groups`). The
    multi-tensor (``foreach``) implementations are used: on a CPU they are a little faster.
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
    plain = any(isinstance(group, dict) and group.get("plain_sgd") for group in params)
    if config.optimizer == "sgd":
        cls: type[torch.optim.Optimizer] = torch.optim.SGD
        options: dict[str, Any] = {"momentum": config.momentum}
    else:
        cls = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad, "adamw": torch.optim.AdamW}[config.optimizer]
        options = {}
    if plain:
        cls = with_plain_sgd_groups(cls)
    return cls(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True, **options)


def with_plain_sgd_groups(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """A subclass of the optimiser ``cls`` whose parameter groups marked ``plain_sgd`` are updated
    by ``p -= lr * (grad + weight_decay * p)``, with no optimiser state, while ``cls``'s own rule
    updates the other groups. Tai et al. (2015) train the word vectors of their Tree-LSTM this way
    beside AdaGrad. The groups stay in ``param_groups``, so learning rates, ``zero_grad`` and
    checkpoints handle every parameter as usual."""

    class PlainSGDGroups(cls):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for group in self.param_groups:  # AdaGrad allocates state up front; these never use it
                if group.get("plain_sgd"):
                    for p in group["params"]:
                        self.state.pop(p, None)

        def step(self, closure: Any = None) -> Any:
            groups = self.param_groups
            self.param_groups = [group for group in groups if not group.get("plain_sgd")]
            try:
                loss = super().step(closure)
            finally:
                self.param_groups = groups
            with torch.no_grad():
                for group in groups:
                    if not group.get("plain_sgd"):
                        continue
                    for p in (p for p in group["params"] if p.grad is not None):
                        if group["weight_decay"]:
                            p.add_(p, alpha=-group["lr"] * group["weight_decay"])
                        p.add_(p.grad, alpha=-group["lr"])
            return loss

    PlainSGDGroups.__name__ = PlainSGDGroups.__qualname__ = f"{cls.__name__}WithPlainSGDGroups"
    return PlainSGDGroups


def learning_rate(config: TrainingConfig, epoch: int) -> float:
    """Ma & Hovy's decay: ``lr_t = lr_0 / (1 + decay * t)`` for epoch ``t`` counted from 0."""
    return config.lr / (1.0 + config.lr_decay * epoch)
