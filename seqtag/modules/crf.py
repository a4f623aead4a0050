"""Linear-chain conditional random field.

Log-likelihood by the forward algorithm, Viterbi and k-best Viterbi decoding
and tag marginals by forward-backward, all batched:
the only Python loop runs over time steps, never over sentences. A tag
scheme's constraints (no ``O -> I-X`` in IOB2, ...) are applied as a large
negative score on the forbidden start, transition and end scores, in
training as well as in decoding, so the model never spends probability mass
on sequences that cannot be decoded into spans.

Shapes: ``B`` batch, ``T`` time steps, ``K`` tags. ``mask`` is ``(B, T)``
bool, ``True`` on real tokens, left-aligned, and every sentence has at least
one token.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

# Score added to forbidden transitions. Finite on purpose: with -inf, a
# logsumexp over only forbidden paths is -inf and its gradient NaN.
FORBIDDEN = -1.0e4


def _penalty(allowed: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
    if allowed is None:
        return torch.zeros(shape)
    if tuple(allowed.shape) != shape:
        raise ValueError(f"constraint has shape {tuple(allowed.shape)}, expected {shape}")
    if allowed.is_meta:  # a model being rebuilt from a file: shapes only, the values come from the file
        return torch.zeros(shape)
    return torch.where(allowed.bool(), 0.0, FORBIDDEN)


def _check_inputs(num_tags: int, emissions: torch.Tensor, mask: torch.Tensor, tags: torch.Tensor | None = None) -> None:
    """Raise ValueError unless ``emissions`` is ``(B, T, K)``, ``mask`` (and ``tags``) ``(B, T)``
    and every sentence has a first token."""
    if emissions.dim() != 3 or emissions.size(2) != num_tags:
        raise ValueError(f"emissions must be (batch, time, {num_tags}), got {tuple(emissions.shape)}")
    if mask.shape != emissions.shape[:2]:
        raise ValueError(f"mask must be {tuple(emissions.shape[:2])}, got {tuple(mask.shape)}")
    if tags is not None and tags.shape != emissions.shape[:2]:
        raise ValueError(f"tags must be {tuple(emissions.shape[:2])}, got {tuple(tags.shape)}")
    if emissions.size(1) == 0 or not bool(mask[:, 0].all()):
        raise ValueError("every sequence needs at least one token: mask[:, 0] must be all True")


def _alphas(emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, transitions: torch.Tensor) -> torch.Tensor:
    """Forward variables ``(B, T, K)``: at each real position ``t``, the log-sum of
    the scores of all prefixes ending in tag ``k`` at ``t``, emission at ``t``
    included; zero at padded positions.

    Each step is a matrix product in probability space, ``exp(alpha - max) @
    exp(transitions - max)``, rescaled by the maxima: the same sums as a
    logsumexp over ``(B, K, K)``, in half the operations. Forbidden
    transitions become exact zeros.
    """
    shift = transitions.max()
    exp_transitions = (transitions - shift).exp()  # (K_from, K_to), entries in [0, 1]
    shifted = emissions + shift  # (B, T, K)
    alpha = start + emissions[:, 0]  # (B, K)
    alphas = [alpha]
    for t in range(1, emissions.size(1)):
        top = alpha.amax(1, keepdim=True)  # (B, 1)
        alpha = torch.mm((alpha - top).exp_(), exp_transitions).log_().add_(top).add_(shifted[:, t])
        alphas.append(alpha)
    # The recursion runs on through each sentence's padding; clear what it left there.
    return torch.stack(alphas, dim=1).masked_fill_(~mask.unsqueeze(2), 0.0)


def _betas(emissions: torch.Tensor, mask: torch.Tensor, transitions: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Backward variables ``(B, T, K)``: at ``t``, the log-sum of the scores of all
    suffixes after tag ``k`` at ``t``, end score included. Where ``t + 1`` is
    padding, ``t`` is the sentence's last token (or padding itself), so the
    suffix is just the end score. Computed in probability space like :func:`_alphas`."""
    shift = transitions.max()
    exp_transitions_t = (transitions - shift).exp().t()  # (K_to, K_from)
    ends = end.expand(emissions.size(0), -1)  # (B, K)
    beta = ends
    betas = [beta]
    for t in range(emissions.size(1) - 2, -1, -1):
        after = emissions[:, t + 1] + beta  # (B, K_to)
        top = after.amax(1, keepdim=True)  # (B, 1)
        step = torch.mm((after - top).exp_(), exp_transitions_t).log_().add_(top + shift)  # (B, K_from)
        beta = torch.where(mask[:, t + 1].unsqueeze(1), step, ends)
        betas.append(beta)
    betas.reverse()
    return torch.stack(betas, dim=1)


def crf_marginals(
    emissions: torch.Tensor,
    mask: torch.Tensor,
    start: torch.Tensor,
    transitions: torch.Tensor,
    end: torch.Tensor,
) -> torch.Tensor:
    """Posterior tag marginals ``p(y_t = k | x)`` by forward-backward in log space.

    Args:
        emissions: ``(B, T, K)`` emission scores.
        mask: ``(B, T)`` bool, left-aligned, ``mask[:, 0]`` all True.
        start: ``(K,)`` start scores.
        transitions: ``(K, K)`` transition scores ``[from, to]``.
        end: ``(K,)`` end scores.

    Returns:
        ``(B, T, K)`` marginals: each real position's row sums to 1, padded
        positions are all zeros.
    """
    # alpha_t + beta_t sums (in log space) to log Z at every t, so a softmax
    # over tags normalises each position.
    log_joint = _alphas(emissions, mask, start, transitions) + _betas(emissions, mask, transitions, end)  # (B, T, K)
    return torch.softmax(log_joint, dim=2) * mask.unsqueeze(2).to(emissions.dtype)


class _LogPartition(torch.autograd.Function):
    """``log Z`` ``(B,)`` by the forward algorithm, with its gradient by forward-backward.

    Autograd through the forward algorithm records about ten operations per
    time step and replays them backwards one by one. The gradient of
    ``log Z`` is known in closed form: the tag marginals for the emissions
    and the start and end scores, the pairwise marginals summed over the
    batch and time for the transitions. The backward pass computes them with
    one backward recursion and a few operations over all steps at once.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, transitions: torch.Tensor, end: torch.Tensor
    ) -> torch.Tensor:
        alphas = _alphas(emissions, mask, start, transitions)  # (B, T, K)
        last = mask.sum(1) - 1  # (B,)
        final = alphas[torch.arange(alphas.size(0), device=alphas.device), last]  # (B, K)
        log_z = torch.logsumexp(final + end, dim=1)  # (B,)
        ctx.save_for_backward(emissions, mask, transitions, end, alphas, log_z, last)
        return log_z

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, torch.Tensor, torch.Tensor, torch.Tensor]:  # type: ignore[override]
        emissions, mask, transitions, end, alphas, log_z, last = ctx.saved_tensors
        betas = _betas(emissions, mask, transitions, end)  # (B, T, K)
        padding = ~mask.unsqueeze(2)  # (B, T, 1)
        log_z = log_z.view(-1, 1, 1)
        # Tag marginals p(y_t = k), zero on padding.
        unary = torch.exp((alphas + betas - log_z).masked_fill_(padding, float("-inf")))  # (B, T, K)
        # Pairwise marginals p(y_{t-1} = i, y_t = j) for real t >= 1:
        # alpha_{t-1}(i) + transitions(i, j) + emission_t(j) + beta_t(j) - log Z.
        to = (emissions[:, 1:] + betas[:, 1:] - log_z).masked_fill_(padding[:, 1:], float("-inf"))  # (B, T-1, K_to)
        pairwise = torch.exp(alphas[:, :-1].unsqueeze(3) + transitions + to.unsqueeze(2))  # (B, T-1, K, K)
        grad_transitions = torch.einsum("btij,b->ij", pairwise, grad)
        unary = unary * grad.view(-1, 1, 1)
        # The sentence's last tag: p(y_last = k) is the end score's gradient.
        batch = torch.arange(emissions.size(0), device=emissions.device)
        grad_end = unary[batch, last].sum(0)
        return unary, None, unary[:, 0].sum(0), grad_transitions, grad_end


def crf_nbest(
    emissions: torch.Tensor,
    mask: torch.Tensor,
    start: torch.Tensor,
    transitions: torch.Tensor,
    end: torch.Tensor,
    k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` highest-scoring tag sequences per sentence (k-best Viterbi).

    Keeps the ``k`` best partial paths ending in each tag at every step.

    Args:
        emissions: ``(B, T, K)`` emission scores.
        mask: ``(B, T)`` bool, left-aligned, ``mask[:, 0]`` all True.
        start, transitions, end: ``(K,)``, ``(K, K)`` ``[from, to]`` and ``(K,)`` scores.
        k: number of paths per sentence, at least 1.

    Returns:
        ``(tags, scores)``: ``(B, k, T)`` long paths (positions past a
        sentence's end repeat its last tag) and their ``(B, k)`` scores,
        sorted in descending order; entry 0 is the Viterbi path. Entries that
        are not real alternatives get score ``-inf`` and a copy of the best
        path: surplus entries when the sentence has fewer than ``k`` paths,
        and paths scoring more than ``|FORBIDDEN| / 2`` below the best, i.e.
        paths using forbidden transitions the best path avoids.
    """
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    batch, steps, num_tags = emissions.shape
    # score[b, j, r]: score of the r-th best partial path ending in tag j, (B, K, k).
    # Only rank 0 exists at t = 0; the others are -inf placeholders.
    score = emissions.new_full((batch, num_tags, k), float("-inf"))
    score[:, :, 0] = start + emissions[:, 0]
    # Flat index (j * k + r) of every state: a padded step points back to itself.
    identity = torch.arange(num_tags * k, device=emissions.device).view(num_tags, k).expand(batch, num_tags, k)
    backpointers = []  # each (B, K_to, k): flat index (i * k + r) of the previous state
    for t in range(1, steps):
        # (B, K_from, k, 1) + (K_from, 1, K_to) -> (B, K_from * k, K_to)
        candidates = (score.unsqueeze(3) + transitions.unsqueeze(1)).flatten(1, 2)
        best, previous = candidates.topk(k, dim=1)  # (B, k, K_to)
        best, previous = best.transpose(1, 2), previous.transpose(1, 2)  # (B, K_to, k)
        active = mask[:, t].view(batch, 1, 1)
        score = torch.where(active, best + emissions[:, t].unsqueeze(2), score)
        backpointers.append(torch.where(active, previous, identity))
    final, state = (score + end.unsqueeze(1)).flatten(1).topk(k, dim=1)  # (B, k), flat j * k + r
    tags = _backtrace(state, backpointers, k)  # (B, k, T)
    # Drop placeholders and forbidden alternatives (entry 0 is always kept).
    invalid = final < final[:, :1] + FORBIDDEN / 2  # (B, k)
    tags = torch.where(invalid.unsqueeze(2), tags[:, :1], tags)
    return tags, final.masked_fill(invalid, float("-inf"))


def _backtrace(state: torch.Tensor, backpointers: list[torch.Tensor], k: int) -> torch.Tensor:
    """Follow ``backpointers`` (each ``(B, K, k)``) back from the final flat
    states ``state`` (``(B, k)``, ``tag * k + rank``); returns ``(B, k, T)`` tags."""
    path = [state // k]
    for pointers in reversed(backpointers):
        state = pointers.flatten(1).gather(1, state)  # (B, k)
        path.append(state // k)
    path.reverse()
    return torch.stack(path, dim=2)


class ConstrainedCRF(nn.Module):
    """What both CRF implementations share: the constraint penalties, marginals and n-best.

    Args:
        num_tags: number of tags ``K``.
        constraints: optional boolean ``(start (K,), transitions (K, K), end (K,))``
            from :func:`seqtag.data.schemes.allowed_transitions`; ``False``
            entries are forbidden.
    """

    def __init__(self, num_tags: int, constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be positive, got {num_tags}")
        self.num_tags = num_tags
        start, transitions, end = constraints if constraints is not None else (None, None, None)
        self.register_buffer("start_penalty", _penalty(start, (num_tags,)))
        self.register_buffer("transition_penalty", _penalty(transitions, (num_tags, num_tags)))
        self.register_buffer("end_penalty", _penalty(end, (num_tags,)))

    def raw_scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Learned ``(start (K,), transitions (K, K), end (K,))`` scores."""
        raise NotImplementedError

    def scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Constrained ``(start (K,), transitions (K, K), end (K,))`` scores."""
        start, transitions, end = self.raw_scores()
        return start + self.start_penalty, transitions + self.transition_penalty, end + self.end_penalty

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Posterior tag marginals ``p(y_t = k | x)``: ``(B, T, K)``, zeros on padding."""
        _check_inputs(self.num_tags, emissions, mask)
        return crf_marginals(emissions, mask, *self.scores())

    def nbest(self, emissions: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` best paths ``(B, k, T)`` and their scores ``(B, k)``; see :func:`crf_nbest`."""
        _check_inputs(self.num_tags, emissions, mask)
        return crf_nbest(emissions, mask, *self.scores(), k)


class CRF(ConstrainedCRF):
    """A linear-chain CRF over ``num_tags`` tags (arguments as :class:`ConstrainedCRF`)."""

    def __init__(self, num_tags: int, constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> None:
        super().__init__(num_tags, constraints)
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))  # [from, to]
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for parameter in (self.start_transitions, self.transitions, self.end_transitions):
            nn.init.uniform_(parameter, -0.1, 0.1)

    def raw_scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.start_transitions, self.transitions, self.end_transitions

    def _check(self, emissions: torch.Tensor, mask: torch.Tensor, tags: torch.Tensor | None = None) -> None:
        _check_inputs(self.num_tags, emissions, mask, tags)

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``log Z`` per sentence by the forward algorithm: ``(B,)``."""
        return _LogPartition.apply(emissions, mask, *self.scores())

    def sequence_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unnormalised score of ``tags`` (``(B, T)`` long) per sentence: ``(B,)``."""
        start, transitions, end = self.scores()
        maskf = mask.to(emissions.dtype)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        score = start[tags[:, 0]] + (emitted * maskf).sum(1)
        if tags.size(1) > 1:
            score = score + (transitions[tags[:, :-1], tags[:, 1:]] * maskf[:, 1:]).sum(1)
        last = mask.long().sum(1) - 1  # (B,)
        return score + end[tags.gather(1, last.unsqueeze(1)).squeeze(1)]

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``log p(tags | emissions)`` per sentence: ``(B,)``."""
        self._check(emissions, mask, tags)
        return self.sequence_score(emissions, tags, mask) - self.log_partition(emissions, mask)

    def forward(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood per sentence: ``(B,)``."""
        return -self.log_likelihood(emissions, tags, mask)

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Viterbi decoding.

        Returns ``(tags, scores)``: the best tag sequence per sentence as a
        ``(B, T)`` long tensor (positions past a sentence's end repeat its
        last tag) and its score ``(B,)``.
        """
        self._check(emissions, mask)
        start, transitions, end = self.scores()
        batch, steps, num_tags = emissions.shape
        identity = torch.arange(num_tags, device=emissions.device).expand(batch, num_tags)
        score = start + emissions[:, 0]  # (B, K)
        backpointers = []
        for t in range(1, steps):
            best, previous = (score.unsqueeze(2) + transitions).max(dim=1)  # (B, K_to)
            active = mask[:, t].unsqueeze(1)
            score = torch.where(active, best + emissions[:, t], score)
            backpointers.append(torch.where(active, previous, identity))
        best_score, last = (score + end).max(dim=1)  # (B,)
        path = [last]
        for pointers in reversed(backpointers):
            last = pointers.gather(1, last.unsqueeze(1)).squeeze(1)
            path.append(last)
        path.reverse()
        return torch.stack(path, dim=1), best_score
