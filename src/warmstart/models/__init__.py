"""Encoders (registry ``ENCODERS``) and heads."""
from warmstart.models.encoders import ENCODERS, Encoder
from warmstart.models.heads import Classifier, Decoder, Regressor
from warmstart.models import text as _text  # noqa: E402,F401  registers transformer, gpt
from warmstart.models import embedding as _embedding  # noqa: E402,F401  registers embedding

__all__ = ["ENCODERS", "Encoder", "Classifier", "Decoder", "Regressor"]
from warmstart.models import tabular as _tabular  # noqa: E402,F401  registers tabular
