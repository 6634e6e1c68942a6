"""Fine-tune strategies (see :mod:`warmstart.strategies.base` for the contract).

Each strategy is one class plus one registration line; importing this package registers them all.
"""
from warmstart.strategies.base import (
    AUGMENTS, STRATEGIES, FinetuneContext, Full, Linear, Scratch, Strategy, labeled_stream, layer_ids,
    pool_epochs, pool_stream,
)
from warmstart.strategies.joint import Joint, JointModule
from warmstart.strategies.selftrain import SelfTrain

__all__ = [
    "AUGMENTS", "STRATEGIES", "FinetuneContext", "Full", "Joint", "JointModule", "Linear", "Scratch", "SelfTrain",
    "Strategy", "labeled_stream", "layer_ids", "pool_epochs", "pool_stream",
]
