"""Data: sources (name or ``kind:PATH`` → ``DataBundle``) and label budgets."""
from warmstart.data.bundle import DataBundle
from warmstart.data.idx import read_idx, write_idx
from warmstart.data.sources import SOURCES, Source, describe_sources, fixed_split, load_data
from warmstart.data.splits import LabelBudget

__all__ = [
    "DataBundle",
    "LabelBudget",
    "SOURCES",
    "Source",
    "describe_sources",
    "fixed_split",
    "load_data",
    "read_idx",
    "write_idx",
]
