#!/usr/bin/env python3
"""nearest_client.py: psycopg 3 sessions that need nearest, for
260_nearest.t; the same rounds as tests/node/nearest_client.js.

--clients connections (autocommit, prepare_threshold=0: every query is a
named prepared statement from its first run), each in a thread of its
own, --rounds rounds of: an INSERT (a write, which a standby refuses and
pgnear runs again on the primary), a SELECT of that row right after
(read-your-writes: it must find it), a read of where it ran
(cluster_name: the primary until the standby has replayed the write; the
session's first read, before any write, is near), and every fourth round a block in conn.transaction() that
reads then updates the row.  Ids from --first on.  Prints one JSON line:
{"writes", "stale", "near_reads", "failure_count", "failures"}.

    /usr/bin/python3 tests/clients/nearest_client.py --port PORT
        [--clients N] [--rounds N] [--first ID]
"""
import argparse
import json
import threading

import psycopg

args = argparse.ArgumentParser()
args.add_argument("--port", type=int, required=True)
args.add_argument("--clients", type=int, default=2)
args.add_argument("--rounds", type=int, default=10)
args.add_argument("--first", type=int, default=200000)
o = args.parse_args()
out = {"writes": 0, "stale": 0, "near_reads": 0, "failure_count": 0, "failures": []}
lock = threading.Lock()


def note(key, n=1):
    with lock:
        out[key] += n


def session(k):
    conn = psycopg.connect(host="127.0.0.1", port=o.port, user="app", password="app-secret",
                           dbname="movr", options="-c pgnear.location=53.35,-6.26",
                           autocommit=True, prepare_threshold=0)
    # A read before any write: near, the session having nothing to read back yet.
    (at,) = conn.execute("SELECT current_setting('cluster_name')").fetchone()
    if at == "eu-west":
        note("near_reads")
    for i in range(o.rounds):
        rid = o.first + k * o.rounds + i
        try:
            conn.execute("INSERT INTO rides (id, rider) VALUES (%s, %s)", (rid, "psycopg"))
            note("writes")
            (n,) = conn.execute("SELECT count(*) FROM rides WHERE id = %s", (rid,)).fetchone()
            if n != 1:
                note("stale")
            (at,) = conn.execute("SELECT current_setting('cluster_name')").fetchone()
            if at == "eu-west":
                note("near_reads")
            if i % 4 == 3:
                with conn.transaction():
                    conn.execute("SELECT rider FROM rides WHERE id = %s", (rid,))
                    conn.execute("UPDATE rides SET rider = 'psycopg-block' WHERE id = %s", (rid,))
        except psycopg.Error as e:
            with lock:
                out["failure_count"] += 1
                if len(out["failures"]) < 5:
                    out["failures"].append(f"{e.sqlstate} {e}")
    conn.close()


threads = [threading.Thread(target=session, args=(k,)) for k in range(o.clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(out), flush=True)
