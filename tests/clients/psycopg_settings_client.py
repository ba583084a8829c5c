#!/usr/bin/env python3
"""psycopg_settings_client.py: psycopg 3 (Debian 12's python3-psycopg)
with the connect-time settings of an application, for
300_driver_settings.t.

Three connections (autocommit), as Django 4.2's psycopg 3 backend and a
tenant-per-schema app would leave them: each runs SET TIME ZONE through a
ClientCursor (the value bound on the client side: SET takes no
parameters), and the two tenants also set_config('search_path', %s,
false) (bound on the server) and SET lock_timeout.  "plain" keeps UTC and
the default search_path; tenant_b prepares every query on the server from
its first run (prepare_threshold = 0), the others after psycopg's 5.
Each reports the settings its session holds after that (pg_settings whose
source is 'session'); then for --rounds rounds they take turns, each
running SELECT who FROM items and a SELECT of its time zone, search_path,
lock_timeout, now()'s UTC offset and pg_backend_pid(): two transactions
of their own in even rounds, one conn.transaction() block in odd ones.

    /usr/bin/python3 tests/clients/psycopg_settings_client.py --port PORT
        [--host H] [--user U] [--password P] [--database D] [--rounds N]

It prints one JSON line: {"driver": "psycopg3", "clients": [{"id",
"session", "answers", "backends", "failure_count", "failures"}]}, or
{"fatal": ...}; then keeps the connections open until it reads "stop" (or
EOF) on stdin, and closes them.
"""
import argparse
import json
import sys

import psycopg

CLIENTS = (  # id, time zone, schema (None: the default search_path), lock_timeout, row, threshold
    ('plain', 'UTC', None, None, 'public', 5),
    ('tenant_a', 'Asia/Kolkata', 'tenant_a', '2s', 'a', 5),
    ('tenant_b', 'America/Los_Angeles', 'tenant_b', '3s', 'b', 0),
)
LOOK = ("SELECT current_setting('TimeZone'), current_setting('search_path'), "
        "current_setting('lock_timeout'), (EXTRACT(timezone FROM now()) / 60)::int, pg_backend_pid(), %s::int")


def connect(o, cid, tz, schema, lock_timeout, threshold):
    conn = psycopg.connect(host=o.host, port=o.port, user=o.user, password=o.password, dbname=o.database,
                           autocommit=True, prepare_threshold=threshold)
    psycopg.ClientCursor(conn).execute('SET TIME ZONE %s', [tz])
    if schema:
        conn.execute("SELECT set_config('search_path', %s, false)", [schema])
        conn.execute("SET lock_timeout = '%s'" % lock_timeout)
    return conn


def one_round(r, conn, spec, res):
    cid, tz, schema, lock_timeout, row, _ = spec

    def look():
        who = [w for (w,) in conn.execute('SELECT who FROM items').fetchall()]
        got = conn.execute(LOOK, [r]).fetchone()
        return who, list(got[:4]), got[4], got[5]

    if r % 2:
        with conn.transaction():
            who, got, pid, echo = look()
    else:
        who, got, pid, echo = look()
    res['answers'].append([r, who] + got)
    if pid not in res['backends']:
        res['backends'].append(pid)
    want = [[row], tz, schema or '"$user", public', lock_timeout or '0', r]
    if [who] + got[:3] + [echo] != want:
        res['failure_count'] += 1
        if len(res['failures']) < 10:
            res['failures'].append('round %d: %r, want %r' % (r, [who] + got[:3] + [echo], want))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--user', default='app')
    ap.add_argument('--password', default='app-secret')
    ap.add_argument('--database', default='movr')
    ap.add_argument('--rounds', type=int, default=10)
    o = ap.parse_args()
    conns, results = [], []
    try:
        for spec in CLIENTS:
            conn = connect(o, *spec[:4], spec[5])
            conns.append(conn)
            session = dict(conn.execute("SELECT name, setting FROM pg_settings WHERE source = 'session' "
                                        "ORDER BY name").fetchall())
            results.append({'id': spec[0], 'session': session, 'answers': [], 'backends': [],
                            'failure_count': 0, 'failures': []})
    except Exception as e:
        print(json.dumps({'fatal': '%s: %s' % (type(e).__name__, e)}), flush=True)
        sys.exit(1)
    for r in range(o.rounds):
        for conn, spec, res in zip(conns, CLIENTS, results):
            try:
                one_round(r, conn, spec, res)
            except Exception as e:  # counted: the test reports it
                res['failure_count'] += 1
                res['failures'].append('round %d: %s: %s' % (r, type(e).__name__, e))
    print(json.dumps({'driver': 'psycopg3', 'clients': results}), flush=True)
    for line in sys.stdin:
        if line.strip() == 'stop':
            break
    for conn in conns:
        conn.close()


if __name__ == '__main__':
    main()
