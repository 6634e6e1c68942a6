"""The ``tabular`` encoder: one embedding per column, then an MLP (or a small attention block) over them.

It reads the table modality's encoded rows (``data/modalities/table_schema.py``) column by column:

- a numeric column → a ``d_token`` vector: a piecewise-linear encoding of the standardised value over
  ``bins`` quantile bins of the training split, then a linear map (``numeric="ple"``, Gorishniy et al.,
  NeurIPS 2022, "On Embeddings for Numerical Features in Tabular Deep Learning"), or ``value · w + b``
  (``numeric="linear"``); a missing indicator adds a learned "missing" vector;
- a categorical column → the embedding of its level: its one-hot block (slots "missing", "unseen", levels)
  times the column's embedding table. The unseen slot starts at zero, so a level the training split never
  showed contributes nothing until trained.

The column tokens are then mixed by ``mixer="mlp"`` (flattened, ``depth`` blocks of Linear → BatchNorm →
ReLU, as the ``mlp`` encoder) or ``mixer="attention"`` (FT-Transformer style, Gorishniy et al., NeurIPS
2021: a [CLS] token and ``depth`` pre-norm Transformer layers over the column tokens, the [CLS] output
projected to ``feature_dim``).
"""
from __future__ import annotations

import torch
from torch import nn

from warmstart.data.modalities.table_schema import UNSEEN_SLOT, TableSchema
from warmstart.models.encoders import ENCODERS, Encoder, _check_norm, _norm1d


def ple_edges(schema: TableSchema, numeric: list[int], bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per numeric column, ``bins`` bins between training quantiles (standardised units): lower edges and
    widths ``(n, bins)``. Repeated quantiles (a discrete column) give zero-width bins, kept as steps."""
    lows, widths = [], []
    for j in numeric:
        c = schema.columns[j]
        if not c.quantiles:
            raise ValueError(f"numeric='ple' needs the training quantiles of column '{c.name}'; build the encoder "
                             "from a table bundle (its schema), or use numeric='linear'")
        q = torch.tensor(c.quantiles, dtype=torch.float32)
        edges = (q[torch.linspace(0, len(q) - 1, bins + 1).round().long()] - c.mean) / c.std
        lows.append(edges[:-1])
        widths.append((edges[1:] - edges[:-1]).clamp_min(1e-6))
    return torch.stack(lows), torch.stack(widths)


@ENCODERS.register("tabular")
class TabularEncoder(Encoder):
    """Per-column embeddings → an MLP or attention mixer: ``(B, width) -> (B, feature_dim)``.

    Args:
        schema: the table's ``TableSchema`` (given by ``models.build.build_encoder`` from the data).
        d_token: size of each column's embedding.
        numeric: "ple" (piecewise-linear encoding over ``bins`` quantile bins) or "linear".
        mixer: "mlp" or "attention"; ``width``/``depth`` size the MLP, ``heads``/``depth`` the attention.
    """

    modalities = ("table",)

    def __init__(self, input_shape: tuple[int, ...], schema: TableSchema | None = None, d_token: int = 16,
                 numeric: str = "ple", bins: int = 16, mixer: str = "mlp", width: int = 256, depth: int = 2,
                 feature_dim: int = 128, heads: int = 4, norm: str = "batch") -> None:
        super().__init__(input_shape)
        schema = schema if schema is not None else TableSchema.passthrough(self.input_size)
        if schema.width != self.input_size:
            raise ValueError(f"the schema encodes {schema.width} inputs, not {self.input_size}")
        if numeric not in ("ple", "linear") or mixer not in ("mlp", "attention"):
            raise ValueError(f"numeric must be 'ple' or 'linear' and mixer 'mlp' or 'attention', got {numeric!r}, "
                             f"{mixer!r}")
        if min(d_token, bins, width, depth, feature_dim, heads) < 1 or d_token % heads and mixer == "attention":
            raise ValueError("d_token, bins, width, depth, feature_dim and heads must be >= 1 (d_token divisible "
                             "by heads for attention)")
        _check_norm(norm)
        self.numeric_mode, self.mixer_kind, self.feature_dim = numeric, mixer, feature_dim
        blocks = schema.blocks
        self.numeric = [j for j, c in enumerate(schema.columns) if c.kind == "numeric"]
        self.categorical = [j for j, c in enumerate(schema.columns) if c.kind == "categorical"]
        self.register_buffer("value_at", torch.tensor([blocks[j][0] for j in self.numeric], dtype=torch.long))
        flags = [(blocks[j][0] + 1 if schema.columns[j].indicator else -1) for j in self.numeric]
        self.register_buffer("indicator_at", torch.tensor(flags, dtype=torch.long))
        self.cat_blocks = [blocks[j] for j in self.categorical]
        n = len(self.numeric)
        if numeric == "ple" and n:
            low, width_ = ple_edges(schema, self.numeric, bins)
            self.register_buffer("ple_low", low)
            self.register_buffer("ple_width", width_)
            self.num_weight = nn.Parameter(torch.randn(n, bins, d_token) / bins ** 0.5)
        else:
            self.num_weight = nn.Parameter(torch.randn(n, 1, d_token))
        self.num_bias = nn.Parameter(torch.zeros(n, d_token))
        self.missing_embedding = nn.Parameter(torch.zeros(n, d_token))
        self.embeddings = nn.ParameterList()
        for start, stop in self.cat_blocks:
            table = torch.randn(stop - start, d_token)
            table[UNSEEN_SLOT] = 0.0
            self.embeddings.append(nn.Parameter(table))
        tokens = len(schema.columns)
        if mixer == "mlp":
            widths = [tokens * d_token] + [width] * (depth - 1) + [feature_dim]
            layers: list[nn.Module] = []
            for w_in, w_out in zip(widths, widths[1:]):
                layers += [nn.Linear(w_in, w_out), _norm1d(norm, w_out), nn.ReLU(inplace=True)]
            self.mix = nn.Sequential(*layers)
        else:
            self.cls = nn.Parameter(torch.zeros(1, 1, d_token))
            layer = nn.TransformerEncoderLayer(d_token, heads, 2 * d_token, dropout=0.0, batch_first=True,
                                               norm_first=True)
            self.mix = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
            self.out = nn.Sequential(nn.LayerNorm(d_token), nn.Linear(d_token, feature_dim))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, width)`` encoded rows → ``(B, columns, d_token)`` column embeddings (numeric first)."""
        parts = []
        if len(self.numeric):
            value = x[:, self.value_at]  # (B, n)
            if self.numeric_mode == "ple":
                ratio = (value.unsqueeze(-1) - self.ple_low) / self.ple_width  # (B, n, bins)
                bins = ratio.shape[-1]
                inner = ratio.clamp(0, 1)
                first, last = ratio[..., :1].clamp(max=1), ratio[..., -1:].clamp(min=0)
                encoded = torch.cat([first, inner[..., 1:-1], last], -1) if bins > 1 else ratio
            else:
                encoded = value.unsqueeze(-1)
            token = torch.einsum("bnk,nkd->bnd", encoded, self.num_weight) + self.num_bias
            has = self.indicator_at >= 0
            if has.any():
                flag = torch.zeros_like(value)
                flag[:, has] = x[:, self.indicator_at[has]]
                token = token + flag.unsqueeze(-1) * self.missing_embedding
            parts.append(token)
        for (start, stop), table in zip(self.cat_blocks, self.embeddings):
            parts.append((x[:, start:stop] @ table).unsqueeze(1))  # one-hot @ table: the level's embedding
        return torch.cat(parts, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens(x)  # (B, C, d)
        if self.mixer_kind == "mlp":
            return self.mix(tokens.flatten(1))
        h = self.mix(torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1))
        return self.out(h[:, 0])
