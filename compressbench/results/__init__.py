"""Results rows: the column schema (a public interface) and atomic CSV writers/readers."""
from compressbench.results.table import (
    COLUMNS,
    EXTRA_COLUMNS,
    csv_bytes,
    csv_text,
    ordered_columns,
    read_csv,
    write_csv,
    write_results,
)

__all__ = ["COLUMNS", "EXTRA_COLUMNS", "csv_bytes", "csv_text", "ordered_columns", "read_csv", "write_csv",
           "write_results"]
