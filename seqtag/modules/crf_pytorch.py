"""The CRF interface of seqtag.modules.crf backed by the pytorch-crf package (``crf.backend: pytorch-crf``).

pytorch-crf is the reference the tests check our CRF against; as a backend it
is slower (its Viterbi backtrace loops over sentences in Python).
"""

from __future__ import annotations

import torch
from torch import nn
from torchcrf import CRF as _TorchCRF

from seqtag.modules.crf import ConstrainedCRF


class PytorchCRF(ConstrainedCRF):
    """The same interface backed by the pytorch-crf package (``crf.backend: pytorch-crf``).

    Scheme constraints are applied by passing the penalised scores to
    pytorch-crf's own computations through ``torch.func.functional_call``.
    """

    def __init__(self, num_tags: int, constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> None:
        super().__init__(num_tags, constraints)
        self.crf = _TorchCRF(num_tags, batch_first=True)

    def raw_scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.crf.start_transitions, self.crf.transitions, self.crf.end_transitions

    def _params(self) -> dict[str, torch.Tensor]:
        """Constrained scores under pytorch-crf's parameter names."""
        return dict(zip(("start_transitions", "transitions", "end_transitions"), self.scores(), strict=True))

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``log p(tags | emissions)`` per sentence: ``(B,)``."""
        return torch.func.functional_call(self.crf, self._params(), (emissions, tags, mask), {"reduction": "none"})

    def forward(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return -self.log_likelihood(emissions, tags, mask)

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Viterbi paths as a padded ``(B, T)`` tensor, and their scores ``(B,)``."""
        params = {f"crf.{name}": value for name, value in self._params().items()}
        paths = torch.func.functional_call(_Decoder(self.crf), params, (emissions, mask))
        tags = torch.zeros(emissions.shape[:2], dtype=torch.long, device=emissions.device)
        for row, path in enumerate(paths):
            tags[row, : len(path)] = torch.tensor(path)
            tags[row, len(path) :] = path[-1]
        scores = torch.func.functional_call(self.crf, self._params(), (emissions, tags, mask), {"reduction": "none"})
        return tags, scores + self.log_partition(emissions, mask)

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``log Z`` per sentence, from pytorch-crf's normaliser: ``(B,)``."""
        params = {f"crf.{name}": value for name, value in self._params().items()}
        return torch.func.functional_call(_Normalizer(self.crf), params, (emissions, mask))


class _Decoder(nn.Module):
    """Calls pytorch-crf's ``decode`` (``functional_call`` only reaches ``forward``)."""

    def __init__(self, crf: nn.Module) -> None:
        super().__init__()
        self.crf = crf

    def forward(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        return self.crf.decode(emissions, mask)


class _Normalizer(_Decoder):
    def forward(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.crf._compute_normalizer(emissions.transpose(0, 1), mask.transpose(0, 1))
