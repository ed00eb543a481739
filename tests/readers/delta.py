#!/usr/bin/env python3
"""Prints every row of a Delta table as JSON lines, read by a reader independent of Sluice.

Usage: delta.py TABLE_FOLDER [deltalake|duckdb]

- deltalake: PyPI `deltalake` (delta-rs's Python reader) reads the table's newest version.
- duckdb: DuckDB runs `SELECT *` over the same version as an Arrow dataset (its own engine,
  scanning the Parquet files the log lists).

Timestamps print as ISO 8601 text; a folder that is not a Delta table prints nothing and
exits 3.
"""
import datetime
import decimal
import json
import os
import sys

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError


def plain(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot print {type(value)}")


def main():
    folder = sys.argv[1]
    via = sys.argv[2] if len(sys.argv) > 2 else "deltalake"
    try:
        table = DeltaTable(folder)
    except TableNotFoundError:
        os._exit(3)
    if via == "deltalake":
        rows = table.to_pyarrow_table().to_pylist()
    elif via == "duckdb":
        import duckdb

        dataset = table.to_pyarrow_dataset()
        con = duckdb.connect()
        con.register("delta_table", dataset)
        result = con.execute("SELECT * FROM delta_table")
        names = [d[0] for d in result.description]
        rows = [dict(zip(names, r)) for r in result.fetchall()]
    else:
        sys.exit(f"unknown reader {via}")
    for row in rows:
        print(json.dumps(row, default=plain))


if __name__ == "__main__":
    main()
    # pyarrow's and delta-rs's threads sometimes abort the interpreter's teardown ("terminate
    # called without an active exception", about one exit in seven here): the output is
    # complete by now, so leave without the teardown.
    sys.stdout.flush()
    os._exit(0)
