"""The ``table`` modality: rows of numeric and categorical columns, batched through the bundle's schema.

The bundle stores raw cells (``data/modalities/table_schema.py``); ``batch`` turns them into model inputs
with the schema fitted on the training split (standardised numbers, missing indicators, one-hot levels with
"missing" and "unseen" slots). A bundle made from a plain numeric array without a schema gets one that
passes the values through unchanged. ``prepare`` re-expresses a bundle in the schema of the encoder it
meets, so a model trained on one file reads another file's rows in its own training statistics.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from warmstart.data.modalities.base import MODALITIES, Modality
from warmstart.data.modalities.table_schema import TableSchema
from warmstart.errors import UserError


class TableModality(Modality):
    """Tables: the schema's encoding at batch time; no augmentation at fine-tuning time (SCARF and VIME
    corrupt columns in their objectives, from the schema's training marginals); the baselines see the same
    encoded rows (one-hot levels, standardised numbers, missing indicators)."""

    name = "table"
    description = "(D,) rows of numeric and categorical columns"

    def check(self, bundle) -> None:
        if bundle.schema is None:
            bundle.schema = TableSchema.numeric(np.asarray(bundle.x_train) * np.float32(bundle.scale))
        if len(bundle.schema.columns) != bundle.x_train.shape[1]:
            raise UserError(f"{bundle.name}: the schema has {len(bundle.schema.columns)} columns but the rows "
                            f"{bundle.x_train.shape[1]}")
        if not bundle.feature_columns:  # each model input's column, so attributions fold back to columns
            bundle.feature_columns = [c.name for c in bundle.schema.columns for _ in range(c.size)]

    def input_shape(self, bundle) -> tuple[int, ...]:
        return (bundle.schema.width,)

    def batch(self, bundle, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(bundle.schema.encode(np.asarray(rows, np.float32) * np.float32(bundle.scale)))

    def prepare(self, bundle, encoder):
        schema = getattr(encoder, "schema", None)
        if schema is None or schema is bundle.schema or not schema.has_marginals:
            return bundle  # an encoder built without data (a passthrough schema) reads any rows of its width
        # feature_columns follow the new schema's layout (the check refills them from it)
        return replace(bundle, schema=schema.adopt(bundle.schema, bundle.name), feature_columns=[])

    def flat_features(self, bundle) -> tuple[np.ndarray, np.ndarray]:
        return self.batch(bundle, bundle.x_train).numpy(), self.batch(bundle, bundle.x_test).numpy()


MODALITIES.register("table")(TableModality())
