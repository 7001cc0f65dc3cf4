"""The data lake offline: Parquet and CSV files laid out as Firehose and the user write them, read by
DuckDB through views named as the Glue tables, so the very SQL text of infra/lake.py runs in the tests.

Layout (infra/lake.py): `<prefix>/day=<arrival day>/thing=<thing>/<file>.parquet` for the Firehose tables,
`labels/thing=<thing>/<file>.csv` (with a header) for the labels. Each view reads its table's files with
hive partitioning, the partition columns typed VARCHAR as the Glue table declares them (Athena: "How to
choose partition keys" — a projection's type only formats the S3 location, the key stays a string).

What differs from Athena, and why the queries still mean the same on both:
- Parameters. Athena substitutes each `?` ExecutionParameter into the query text as it is given, in order
  ("Use parameterized queries": positional `?`, only in WHERE clauses, strings written in single quotes),
  so infra.lake.query_parameters hands it quoted literals ('core-a'). DuckDB binds prepared-statement `?`
  values, so it takes the raw values (core-a). `run_query` binds the raw values; `run_substituted` does
  what Athena does (the literals spliced into the text) and the tests check that both give one result.
- Partitions. Athena never lists partitions: `day` is projected, `thing` injected, which requires a static
  equality on `thing` in the WHERE clause ("Use dynamic ID partitioning"), and every query has one
  (`thing = ?`). DuckDB discovers partitions from the folder names instead (hive_partitioning); with the
  types pinned to VARCHAR, a thing named 0123 stays the text '0123', as in Athena.
- Types. Athena returns every value as text (GetQueryResults VarCharValue); DuckDB returns Python values.
  `athena_text` writes a DuckDB value as Athena's text, so a result can be served to the real command.
The SQL itself stays in what both engines read alike: substr(text, 1, 13), ||, avg/max, WITH, JOIN ...
ON, ORDER BY, and comparisons of ISO-8601 UTC text.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import duckdb

from infra.lake import DAY, LABELS, PREDICTIONS, READINGS, TABLES, THING, LakeQuery, LakeTable, query_parameters

# Glue/Hive column types (infra/lake.py) as DuckDB names them.
DUCKDB_TYPES = {"string": "VARCHAR", "double": "DOUBLE", "int": "INTEGER"}


def _literal(text: str) -> str:
    """A path or name as a DuckDB string literal (COPY TO and read_parquet take no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def _column_types(table: LakeTable) -> dict[str, str]:
    return {name: DUCKDB_TYPES[kind] for name, kind in table.columns}


def _struct(types: dict[str, str]) -> str:
    return "{" + ", ".join(f"{_literal(name)}: {_literal(kind)}" for name, kind in types.items()) + "}"


class Lake:
    """A lake folder: write files where Firehose (or the user) would, then query it with DuckDB."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = 0

    def _write_parquet(self, table: LakeTable, day: str, thing: str, rows: Sequence[dict[str, Any]]) -> Path:
        folder = self.root / table.prefix / f"{DAY}={day}" / f"{THING}={thing}"
        folder.mkdir(parents=True, exist_ok=True)
        self.files += 1
        path = folder / f"part-{self.files:04d}.parquet"
        types = _column_types(table)
        with duckdb.connect() as con:
            con.execute(f"CREATE TABLE batch ({', '.join(f'{name} {kind}' for name, kind in types.items())})")
            con.executemany(f"INSERT INTO batch VALUES ({', '.join('?' for _ in types)})",
                            [[row.get(name) for name in types] for row in rows])
            con.execute(f"COPY batch TO {_literal(str(path))} (FORMAT PARQUET)")
        return path

    def readings(self, day: str, thing: str, rows: Sequence[dict[str, Any]]) -> Path:
        """One Firehose file of readings that arrived on `day`."""
        return self._write_parquet(READINGS, day, thing, rows)

    def predictions(self, day: str, thing: str, rows: Sequence[dict[str, Any]]) -> Path:
        return self._write_parquet(PREDICTIONS, day, thing, rows)

    def labels(self, thing: str, rows: Sequence[tuple]) -> Path:
        """The user's labels CSV of a station: a header, then sampled_at,rain[,reference_temperature,
        reference_pressure] per line (a file may leave the reference columns out, or cells of them blank)."""
        folder = self.root / LABELS.prefix / f"{THING}={thing}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "labels.csv"
        width = max(len(row) for row in rows)
        header = ",".join(name for name, _ in LABELS.columns[:width])
        lines = (",".join("" if value is None else str(value) for value in (*row, *[None] * (width - len(row))))
                 for row in rows)
        path.write_text("\n".join([header, *lines]) + "\n")
        return path

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A connection with one view per lake table, named as the Glue table; a table without files is
        empty, as an empty S3 prefix is to Athena."""
        con = duckdb.connect()
        for table in TABLES:
            files = sorted((self.root / table.prefix).glob("/".join(["*"] * len(table.partitions) + ["*"])))
            types = _column_types(table)
            partitions = _struct({name: "VARCHAR" for name in table.partitions})
            if not files:
                columns = ", ".join(f"CAST(NULL AS {kind}) AS {name}" for name, kind in
                                    [*types.items(), *((name, "VARCHAR") for name in table.partitions)])
                source = f"(SELECT {columns} WHERE false)"
            elif table.csv:
                source = "(" + " UNION ALL ".join(self._csv_file(path, types, table.partitions) for path in files) + ")"
            else:
                source = (f"read_parquet([{', '.join(_literal(str(f)) for f in files)}], "
                          f"hive_partitioning = true, hive_types = {partitions})")
            con.execute(f"CREATE VIEW {table.name} AS SELECT * FROM {source}")
        return con

    @staticmethod
    def _csv_file(path: Path, types: dict[str, str], partitions: tuple[str, ...]) -> str:
        """One labels file as the table's rows: a column the file leaves out, a blank cell or one that is no
        number of the column's type is NULL (as the CSV SerDe reads them); DuckDB's reader takes no shorter rows,
        so the file is read as text and cast here."""
        present = path.read_text().splitlines()[0].split(",")
        columns = [f"TRY_CAST(NULLIF({name}, '') AS {kind}) AS {name}" if name in present else f"CAST(NULL AS {kind}) AS {name}"
                   for name, kind in types.items()]
        return (f"SELECT {', '.join(columns)}, {', '.join(partitions)} FROM read_csv({_literal(str(path))}, header = true, "
                f"all_varchar = true, hive_partitioning = true, hive_types = {_struct(dict.fromkeys(partitions, 'VARCHAR'))})")

    def run_query(self, query: LakeQuery, thing: str, since: str | None) -> list[tuple[Any, ...]]:
        """The query's rows, its `?` bound to the raw values of query_parameters' literals."""
        raw = [_unquoted(literal) for literal in query_parameters(query, thing, since)]
        with self.connect() as con:
            return con.execute(query.sql, raw).fetchall()

    def run_substituted(self, query: LakeQuery, thing: str, since: str | None) -> list[tuple[Any, ...]]:
        """The query's rows with the literals written into the text in order, as Athena substitutes them."""
        literals = query_parameters(query, thing, since)
        pieces = query.sql.split("?")
        assert len(pieces) == len(literals) + 1, "every `?` of the query takes one parameter"
        text = pieces[0] + "".join(literal + piece for literal, piece in zip(literals, pieces[1:]))
        with self.connect() as con:
            return con.execute(text).fetchall()


def _unquoted(literal: str) -> str:
    assert literal.startswith("'") and literal.endswith("'") and "'" not in literal[1:-1], literal
    return literal[1:-1]


def athena_text(value: Any) -> str | None:
    """A DuckDB value as GetQueryResults text (VarCharValue; None for NULL). Doubles are written as Python
    writes them (1013.25); Athena may use E notation (1.01325E3), which the CSV's readers take alike."""
    return None if value is None else repr(value) if isinstance(value, float) else str(value)
