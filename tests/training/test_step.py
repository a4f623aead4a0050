"""The training step against a straightforward reference: Trainer.train_epoch (multi-tensor SGD
with momentum, multi-tensor gradient clipping, the weight average) computes bit for bit what a
loop written out tensor by tensor computes. A faster step (fused kernels, a lazy update of the
word table, ...) must keep these tests passing, or say which float-level difference it makes."""

from __future__ import annotations

import copy

import torch

from seqtag.registry import recipe_from_dict
from seqtag.tasks.tagging.task import TaggingTask
from seqtag.training import trainer as trainer_module
from seqtag.training.optim import make_optimizer


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) and x.dtype == y.dtype for x, y in zip(a, b, strict=True))


def test_weight_average_update_is_a_lerp_per_tensor() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(7, 3), torch.nn.Linear(3, 17))  # odd sizes: vectorised loops' tails
    average = trainer_module.WeightAverage(model, 0.99)
    reference = [p.detach().clone() for p in model.parameters()]
    for step in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(step)))
        average.update()
        for r, p in zip(reference, model.parameters(), strict=True):
            r.lerp_(p.detach(), 1.0 - 0.99)
        assert _same(average.average, reference)


def _tiny_task(tiny_recipe: dict):  # type: ignore[no-untyped-def]
    recipe = copy.deepcopy(tiny_recipe)
    recipe["training"].update({"momentum": 0.9, "clip_grad_norm": 1.0, "average_decay": 0.9, "lr": 0.1})
    parsed = recipe_from_dict(recipe)
    torch.manual_seed(parsed.seed)
    task, splits = TaggingTask.from_recipe(parsed)
    return task, splits, parsed


def test_training_steps_match_a_plain_reference_loop(tiny_recipe: dict, tmp_path) -> None:
    """Trainer.train_epoch against a loop written out with a per-tensor clip_grad_norm_, a
    per-tensor momentum update and a per-tensor weight average: the same losses, weights and
    averages, bit for bit (clipping is active: the summed loss of 8 sentences has a norm above 1)."""
    task, splits, recipe = _tiny_task(tiny_recipe)
    config = recipe.training
    losses: list[torch.Tensor] = []
    loss = task.loss
    task.loss = lambda batch, reduction="sum": losses.append(loss(batch, reduction)) or losses[-1]  # type: ignore[method-assign]
    trainer = trainer_module.Trainer(task, config, tmp_path, recipe.seed)
    generator = trainer_module.seed_everything(recipe.seed)
    optimizer = make_optimizer(task.parameter_groups(), config)
    average = trainer_module.WeightAverage(task.model, config.average_decay)
    trainer.train_epoch(splits["train"], trainer_module._Progress(), optimizer, generator, average)
    assert len(losses) > 10

    reference, reference_splits, _ = _tiny_task(tiny_recipe)
    generator = trainer_module.seed_everything(recipe.seed)
    parameters = [p for p in reference.model.parameters() if p.requires_grad]
    buffers: list[torch.Tensor | None] = [None] * len(parameters)
    averaged = [p.detach().clone() for p in parameters]
    expected: list[torch.Tensor] = []
    norms: list[float] = []
    reference.model.train()
    for batch in reference.batches(reference_splits["train"], config.batch_size, shuffle=True, generator=generator):
        for p in parameters:
            p.grad = None
        value = reference.loss(batch, config.loss_reduction)
        expected.append(value)
        value.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(parameters, config.clip_grad_norm, foreach=False)))
        with torch.no_grad():
            for i, p in enumerate(parameters):
                if p.grad is None:
                    continue
                buffer = buffers[i]
                buffers[i] = p.grad.clone() if buffer is None else buffer.mul_(config.momentum).add_(p.grad)
                p.add_(buffers[i], alpha=-config.lr)
            for a, p in zip(averaged, parameters, strict=True):
                a.lerp_(p, 1.0 - config.average_decay)
    assert sum(norm > config.clip_grad_norm for norm in norms) > len(norms) / 2  # the clipping path is exercised
    assert torch.equal(torch.stack([v.detach() for v in losses]), torch.stack([v.detach() for v in expected]))
    assert _same([p.detach() for p in task.model.parameters() if p.requires_grad], [p.detach() for p in parameters])
    assert _same(average.average, averaged)
