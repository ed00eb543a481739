"""Flink baseline for Sluice's Nexmark benchmark (bench/nexmark.rs).

Runs one Nexmark query in Flink SQL (PyPI `apache-flink` 2.x: a local cluster in this process's
JVM, parallelism 2, streaming mode) over the JSON-lines folders `sluice gen nexmark` wrote
(INPUT/person, INPUT/auction, INPUT/bid) read as bounded streams, into Flink's `blackhole` sink
(Flink's own Nexmark benchmark's sink: rows are computed and dropped), with the settings of
Flink's Nexmark benchmark (mini-batches of 50 000 rows, split distinct aggregation). It prints
one JSON object:

    {"query", "supported", "start_s", "stream_s", "rows_out" (with --count)}

start_s is the table environment's start, stream_s the job, from its submission until it ends.

    flink-venv/bin/python bench/nexmark_flink.py --input DIR --work DIR --query q1 --watermark-delay-s 1100

Each query is bench/nexmark.rs's (queries/nexmark/) in Flink's dialect, as Flink's Nexmark
suite writes them (DATE_FORMAT, SPLIT_INDEX, REGEXP_EXTRACT, ROW_NUMBER for DISTINCT ON, the
SESSION table function), with DataFusion's types where Flink's differ (0.908 a double, AVG of a
BIGINT a double, a missing URL part '' not NULL). One difference stays: at the end of its
bounded input Flink closes every session window of q11, where Sluice and Spark write only
those their final watermark closes, so Flink's q11 writes a few more rows. Tables that carry a watermark in queries/nexmark/ declare one here, with
a delay longer than the input's span (--watermark-delay-s): Flink's file source reads files in
parallel, out of event-time order, and a shorter delay makes its interval joins and windows
drop rows as late.
"""

import argparse
import json
import os
import time

COLUMNS = {
    "person": "id BIGINT, name STRING, email_address STRING, credit_card STRING, city STRING, "
    "state STRING, date_time TIMESTAMP(3), extra STRING",
    "auction": "id BIGINT, item_name STRING, description STRING, initial_bid BIGINT, "
    "reserve BIGINT, date_time TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, "
    "category BIGINT, extra STRING",
    "bid": "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, "
    "date_time TIMESTAMP(3), extra STRING",
}

# name -> (tables, whether they carry a watermark, SQL).
QUERIES = {
    "q0": (["bid"], False, "SELECT auction, bidder, price, channel, url, date_time, extra FROM bid"),
    "q1": (["bid"], False, "SELECT auction, bidder, CAST(0.908 AS DOUBLE) * price AS price, date_time, extra FROM bid"),
    "q2": (["bid"], False, "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0"),
    "q3": (
        ["person", "auction"],
        True,
        """SELECT P.name, P.city, P.state, A.id
           FROM auction AS A JOIN person AS P
             ON A.seller = P.id
            AND A.date_time BETWEEN P.date_time AND P.date_time + INTERVAL '10' MINUTE
           WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')""",
    ),
    "q10": (
        ["bid"],
        False,
        """SELECT auction, bidder, price, date_time, extra,
                  DATE_FORMAT(date_time, 'yyyy-MM-dd') AS dt, DATE_FORMAT(date_time, 'HH:mm') AS hm
           FROM bid""",
    ),
    "q11": (
        ["bid"],
        True,
        """SELECT bidder, window_start, window_end, COUNT(*) AS bid_count
           FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
           GROUP BY bidder, window_start, window_end""",
    ),
    "q13": (
        ["bid", "side_input"],
        False,
        """SELECT B.auction, B.bidder, B.price, B.date_time, S.`value`
           FROM bid AS B JOIN side_input AS S ON MOD(B.auction, 1000) = S.key""",
    ),
    "q14": (
        ["bid"],
        False,
        """SELECT auction, bidder, CAST(0.908 AS DOUBLE) * price AS price,
                  CASE
                    WHEN HOUR(date_time) >= 8 AND HOUR(date_time) <= 18 THEN 'dayTime'
                    WHEN HOUR(date_time) <= 6 OR HOUR(date_time) >= 20 THEN 'nightTime'
                    ELSE 'otherTime'
                  END AS bid_time_type,
                  date_time, extra,
                  CHAR_LENGTH(extra) - CHAR_LENGTH(REPLACE(extra, 'c', '')) AS c_counts
           FROM bid
           WHERE CAST(0.908 AS DOUBLE) * price > 1000000 AND CAST(0.908 AS DOUBLE) * price < 50000000""",
    ),
    "q15": (
        ["bid"],
        False,
        """SELECT DATE_FORMAT(date_time, 'yyyy-MM-dd') AS `day`,
                  COUNT(*) AS total_bids,
                  COUNT(*) FILTER (WHERE price < 10000) AS rank1_bids,
                  COUNT(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
                  COUNT(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
                  COUNT(DISTINCT bidder) AS total_bidders,
                  COUNT(DISTINCT bidder) FILTER (WHERE price < 10000) AS rank1_bidders,
                  COUNT(DISTINCT bidder) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bidders,
                  COUNT(DISTINCT bidder) FILTER (WHERE price >= 1000000) AS rank3_bidders,
                  COUNT(DISTINCT auction) AS total_auctions,
                  COUNT(DISTINCT auction) FILTER (WHERE price < 10000) AS rank1_auctions,
                  COUNT(DISTINCT auction) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_auctions,
                  COUNT(DISTINCT auction) FILTER (WHERE price >= 1000000) AS rank3_auctions
           FROM bid GROUP BY DATE_FORMAT(date_time, 'yyyy-MM-dd')""",
    ),
    "q16": (
        ["bid"],
        False,
        """SELECT channel, DATE_FORMAT(date_time, 'yyyy-MM-dd') AS `day`,
                  MAX(DATE_FORMAT(date_time, 'HH:mm')) AS `minute`,
                  COUNT(*) AS total_bids,
                  COUNT(*) FILTER (WHERE price < 10000) AS rank1_bids,
                  COUNT(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
                  COUNT(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
                  COUNT(DISTINCT bidder) AS total_bidders,
                  COUNT(DISTINCT auction) AS total_auctions
           FROM bid GROUP BY channel, DATE_FORMAT(date_time, 'yyyy-MM-dd')""",
    ),
    "q17": (
        ["bid"],
        False,
        """SELECT auction, DATE_FORMAT(date_time, 'yyyy-MM-dd') AS `day`,
                  COUNT(*) AS total_bids,
                  COUNT(*) FILTER (WHERE price < 10000) AS rank1_bids,
                  COUNT(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
                  COUNT(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
                  MIN(price) AS min_price, MAX(price) AS max_price,
                  AVG(CAST(price AS DOUBLE)) AS avg_price, SUM(price) AS sum_price
           FROM bid GROUP BY auction, DATE_FORMAT(date_time, 'yyyy-MM-dd')""",
    ),
    "q18": (
        ["bid"],
        False,
        """SELECT auction, bidder, price, channel, url, date_time, extra
           FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction
                                              ORDER BY date_time DESC, price DESC, extra DESC) AS rank_number
                 FROM bid)
           WHERE rank_number <= 1""",
    ),
    "q20": (
        ["auction", "bid"],
        True,
        """SELECT B.auction, B.bidder, B.price, B.channel, B.url, B.date_time, B.extra,
                  A.item_name, A.description, A.initial_bid, A.reserve,
                  CAST(A.date_time AS TIMESTAMP(3)) AS auction_time, A.expires, A.seller, A.category,
                  A.extra AS auction_extra
           FROM bid AS B JOIN auction AS A
             ON B.auction = A.id
            AND B.date_time BETWEEN A.date_time AND A.date_time + INTERVAL '10' MINUTE
           WHERE A.category = 10""",
    ),
    "q21": (
        ["bid"],
        False,
        """SELECT auction, bidder, price, channel,
                  CASE
                    WHEN LOWER(channel) = 'apple' THEN '0'
                    WHEN LOWER(channel) = 'google' THEN '1'
                    WHEN LOWER(channel) = 'facebook' THEN '2'
                    WHEN LOWER(channel) = 'baidu' THEN '3'
                    ELSE REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)
                  END AS channel_id
           FROM bid
           WHERE REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) IS NOT NULL
              OR LOWER(channel) IN ('apple', 'google', 'facebook', 'baidu')""",
    ),
    "q22": (
        ["bid"],
        False,
        """SELECT auction, bidder, price, channel,
                  COALESCE(SPLIT_INDEX(url, '/', 3), '') AS dir1,
                  COALESCE(SPLIT_INDEX(url, '/', 4), '') AS dir2,
                  COALESCE(SPLIT_INDEX(url, '/', 5), '') AS dir3
           FROM bid""",
    ),
    "bids_per_channel": (
        ["bid"],
        False,
        """SELECT channel, COUNT(*) AS bids, MAX(price) AS top_price,
                  COUNT(DISTINCT auction) AS auctions
           FROM bid GROUP BY channel""",
    ),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--query", required=True, choices=sorted(QUERIES))
    ap.add_argument("--watermark-delay-s", type=int, required=True)
    ap.add_argument("--side-input", help="the CSV of q13's static table")
    ap.add_argument(
        "--count",
        action="store_true",
        help="then count the query's rows in a second job (not timed), as rows_out",
    )
    args = ap.parse_args()
    tables, watermarked, sql = QUERIES[args.query]

    t0 = time.perf_counter()
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    config.set("parallelism.default", "2")
    # Flink's Nexmark benchmark's settings (flink-extended/nexmark, conf/sql-client-defaults).
    config.set("table.exec.mini-batch.enabled", "true")
    config.set("table.exec.mini-batch.allow-latency", "2 s")
    config.set("table.exec.mini-batch.size", "50000")
    config.set("table.optimizer.distinct-agg.split.enabled", "true")
    start_s = time.perf_counter() - t0

    for table in tables:
        if table == "side_input":
            # Flink's CSV format has no header option: the table reads a copy without it.
            os.makedirs(os.path.join(args.work, "side_input"), exist_ok=True)
            with open(args.side_input) as f:
                rows = f.read().splitlines()[1:]
            with open(os.path.join(args.work, "side_input", "side_input.csv"), "w") as f:
                f.write("\n".join(rows) + "\n")
            env.execute_sql(
                f"""CREATE TABLE side_input (key BIGINT, `value` STRING) WITH (
                      'connector' = 'filesystem',
                      'path' = 'file://{os.path.abspath(os.path.join(args.work, "side_input"))}',
                      'format' = 'csv')"""
            )
            continue
        watermark = (
            # In whole hours: Flink's day-time intervals take at most 2 digits a field.
            f", WATERMARK FOR date_time AS date_time - INTERVAL '{-(-args.watermark_delay_s // 3600)}' HOUR"
            if watermarked
            else ""
        )
        env.execute_sql(
            f"""CREATE TABLE {table} ({COLUMNS[table]}{watermark}) WITH (
                  'connector' = 'filesystem',
                  'path' = 'file://{os.path.abspath(os.path.join(args.input, table))}',
                  'format' = 'json',
                  'json.timestamp-format.standard' = 'ISO-8601')"""
        )
    t1 = time.perf_counter()
    # CREATE TABLE AS: the sink takes the query's columns, and its changes where it has any.
    env.execute_sql(f"CREATE TABLE discard WITH ('connector' = 'blackhole') AS {sql}").wait()
    stream_s = time.perf_counter() - t1
    summary = {"query": args.query, "supported": True, "start_s": start_s, "stream_s": stream_s}
    if args.count:
        # The count of an updating result is updated too: its last value is the final one.
        with env.execute_sql(f"SELECT COUNT(*) FROM ({sql})").collect() as rows:
            for row in rows:
                summary["rows_out"] = row[0]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
