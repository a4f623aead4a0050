"""The LSTM variants of the literature, as layers that run like ``nn.LSTM``: bidirectional, stacked,
on padded batches with packed-sequence semantics, on any device.

Gate equations (``x`` the input, ``h`` and ``c`` the previous states, ``W`` / ``U``
the input and recurrent weights of each gate, ``p`` peephole vectors, ``*``
elementwise):

* ``lstm``:     i = s(Wi x + Ui h + bi), f = s(Wf x + Uf h + bf), g = tanh(Wg x + Ug h + bg),
  o = s(Wo x + Uo h + bo); c' = f * c + i * g; h' = o * tanh(c')  (Gers et al. 2000)
* ``peephole``: i and f also see ``p * c``, o sees ``p * c'`` (Gers & Schmidhuber 2000)
* ``coupled``:  no forget gate weights, f = 1 - i (CIFG; Greff et al. 2015)
* ``nfg``:      no forget gate, f = 1: the 1997 cell whose constant error carousel keeps c
  (Hochreiter & Schmidhuber 1997)
* ``nig``:      no input gate, i = 1;  ``nog``: no output gate, o = 1;
  ``noaf``: no output activation, h' = o * c' (Greff et al.'s ablations)

A layer keeps PyTorch's parameter names (``weight_ih_l0``, ``weight_hh_l0``,
``bias_ih_l0``, ``bias_hh_l0``, ``_reverse`` for the backward direction; ``weight_ch_l0``
for peepholes), its gate blocks in the order ``i f g o`` less the gates the variant
lacks. The input projections of all time steps are one matrix product; the loop over
time is TorchScript, so it runs without Python overhead per step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: variant -> its gate blocks, in order
GATES = {
    "lstm": "ifgo",
    "peephole": "ifgo",
    "coupled": "igo",
    "nfg": "igo",
    "nig": "fgo",
    "nog": "ifg",
    "noaf": "ifgo",
}


@torch.jit.script
def recurrence(
    projected: torch.Tensor,
    mask: torch.Tensor,
    weight_hh: torch.Tensor,
    peephole: torch.Tensor,
    gates: str,
    coupled: bool,
    output_activation: bool,
    h: torch.Tensor,
    c: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The states of one direction of one layer over time, from the state ``(h, c)`` (each ``(B, H)``).

    Args:
        projected: ``(T, B, G * H)`` input projections plus both biases, gate blocks in ``gates`` order.
        mask: ``(T, B, 1)`` True on real steps; on padding the states are carried unchanged.
        weight_hh: ``(G * H, H)`` recurrent weights.
        peephole: ``(3, H)`` peephole vectors of i, f, o, or an empty tensor without peepholes.
        gates: which of ``i f g o`` exist (in this order).
        coupled: the forget gate is ``1 - i``.
        output_activation: ``h = o * tanh(c)`` (else ``o * c``).

    Returns:
        ``(T, B, H)`` hidden states (zero on padding), and the final ``h`` and ``c`` ``(B, H)``: each
        sequence's state after its last real step.
    """
    steps = projected.size(0)
    hidden = weight_hh.size(1)
    peepholes = peephole.numel() > 0
    index_i = gates.find("i")
    index_f = gates.find("f")
    index_g = gates.find("g")
    index_o = gates.find("o")
    outputs = []
    for t in range(steps):
        z = projected[t] + torch.mm(h, weight_hh.t())  # (B, G * H)
        g = torch.tanh(z[:, index_g * hidden : (index_g + 1) * hidden])
        if index_i >= 0:
            zi = z[:, index_i * hidden : (index_i + 1) * hidden]
            if peepholes:
                zi = zi + peephole[0] * c
            i = torch.sigmoid(zi)
        else:
            i = torch.ones_like(g)
        if coupled:
            f = 1.0 - i
        elif index_f >= 0:
            zf = z[:, index_f * hidden : (index_f + 1) * hidden]
            if peepholes:
                zf = zf + peephole[1] * c
            f = torch.sigmoid(zf)
        else:
            f = torch.ones_like(g)
        c_new = f * c + i * g
        if index_o >= 0:
            zo = z[:, index_o * hidden : (index_o + 1) * hidden]
            if peepholes:
                zo = zo + peephole[2] * c_new
            o = torch.sigmoid(zo)
        else:
            o = torch.ones_like(g)
        h_new = o * torch.tanh(c_new) if output_activation else o * c_new
        keep = mask[t]
        h = torch.where(keep, h_new, h)
        c = torch.where(keep, c_new, c)
        outputs.append(h_new * keep.to(h_new.dtype))
    return torch.stack(outputs), h, c


class VariantLSTM(nn.Module):
    """A (bidirectional, stacked) layer of one LSTM variant, batch first, with packed-sequence
    semantics on padded input.

    Args:
        variant: a key of :data:`GATES`.
        input_size / hidden_size / num_layers / dropout / bidirectional: as ``nn.LSTM``'s.
    """

    def __init__(
        self, variant: str, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if variant not in GATES:
            raise ValueError(f"unknown LSTM variant {variant!r}; choose one of {', '.join(GATES)}")
        self.variant = variant
        self.gates = GATES[variant]
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.dropout, self.bidirectional, self.batch_first = dropout, bidirectional, True
        size = len(self.gates) * hidden_size
        bound = 1.0 / math.sqrt(hidden_size)  # nn.LSTM's initialisation
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * (2 if bidirectional else 1)
            for suffix in ("", "_reverse") if bidirectional else ("",):
                shapes = {"weight_ih": (size, layer_input), "weight_hh": (size, hidden_size), "bias_ih": (size,),
                          "bias_hh": (size,)}
                if variant == "peephole":
                    shapes["weight_ch"] = (3, hidden_size)
                for kind, shape in shapes.items():
                    self.register_parameter(f"{kind}_l{layer}{suffix}",
                                            nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))

    def direction(self, inputs: torch.Tensor, mask: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
        """One direction of one layer: ``(B, T, D)`` (already in reading order) -> ``(B, T, H)``."""
        weight_ih = getattr(self, f"weight_ih_l{layer}{suffix}")
        bias = getattr(self, f"bias_ih_l{layer}{suffix}") + getattr(self, f"bias_hh_l{layer}{suffix}")
        projected = nn.functional.linear(inputs, weight_ih, bias).transpose(0, 1)  # (T, B, G * H): all steps at once
        peephole = getattr(self, f"weight_ch_l{layer}{suffix}") if self.variant == "peephole" else inputs.new_empty(0)
        zeros = inputs.new_zeros(inputs.size(0), self.hidden_size)  # (B, H): every sequence starts from zero states
        states, _, _ = recurrence(projected, mask.transpose(0, 1).unsqueeze(2), getattr(self, f"weight_hh_l{layer}{suffix}"),
                                  peephole, self.gates, self.variant == "coupled", self.variant != "noaf", zeros, zeros)
        return states.transpose(0, 1)  # (B, T, H)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` padded inputs, ``(B,)`` lengths -> ``(B, T, directions * H)``, zero past each length."""
        steps = inputs.size(1)
        lengths = lengths.to(inputs.device)
        mask = torch.arange(steps, device=inputs.device).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        reverse = None
        output = inputs
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                output = nn.functional.dropout(output, self.dropout, self.training)
            forward = self.direction(output, mask, layer, "")
            if not self.bidirectional:
                output = forward
                continue
            if reverse is None:
                positions = torch.arange(steps, device=inputs.device).unsqueeze(0)
                last = (lengths - 1).unsqueeze(1)
                reverse = torch.where(positions <= last, last - positions, positions)  # (B, T)
            index = reverse.unsqueeze(2)
            flipped = output.gather(1, index.expand(-1, -1, output.size(2)))
            backward = self.direction(flipped, mask, layer, "_reverse")
            backward = backward.gather(1, index.expand(-1, -1, backward.size(2)))
            output = torch.cat([forward, backward], dim=2)
        return output
