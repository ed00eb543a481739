"""Spark Structured Streaming baseline for Sluice's Nexmark benchmark (bench/nexmark.rs).

Runs one Nexmark query over the JSON-lines folders `sluice gen nexmark` wrote (INPUT/person,
INPUT/auction, INPUT/bid), as Spark SQL over streaming views, with Trigger.AvailableNow and
maxFilesPerTrigger, into Parquet files as Sluice writes them (Spark's file sink in append mode;
in complete mode, where that sink cannot go, each batch rewrites the table by foreachBatch, as
Sluice's files sink does), and prints one JSON object:

    {"query", "supported", "start_s", "stream_s", "batches", "rows_in", "rows_out"}

start_s is the SparkSession's start, stream_s the whole streaming query (from start() until
it ends), rows_out the rows in the Parquet output afterwards (read back, not timed).

    python3 bench/nexmark_spark.py --input DIR --work DIR --query q1 --per-batch 2

Each query is bench/nexmark.rs's (queries/nexmark/) in Spark's dialect: to_char becomes
date_format, regexp_match(...)[2] becomes regexp_extract with an RLIKE test, and sources that
carry a watermark in queries/nexmark/ carry the same one here. A query Spark cannot run on a
stream prints "supported": false with Spark's reason (a distinct aggregation, DISTINCT ON).
"""

import argparse
import json
import os
import time

SCHEMAS = {
    "person": "id BIGINT, name STRING, email_address STRING, credit_card STRING, city STRING, "
    "state STRING, date_time TIMESTAMP, extra STRING",
    "auction": "id BIGINT, item_name STRING, description STRING, initial_bid BIGINT, "
    "reserve BIGINT, date_time TIMESTAMP, expires TIMESTAMP, seller BIGINT, category BIGINT, "
    "extra STRING",
    "bid": "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, "
    "date_time TIMESTAMP, extra STRING",
}

# name -> (tables with the watermark delay queries/nexmark/ gives them, output mode, SQL).
QUERIES = {
    "q0": (
        {"bid": None},
        "append",
        "SELECT auction, bidder, price, channel, url, date_time, extra FROM bid",
    ),
    "q1": (
        {"bid": None},
        "append",
        "SELECT auction, bidder, 0.908D * price AS price, date_time, extra FROM bid",
    ),
    "q2": ({"bid": None}, "append", "SELECT auction, price FROM bid WHERE auction % 123 = 0"),
    "q3": (
        {"person": "1 second", "auction": "1 second"},
        "append",
        """SELECT P.name, P.city, P.state, A.id
           FROM auction A JOIN person P
             ON A.seller = P.id
            AND A.date_time BETWEEN P.date_time AND P.date_time + INTERVAL '10' MINUTE
           WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')""",
    ),
    "q10": (
        {"bid": None},
        "append",
        """SELECT auction, bidder, price, date_time, extra,
                  date_format(date_time, 'yyyy-MM-dd') AS dt, date_format(date_time, 'HH:mm') AS hm
           FROM bid""",
    ),
    "q11": (
        {"bid": "1 second"},
        "append",
        """SELECT bidder, session_window.start AS window_start, session_window.end AS window_end,
                  count(*) AS bid_count
           FROM bid
           GROUP BY bidder, session_window(date_time, '10 seconds')""",
    ),
    "q13": (
        {"bid": None},
        "append",
        """SELECT B.auction, B.bidder, B.price, B.date_time, S.value
           FROM bid B JOIN side_input S ON B.auction % 1000 = S.key""",
    ),
    "q14": (
        {"bid": None},
        "append",
        """SELECT auction, bidder, 0.908D * price AS price,
                  CASE
                    WHEN hour(date_time) >= 8 AND hour(date_time) <= 18 THEN 'dayTime'
                    WHEN hour(date_time) <= 6 OR hour(date_time) >= 20 THEN 'nightTime'
                    ELSE 'otherTime'
                  END AS bid_time_type,
                  date_time, extra,
                  char_length(extra) - char_length(replace(extra, 'c', '')) AS c_counts
           FROM bid
           WHERE 0.908D * price > 1000000 AND 0.908D * price < 50000000""",
    ),
    "q15": (
        {"bid": None},
        "complete",
        """SELECT date_format(date_time, 'yyyy-MM-dd') AS day,
                  count(*) AS total_bids,
                  count(*) FILTER (WHERE price < 10000) AS rank1_bids,
                  count(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
                  count(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
                  count(DISTINCT bidder) AS total_bidders,
                  count(DISTINCT bidder) FILTER (WHERE price < 10000) AS rank1_bidders,
                  count(DISTINCT bidder) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bidders,
                  count(DISTINCT bidder) FILTER (WHERE price >= 1000000) AS rank3_bidders,
                  count(DISTINCT auction) AS total_auctions,
                  count(DISTINCT auction) FILTER (WHERE price < 10000) AS rank1_auctions,
                  count(DISTINCT auction) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_auctions,
                  count(DISTINCT auction) FILTER (WHERE price >= 1000000) AS rank3_auctions
           FROM bid GROUP BY date_format(date_time, 'yyyy-MM-dd')""",
    ),
    "q16": (
        {"bid": None},
        "complete",
        """SELECT channel, date_format(date_time, 'yyyy-MM-dd') AS day,
                  max(date_format(date_time, 'HH:mm')) AS minute,
                  count(*) AS total_bids,
                  count(*) FILTER (WHERE price < 10000) AS rank1_bids,
                  count(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
                  count(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
                  count(DISTINCT bidder) AS total_bidders,
                  count(DISTINCT auction) AS total_auctions
           FROM bid GROUP BY channel, date_format(date_time, 'yyyy-MM-dd')""",
    ),
    "q17": (
        {"bid": None},
        "complete",
        """SELECT auction, date_format(date_time, 'yyyy-MM-dd') AS day,
                  count(*) AS total_bids,
                  count(*) FILTER (WHERE price < 10000) AS rank1_bids,
                  count(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
                  count(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
                  min(price) AS min_price, max(price) AS max_price,
                  avg(price) AS avg_price, sum(price) AS sum_price
           FROM bid
           GROUP BY auction, date_format(date_time, 'yyyy-MM-dd')""",
    ),
    # DISTINCT ON is not Spark SQL, nor ROW_NUMBER on a stream: the greatest struct ordered
    # as the query orders rows picks the same row.
    "q18": (
        {"bid": None},
        "complete",
        """SELECT auction, bidder, last.price, last.channel, last.url, last.date_time, last.extra
           FROM (SELECT auction, bidder,
                        max(struct(date_time, price, extra, channel, url)) AS last
                 FROM bid GROUP BY bidder, auction)""",
    ),
    "q20": (
        {"auction": "1 second", "bid": "1 second"},
        "append",
        """SELECT B.auction, B.bidder, B.price, B.channel, B.url, B.date_time, B.extra,
                  A.item_name, A.description, A.initial_bid, A.reserve,
                  A.date_time AS auction_time, A.expires, A.seller, A.category,
                  A.extra AS auction_extra
           FROM bid B JOIN auction A
             ON B.auction = A.id
            AND B.date_time BETWEEN A.date_time AND A.date_time + INTERVAL '10' MINUTE
           WHERE A.category = 10""",
    ),
    "q21": (
        {"bid": None},
        "append",
        """SELECT auction, bidder, price, channel,
                  CASE
                    WHEN lower(channel) = 'apple' THEN '0'
                    WHEN lower(channel) = 'google' THEN '1'
                    WHEN lower(channel) = 'facebook' THEN '2'
                    WHEN lower(channel) = 'baidu' THEN '3'
                    ELSE regexp_extract(url, '(&|^)channel_id=([^&]*)', 2)
                  END AS channel_id
           FROM bid
           WHERE url RLIKE '(&|^)channel_id=([^&]*)'
              OR lower(channel) IN ('apple', 'google', 'facebook', 'baidu')""",
    ),
    "q22": (
        {"bid": None},
        "append",
        """SELECT auction, bidder, price, channel,
                  split_part(url, '/', 4) AS dir1,
                  split_part(url, '/', 5) AS dir2,
                  split_part(url, '/', 6) AS dir3
           FROM bid""",
    ),
    "bids_per_channel": (
        {"bid": None},
        "complete",
        """SELECT channel, count(*) AS bids, max(price) AS top_price,
                  count(DISTINCT auction) AS auctions
           FROM bid GROUP BY channel""",
    ),
}

# Why Spark cannot run a query on a stream, where it is not by running it and failing.
UNSUPPORTED = {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--query", required=True, choices=sorted(QUERIES))
    ap.add_argument("--per-batch", type=int, default=2)
    ap.add_argument("--side-input", help="the CSV of q13's static table")
    args = ap.parse_args()

    if args.query in UNSUPPORTED:
        print(json.dumps({"query": args.query, "supported": False, "reason": UNSUPPORTED[args.query]}))
        return
    tables, mode, sql = QUERIES[args.query]

    # The driver is the executor in local mode: its heap holds the state (1 GiB by default,
    # too little for q18's at 10 million events).
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS", "--driver-memory 8g pyspark-shell")
    t0 = time.perf_counter()
    from pyspark.sql import SparkSession
    from pyspark.errors import AnalysisException

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("sluice-nexmark")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        # Every batch's progress is kept (100 by default).
        .config("spark.sql.streaming.numRecentProgressUpdates", "100000")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    start_s = time.perf_counter() - t0

    for table, delay in tables.items():
        frame = (
            spark.readStream.schema(SCHEMAS[table])
            .option("maxFilesPerTrigger", args.per_batch)
            .json(os.path.join(args.input, table))
        )
        if delay:
            frame = frame.withWatermark("date_time", delay)
        frame.createOrReplaceTempView(table)
    if args.side_input:
        spark.read.schema("key BIGINT, value STRING").option("header", True).csv(
            args.side_input
        ).createOrReplaceTempView("side_input")

    out = os.path.join(args.work, "out")
    t1 = time.perf_counter()
    try:
        writer = (
            spark.sql(sql)
            .writeStream.outputMode(mode)
            .option("checkpointLocation", os.path.join(args.work, "checkpoint"))
            .trigger(availableNow=True)
        )
        if mode == "complete":
            # Spark's file sink appends only: each batch rewrites the whole table, as Sluice's
            # files sink does in complete mode.
            writer = writer.foreachBatch(
                lambda frame, _batch: frame.write.mode("overwrite").parquet(out)
            )
        else:
            writer = writer.format("parquet").option("path", out)
        query = writer.start()
    except AnalysisException as e:
        print(json.dumps({"query": args.query, "supported": False, "reason": str(e).splitlines()[0]}))
        spark.stop()
        return
    query.awaitTermination()
    stream_s = time.perf_counter() - t1
    progress = [p for p in query.recentProgress if p["numInputRows"] > 0]
    # Read back, not timed: the file sink's log lists the files its batches committed.
    rows_out = spark.read.parquet(out).count() if os.path.exists(out) else 0
    print(
        json.dumps(
            {
                "query": args.query,
                "supported": True,
                "start_s": start_s,
                "stream_s": stream_s,
                "batches": len(progress),
                "rows_in": sum(p["numInputRows"] for p in progress),
                "rows_out": rows_out,
            }
        )
    )
    spark.stop()


if __name__ == "__main__":
    main()
