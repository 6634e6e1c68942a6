"""``build_encoder``: a registered encoder for data of one modality, remembering how it was built (``spec``)."""
from __future__ import annotations

from typing import Any

import numpy as np

from warmstart.errors import UserError
from warmstart.models.encoders import ENCODERS, Encoder
from warmstart.models.text import build_text_encoder, is_text_encoder


def encoders_for(modality: str) -> list[str]:
    """Names of the encoders that read ``modality`` data (``hf:DIR`` stands for any Hugging Face model)."""
    names = [n for n in ENCODERS if modality in ENCODERS.get(n).modalities]
    return names + (["hf:DIR"] if modality == "text" else [])


def build_encoder(
    name: str, input_shape: tuple[int, ...], options: dict[str, Any], modality: str = "image", *,
    tokenizer: Any = None, corpus: np.ndarray | None = None, weights: bool = True, schema: Any = None,
) -> Encoder:
    """Build encoder ``name`` for ``modality`` inputs of ``input_shape``; ``encoder.spec`` (name, options, shape,
    modality and, for text, the tokenizer) is what a checkpoint needs to rebuild it.

    Text encoders take a ``tokenizer`` (from a checkpoint spec) or train one on ``corpus`` (the modality's
    ``corpus(bundle)``, from which other encoders take their ``data_args``); ``weights=False``
    initialises an ``hf:PATH`` model at random (the scratch baseline of that architecture). Table encoders
    take the data's column ``schema`` (a ``TableSchema`` or its ``spec()``; None: ``input_shape[0]`` numeric
    columns passed through, without marginals); it becomes ``encoder.schema`` and part of the spec.
    """
    readable = ENCODERS.get(name).modalities if name in ENCODERS else ("text",) if is_text_encoder(name) else None
    if readable is None:
        ENCODERS.get(name)  # the unknown-name error, with the closest match
    if modality not in readable:
        raise UserError(f"encoder '{name}' reads {' or '.join(readable)} data but the data is {modality}; "
                        f"use --encoder {' / '.join(encoders_for(modality))}")
    table = _table_schema(schema, input_shape) if modality == "table" else None
    if is_text_encoder(name):
        encoder = build_text_encoder(name, options, tokenizer, corpus, weights)
    elif table is not None:
        encoder = ENCODERS.build(name, (table.width,), **options, **_schema_option(name, table))
        encoder.spec = {"encoder": name, "encoder_args": dict(options), "input_shape": [table.width],
                        "schema": table.spec()}
        encoder.schema = table
    else:
        if corpus is not None:
            options = {**ENCODERS.get(name).data_args(corpus), **options}
        encoder = ENCODERS.build(name, tuple(input_shape), **options)
        encoder.spec = {"encoder": name, "encoder_args": dict(options), "input_shape": list(input_shape)}
    encoder.modality = modality
    encoder.spec["modality"] = modality
    return encoder


def _table_schema(schema: Any, input_shape: tuple[int, ...]):
    from warmstart.data.modalities.table_schema import TableSchema

    if schema is None:
        return TableSchema.passthrough(int(input_shape[0]))
    table = schema if isinstance(schema, TableSchema) else TableSchema.from_spec(schema)
    if tuple(input_shape) != (table.width,):
        raise UserError(f"the table schema encodes rows as {table.width} inputs, not {tuple(input_shape)}; "
                        "build the encoder from the bundle's input_shape")
    return table


def _schema_option(name: str, schema) -> dict[str, Any]:
    """Encoders that read columns (``tabular``) take the schema as a constructor argument."""
    import inspect

    accepts = "schema" in inspect.signature(ENCODERS.get(name)).parameters
    return {"schema": schema} if accepts else {}


def check_input_shape(shape: Any, data, made_for: str, fix: str) -> None:
    """One line, naming ``fix``, when what was ``made_for`` inputs of ``shape`` meets ``data`` of another."""
    if tuple(shape) != data.input_shape:
        raise UserError(f"{made_for} inputs of shape {tuple(shape)} but {data.name} has {data.input_shape}; {fix}")
