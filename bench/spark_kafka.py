"""Spark Structured Streaming baseline for Sluice's Kafka benchmark (bench/kafka.rs).

Reads a Kafka topic with Spark's Kafka source (`spark-sql-kafka-0-10`, jars from
bench/spark-kafka/lib), decodes each value as JSON, runs the benchmark's filter and projection,
and writes each row as a JSON value to another topic with Spark's Kafka sink, with
Trigger.AvailableNow and maxOffsetsPerTrigger as given. Prints one JSON object: start_s
(SparkSession start), stream_s (the whole streaming query), batches, rows, and the median batch
duration in ms (Spark's own progress, triggerExecution).

    python3 bench/spark_kafka.py --bootstrap 127.0.0.1:19092 --input TOPIC --output TOPIC \
        --checkpoint DIR --per-batch 100000 --jars a.jar,b.jar

Spark's Kafka sink is at least once (it has no transactions); Sluice's writes each batch in a
Kafka transaction, so the comparison favours Spark.
"""

import argparse
import json
import statistics
import time

QUERY = (
    "SELECT ts, user_id, upper(page) AS page, country, duration_ms / 1000.0 AS seconds "
    "FROM clicks WHERE duration_ms > 1000"
)
SCHEMA = "ts TIMESTAMP, user_id BIGINT, page STRING, referrer STRING, country STRING, duration_ms BIGINT"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--per-batch", type=int, required=True)
    ap.add_argument("--jars", required=True)
    args = ap.parse_args()

    t0 = time.perf_counter()
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("sluice-bench-kafka")
        .config("spark.jars", args.jars)
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    start_s = time.perf_counter() - t0

    records = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.bootstrap)
        .option("subscribe", args.input)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", args.per_batch)
        .load()
    )
    clicks = records.select(
        F.from_json(F.col("value").cast("string"), SCHEMA).alias("c")
    ).select("c.*")
    clicks.createOrReplaceTempView("clicks")
    result = spark.sql(QUERY)
    values = result.select(F.to_json(F.struct(*result.columns)).alias("value"))
    t1 = time.perf_counter()
    query = (
        values.writeStream.format("kafka")
        .option("kafka.bootstrap.servers", args.bootstrap)
        .option("topic", args.output)
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
