"""The benchmarks' real workload: TPC-H from DuckDB's dbgen, run by Spark, answers checked against DuckDB's
on the same Parquet files (bench/tpch.py). Scale factor 0.01 here; the benchmark runs SF 1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.local_scenarios import QUICK_JVM_CONF
from bench.tpch import SHUFFLE_HEAVY, Mismatch, Tpch, compare

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def tpch(tmp_path_factory: pytest.TempPathFactory) -> Tpch:
    return Tpch(tmp_path_factory.mktemp("tpch"), 0.01).ensure()


@pytest.fixture(scope="module")
def spark(tpch: Tpch) -> Iterator[Any]:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[2]").appName("test-tpch")
    for k, v in {**QUICK_JVM_CONF, "spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "8"}.items():
        builder = builder.config(k, v)
    s = builder.getOrCreate()
    tpch.register(s)
    yield s
    s.stop()


@pytest.mark.parametrize("n", SHUFFLE_HEAVY)
def test_spark_answers_the_shuffle_heavy_queries_as_duckdb_does(tpch: Tpch, spark: Any, n: int) -> None:
    got = tpch.spark_answer(spark, n)
    assert got, f"q{n} returned no rows at SF 0.01"
    compare(n, got, tpch.duckdb_answer(n))


def test_a_wrong_answer_is_caught(tpch: Tpch) -> None:
    right = tpch.duckdb_answer(13)
    wrong = [right[0][:-1] + (right[0][-1] + 1,), *right[1:]]
    with pytest.raises(Mismatch, match="q13: row 0 differs"):
        compare(13, wrong, right)
    with pytest.raises(Mismatch, match="rows"):
        compare(13, right[:-1], right)


def test_the_tables_are_made_once(tpch: Tpch) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in Path(tpch.data_dir).glob("*.parquet")}
    assert len(before) == 8
    Tpch(tpch.root, tpch.sf).ensure()
    assert {p.name: p.stat().st_mtime_ns for p in Path(tpch.data_dir).glob("*.parquet")} == before
