"""Causal language modelling (Radford et al., 2018/2019, "GPT"): predict each token from the ones before it."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from warmstart.objectives.base import Objective
from warmstart.objectives.mlm import LMHead


class CausalLM(Objective):
    """Next-token cross-entropy over every real (non-padding) position.

    Args:
        encoder: a causal text encoder (``gpt``, or ``hf:PATH`` of a decoder); a bidirectional one would
            see the token it must predict, so it is refused.
    """

    not_private = ("its loss averages over the batch's predicted tokens, so one document's gradient is scaled by the "
                   "others' lengths")

    modalities = ("text",)

    def __init__(self, encoder) -> None:
        super().__init__(encoder)
        if not getattr(encoder, "causal", False):
            raise ValueError("clm needs a causal encoder (use --encoder gpt); a bidirectional one sees the "
                             "next token. For transformer use --objective mlm")
        self.head = LMHead(encoder.feature_dim, encoder.tokenizer.get_vocab_size())

    def loss(self, ids: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        states = self.encoder.hidden(ids)[:, :-1]  # (B, L-1, H): position t predicts token t+1
        targets = ids[:, 1:].masked_fill(ids[:, 1:] == self.encoder.pad_id, -100)
        logits = self.head(states)  # (B, L-1, V)
        loss = F.cross_entropy(logits.transpose(1, 2), targets)
        real = targets != -100
        accuracy = (logits.detach().argmax(-1) == targets)[real].float().mean()
        return loss, {"perplexity": loss.detach().exp(), "next_token_accuracy": accuracy}
