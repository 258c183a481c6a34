"""TPC-H as a real workload for the benchmarks: DuckDB's dbgen writes the tables (Parquet), Spark runs a
few shuffle-heavy queries, and every answer is checked against DuckDB's on the same data.

Offline: ``duckdb`` and ``duckdb-extension-tpch`` (PyPI, the ``bench`` extra) carry dbgen, the 22 queries
and the engine that answers them; nothing is downloaded at run time.
"""

from __future__ import annotations

import decimal
import functools
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["SHUFFLE_HEAVY", "TABLES", "Tpch", "Mismatch", "compare"]

TABLES = ("nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem")
#: Shuffle-heavy queries: q9 (a six-table join and a group by), q13 (an outer join and two
#: aggregations), q18 (a large group by joined back to orders and lineitem), q21 (lineitem joined to
#: itself twice through EXISTS / NOT EXISTS).
SHUFFLE_HEAVY = (9, 13, 18, 21)
_REL_TOL = 1e-9


class Mismatch(AssertionError):
    """Spark's answer differs from DuckDB's."""


def _extension() -> str:
    import duckdb_extension_tpch  # type: ignore[import-untyped]

    found = sorted(Path(duckdb_extension_tpch.__file__).parent.glob("extensions/*/tpch.duckdb_extension"))
    if not found:
        raise RuntimeError("duckdb-extension-tpch has no tpch.duckdb_extension: reinstall it (make setup)")
    return str(found[-1])


@functools.cache
def _queries() -> dict[int, str]:
    """The 22 query texts, read once (each read loads the 17 MB extension)."""
    import duckdb

    with duckdb.connect() as con:
        con.execute(f"LOAD {_sql_path(Path(_extension()))}")
        rows = con.execute("SELECT query_nr, query FROM tpch_queries()").fetchall()
    return {int(nr): str(q).strip().rstrip(";") for nr, q in rows}


@dataclass(frozen=True)
class Tpch:
    """TPC-H data at scale factor ``sf`` in ``root`` (one Parquet file per table), made once."""

    root: Path
    sf: float

    @property
    def data_dir(self) -> Path:
        return self.root / f"sf{self.sf:g}"

    def ensure(self) -> Tpch:
        """Generate the tables with dbgen unless a complete set is there."""
        stamp = self.data_dir / ".complete"
        if stamp.exists():
            return self
        import duckdb

        tmp = self.data_dir.with_name(self.data_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with duckdb.connect() as con:
            con.execute(f"LOAD {_sql_path(Path(_extension()))}")
            con.execute(f"CALL dbgen(sf={self.sf})")
            for t in TABLES:
                con.execute(f"COPY {t} TO {_sql_path(tmp / (t + '.parquet'))} (FORMAT parquet)")
        (tmp / ".complete").write_text(f"{self.sf}\n")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        tmp.rename(self.data_dir)
        return self

    def query(self, n: int) -> str:
        """TPC-H query n as DuckDB ships it, without the trailing ';' (Spark's parser refuses it)."""
        queries = _queries()
        if n not in queries:
            raise ValueError(f"TPC-H has queries 1-22, not {n}")
        return queries[n]

    def duckdb_answer(self, n: int) -> list[tuple[Any, ...]]:
        """DuckDB's answer to query n on these Parquet files."""
        import duckdb

        with duckdb.connect() as con:
            for t in TABLES:
                parquet = _sql_path(self.data_dir / f"{t}.parquet")
                con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet({parquet})")
            return [tuple(r) for r in con.execute(self.query(n)).fetchall()]

    def register(self, spark: SparkSession) -> None:
        """The tables as Spark temporary views over the Parquet files."""
        for t in TABLES:
            spark.read.parquet(str(self.data_dir / f"{t}.parquet")).createOrReplaceTempView(t)

    def spark_answer(self, spark: SparkSession, n: int) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in spark.sql(self.query(n)).collect()]


def _same(a: Any, b: Any) -> bool:
    """Exact for decimals and integers (money must add up to the cent); within rounding where either side
    is a float."""
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=_REL_TOL, abs_tol=1e-6)
    if isinstance(a, decimal.Decimal) or isinstance(b, decimal.Decimal):
        return a is not None and b is not None and decimal.Decimal(a) == decimal.Decimal(b)
    return bool(a == b)


def _sql_path(p: Path) -> str:
    return "'" + str(p).replace("'", "''") + "'"


def compare(n: int, spark_rows: Sequence[tuple[Any, ...]], duck_rows: Sequence[tuple[Any, ...]]) -> None:
    """Raise :class:`Mismatch` unless the answers have the same rows in the same order (every TPC-H query
    orders its result), numbers equal to within float rounding."""
    if len(spark_rows) != len(duck_rows):
        raise Mismatch(f"q{n}: Spark returned {len(spark_rows)} rows, DuckDB {len(duck_rows)}")
    for i, (s, d) in enumerate(zip(spark_rows, duck_rows, strict=True)):
        if len(s) != len(d) or not all(_same(x, y) for x, y in zip(s, d, strict=True)):
            raise Mismatch(f"q{n}: row {i} differs: Spark {s!r}, DuckDB {d!r}")
