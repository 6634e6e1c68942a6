"""Encoders (registry ``ENCODERS``) and heads."""
from warmstart.models.encoders import ENCODERS, Encoder
from warmstart.models.heads import Classifier, Decoder

__all__ = ["ENCODERS", "Encoder", "Classifier", "Decoder"]
