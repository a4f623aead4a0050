"""Optimisers built from recipes: parameter groups with their own rates and plain-SGD groups."""

from __future__ import annotations

import pytest
import torch

from seqtag.config import TrainingConfig
from seqtag.training.optim import make_optimizer


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adagrad"])
def test_plain_sgd_group_beside_every_optimizer(name: str) -> None:
    """A ``plain_sgd`` group moves by exactly ``-lr * (grad + wd * p)``; the other group by the
    optimiser's own rule, exactly as without the plain group."""
    torch.manual_seed(0)
    net, table = torch.nn.Parameter(torch.randn(4)), torch.nn.Parameter(torch.randn(3, 2))
    twin = torch.nn.Parameter(net.detach().clone())
    config = TrainingConfig(optimizer=name, lr=0.05, weight_decay=0.01)
    optimizer = make_optimizer(
        [{"params": [net]}, {"params": [table], "lr_scale": 4.0, "weight_decay": 0.5, "plain_sgd": True}], config)
    alone = make_optimizer([{"params": [twin]}], config)
    assert [group["lr"] for group in optimizer.param_groups] == [0.05, 0.2]
    for step in range(3):
        before = table.detach().clone()
        for opt in (optimizer, alone):
            opt.zero_grad()
        ((net ** 2).sum() * (step + 1) + (table * torch.arange(6.0).view(3, 2)).sum()).backward()
        ((twin ** 2).sum() * (step + 1)).backward()
        expected = before - 0.2 * (torch.arange(6.0).view(3, 2) + 0.5 * before)
        optimizer.step()
        alone.step()
        assert torch.allclose(table, expected, atol=1e-6)
        assert torch.allclose(net, twin, atol=1e-7)
    state = optimizer.state_dict()  # checkpoints save and restore it like any optimiser's
    optimizer.load_state_dict(state)
    assert optimizer.param_groups[1]["plain_sgd"] is True


def test_without_plain_groups_the_optimizer_is_torchs_own() -> None:
    parameter = torch.nn.Parameter(torch.zeros(2))
    optimizer = make_optimizer([{"params": [parameter], "lr_scale": 0.5}], TrainingConfig(optimizer="adagrad", lr=0.1))
    assert type(optimizer) is torch.optim.Adagrad and optimizer.param_groups[0]["lr"] == 0.05
