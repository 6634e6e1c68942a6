"""Modalities (registry ``MODALITIES``): image, table, text. One file and one registration line each."""
from warmstart.data.modalities.base import MODALITIES, Modality
from warmstart.data.modalities import image as _image, table as _table, text as _text  # noqa: F401 (registers)

__all__ = ["MODALITIES", "Modality"]
