"""Reading and writing a project's table, and splitting it into model inputs and labels.

CSV is read with pandas' default type inference only: a stray string in a numeric column stays
visible (as an ``object`` column) so the schema gate can report it as a failure case instead of
the loader crashing or silently turning it into NaN. Validation does the coercion.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath
from typing import BinaryIO, Literal

import pandas as pd
import pyarrow as pa

from ml_platform.config import ProjectConfig
from ml_platform.errors import ConfigError, ValidationFailed

FileFormat = Literal["csv", "parquet"]


def file_format(path: str) -> FileFormat:
    """The table format named by ``path``'s extension."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".parquet":
        return "parquet"
    raise ConfigError(f"unsupported data file extension '{suffix}'; use .csv or .parquet", source=path)


def load_frame(raw: bytes | BinaryIO, path: str) -> pd.DataFrame:
    """Parse ``raw`` (bytes or a binary stream) as the CSV or Parquet file named by ``path``."""
    fmt = file_format(path)
    source: BinaryIO = io.BytesIO(raw) if isinstance(raw, bytes | bytearray) else raw
    try:
        if fmt == "csv":
            return pd.read_csv(source)
        return pd.read_parquet(source)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValidationFailed(f"{path}: cannot parse as CSV: {e}; fix the file and commit again") from e
    except (pa.ArrowException, OSError) as e:
        raise ValidationFailed(f"{path}: cannot read as Parquet: {e}; fix the file and commit again") from e


def to_bytes(df: pd.DataFrame, path: str) -> bytes:
    """Serialise ``df`` in the format named by ``path`` (no index column)."""
    if file_format(path) == "csv":
        return df.to_csv(index=False).encode("utf-8")
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def split_features_target(df: pd.DataFrame, cfg: ProjectConfig) -> tuple[pd.DataFrame, pd.Series]:
    """Model inputs (``cfg.training_features``, in config order) and 0/1 labels (1 = positive)."""
    needed = [*cfg.training_features, cfg.target]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValidationFailed(
            f"project '{cfg.name}': columns {missing} are missing from the data "
            f"(have {list(df.columns)}); run the schema gate to see every problem"
        )
    y = (df[cfg.target] == cfg.positive_label).astype("int8").rename(cfg.target)
    return df[cfg.training_features], y
