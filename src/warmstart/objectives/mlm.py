"""Masked language modelling (Devlin et al., 2019, "BERT", §3.1): predict 15% of tokens from their context."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from warmstart.data.text import special_ids
from warmstart.objectives.base import Objective


def mask_tokens(
    ids: torch.Tensor, special: torch.Tensor, mask_id: int, vocab_size: int, probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption: choose ``probability`` of the non-special tokens; of those, 80% become
    ``mask_id``, 10% a random token, 10% stay. Returns ``(inputs, labels)``, both ``(B, L)``; labels
    are -100 (ignored) except at chosen positions, where they hold the original token.
    """
    chosen = (torch.rand(ids.shape, generator=generator) < probability) & ~torch.isin(ids, special)
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    draw = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[chosen & (draw < 0.8)] = mask_id
    swap = chosen & (draw >= 0.8) & (draw < 0.9)
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator)
    # A random replacement must be an ordinary token: specials (padding above all) would change the mask.
    random_ids = torch.where(torch.isin(random_ids, special), torch.full_like(ids, mask_id), random_ids)
    inputs[swap] = random_ids[swap]
    return inputs, labels


class LMHead(nn.Module):
    """BERT's prediction head: dense → GELU → LayerNorm → vocabulary logits, ``(N, H) -> (N, V)``."""

    def __init__(self, hidden: int, vocab_size: int) -> None:
        super().__init__()
        self.transform = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden))
        self.decoder = nn.Linear(hidden, vocab_size)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(states))


class MaskedLM(Objective):
    """Cross-entropy of the original tokens at the masked positions.

    Args:
        encoder: a bidirectional text encoder (``transformer`` or ``hf:PATH`` with a [MASK] token).
        probability: fraction of tokens chosen for prediction (BERT: 0.15).

    >>> # objective = MaskedLM(build_text_encoder("transformer", {}, corpus=texts)); objective.loss(ids)
    """

    not_private = ("its loss averages over the batch's masked tokens, so one document's gradient is scaled by the "
                   "others' lengths")

    modalities = ("text",)

    def __init__(self, encoder, probability: float = 0.15) -> None:
        super().__init__(encoder)
        if not 0 < probability < 1:
            raise ValueError(f"probability must lie in (0, 1), got {probability}")
        if getattr(encoder, "causal", False):
            raise ValueError("mlm needs a bidirectional encoder (transformer or hf:PATH of a BERT); "
                             "for gpt use --objective clm")
        tok = encoder.tokenizer
        self.mask_id = tok.token_to_id("[MASK]")
        if self.mask_id is None:
            raise ValueError("the tokenizer has no [MASK] token; use --objective clm or simcse")
        self.vocab_size = tok.get_vocab_size()
        self.register_buffer("special", torch.tensor(special_ids(tok)), persistent=False)
        self.probability = probability
        self.head = LMHead(encoder.feature_dim, self.vocab_size)

    def loss(self, ids: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs, labels = mask_tokens(ids, self.special, self.mask_id, self.vocab_size, self.probability)
        states = self.encoder.hidden(inputs)  # (B, L, H)
        chosen = labels != -100
        logits = self.head(states[chosen])  # only the chosen positions: the vocabulary projection is costly
        if logits.numel() == 0:  # a batch of very short texts may draw no position at all
            return states.sum() * 0.0, {"mlm_accuracy": torch.tensor(0.0)}
        loss = F.cross_entropy(logits, labels[chosen])
        return loss, {"mlm_accuracy": (logits.detach().argmax(1) == labels[chosen]).float().mean()}
