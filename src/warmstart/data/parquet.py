"""The ``parquet:PATH`` source: a Parquet table of numeric and categorical columns (``pyarrow``, extra ``tables``).

Typed columns keep their type: numbers and booleans are numeric (nulls missing), strings, dictionaries and
everything else are read as strings (categories). Options, targets, typing and the split are those of
``csv:`` (``folder_csv.load_table``).
"""
from __future__ import annotations

from pathlib import Path


from warmstart.data.bundle import DataBundle
from warmstart.data.folder_csv import TABLE_OPTIONS, load_table, split_options
from warmstart.errors import UserError


def _require_pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("parquet: needs pyarrow; pip install 'warmstart[tables]'") from None
    return pq


def _cells(column) -> list:
    import pyarrow as pa

    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False).tolist()  # nulls become NaN
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
    return [None if v is None else str(v) for v in column.to_pylist()]


def load_parquet(path: str, data_dir: str | None) -> DataBundle:
    """Feature and target columns of a Parquet file (``?target=``, ``?categorical=``, ... as for ``csv:``)."""
    name = f"parquet:{path}"
    file, options = split_options(name, path, TABLE_OPTIONS)
    pq = _require_pyarrow()
    import pyarrow as pa

    if not Path(file).is_file():
        raise UserError(f"{name}: file not found; check the path")
    try:
        table = pq.read_table(file)
    except (pa.ArrowException, OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{name}: cannot read ({reason}); the file is truncated or not Parquet, write it "
                        "again") from None
    header = [str(c) for c in table.column_names]
    if len(header) < 2 or table.num_rows < 2:
        raise UserError(f"{name}: need at least one feature column, a target column and 2 rows")
    return load_table(name, file, header, [_cells(table.column(c)) for c in range(len(header))], options,
                      where=lambda row: f"row {row + 1}")


__all__ = ["load_parquet"]
