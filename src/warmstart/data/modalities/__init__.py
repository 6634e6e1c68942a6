"""Modalities (registry ``MODALITIES``): image, table, text, interactions. One file and one registration line each."""
from warmstart.data.modalities.base import MODALITIES, Modality
from warmstart.data.modalities import image as _image, table as _table, text as _text  # noqa: F401 (registers)
from warmstart.data.modalities import interactions as _interactions  # noqa: F401,E402 (registers)

__all__ = ["MODALITIES", "Modality"]
