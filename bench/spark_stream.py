"""Spark Structured Streaming baseline for Sluice's benchmark.

Runs one streaming query over a folder of JSON lines with Trigger.AvailableNow and the given
maxFilesPerTrigger, writing Parquet, and prints one JSON object: start_s (SparkSession start),
stream_s (the whole streaming query), batches, and the median batch duration in ms (from
Spark's own progress, triggerExecution).

    python3 bench/spark_stream.py --input DIR --output DIR --checkpoint DIR --per-batch 2 --query stateless

--query stateless: a filter and projection. --query window: page views per 1-minute tumbling
window with a 10 s watermark, in append mode (the windowed benchmark of bench/stateful.rs).
"""

import argparse
import json
import statistics
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--per-batch", type=int, default=2)
    ap.add_argument("--query", choices=["stateless", "window"], default="stateless")
    args = ap.parse_args()

    t0 = time.perf_counter()
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("sluice-bench")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    start_s = time.perf_counter() - t0

    schema = "ts TIMESTAMP, user_id BIGINT, page STRING, referrer STRING, country STRING, duration_ms BIGINT"
    clicks = (
        spark.readStream.schema(schema)
        .option("maxFilesPerTrigger", args.per_batch)
        .json(args.input)
    )
    if args.query == "window":
        from pyspark.sql import functions as F

        result = (
            clicks.withWatermark("ts", "10 seconds")
            .groupBy(F.window("ts", "1 minute"), "page")
            .count()
            .select(
                F.col("window.start").alias("window_start"),
                "page",
                F.col("count").alias("views"),
            )
        )
    else:
        clicks.createOrReplaceTempView("clicks")
        result = spark.sql(
            "SELECT ts, user_id, upper(page) AS page, country, duration_ms / 1000.0 AS seconds "
            "FROM clicks WHERE duration_ms > 1000"
        )
    t1 = time.perf_counter()
    query = (
        result.writeStream.format("parquet")
        .outputMode("append")
        .option("path", args.output)
        .option("checkpointLocation", args.checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    stream_s = time.perf_counter() - t1
    progress = [p for p in query.recentProgress if p["numInputRows"] > 0]
    durations = [p["durationMs"]["triggerExecution"] for p in progress]
    rows = sum(p["numInputRows"] for p in progress)
    print(
        json.dumps(
            {
                "start_s": start_s,
                "stream_s": stream_s,
                "batches": len(progress),
                "rows": rows,
                "median_batch_ms": statistics.median(durations) if durations else None,
            }
        )
    )
    spark.stop()


if __name__ == "__main__":
    main()
