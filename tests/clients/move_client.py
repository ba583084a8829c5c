#!/usr/bin/env python3
"""move_client.py: a psycopg 3 session that an admin moves between servers
while it works, for 232_move_drivers.t; the same checks as
tests/node/move_client.js.  It sets up what a session carries (settings,
SET ROLE, a statement of SQL PREPARE, statements psycopg prepares on the
server by the extended protocol, LISTEN), prints "ready", then checks all
of it in a loop until it reads "stop" on stdin or --seconds pass.  Every
notification of the channel "moves" it receives is kept by its payload.
Each time its backend changes it prints "switch N".

    python3 tests/clients/move_client.py --port PORT [--host H] [--user U]
        [--password P] [--database D] [--options OPTS] [--app NAME]
        [--role R] [--seconds S]

At the end it prints one JSON line, as move_client.js does.
"""
import argparse
import json
import select
import sys
import time

import psycopg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--user', default='app')
    ap.add_argument('--password', default='app-secret')
    ap.add_argument('--database', default='movr')
    ap.add_argument('--options', default='')
    ap.add_argument('--app', default='move-client')
    ap.add_argument('--role', default='reader')
    ap.add_argument('--seconds', type=float, default=120)
    o = ap.parse_args()
    conn = psycopg.connect(host=o.host, port=o.port, user=o.user, password=o.password,
                           dbname=o.database, application_name=o.app,
                           options=o.options or None, autocommit=True,
                           prepare_threshold=0)
    notified = set()

    def on_notify(n):
        if n.channel == 'moves':
            notified.add(int(n.payload))

    conn.add_notify_handler(on_notify)
    expected = [
        ('SHOW statement_timeout', '41s'),
        ('SHOW DateStyle', 'ISO, DMY'),
        ('SHOW search_path', 'public, pg_catalog'),
        ('SELECT current_user', o.role),
        ('EXECUTE sql_add(40)', '42'),
        ("SELECT string_agg(c, ',' ORDER BY c) FROM pg_listening_channels() c", 'moves,other'),
    ]
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = '41s'", prepare=False)
        cur.execute("SET DateStyle = 'ISO, DMY'", prepare=False)
        cur.execute('SET search_path = public, pg_catalog', prepare=False)
        cur.execute('SET ROLE %s' % o.role, prepare=False)
        cur.execute('PREPARE sql_add(int) AS SELECT $1 + 2', prepare=False)
        cur.execute('LISTEN moves', prepare=False)
        cur.execute('LISTEN other', prepare=False)
    print('ready', flush=True)
    deadline = time.time() + o.seconds
    failures, failure_count, iterations, switches, last = [], 0, 0, 0, None
    backends = set()

    def fail(what):
        nonlocal failure_count
        failure_count += 1
        if len(failures) < 10:
            failures.append(what)

    while time.time() < deadline:
        if select.select([sys.stdin], [], [], 0)[0] and sys.stdin.readline().strip() == 'stop':
            break
        iterations += 1
        try:
            with conn.cursor() as cur:
                for sql, want in expected:
                    cur.execute(sql, prepare=False)
                    got = str(cur.fetchone()[0])
                    if got != want:
                        fail('%s: got %s, want %s' % (sql, got, want))
                # prepare=True: psycopg prepares these on the server (named, extended protocol).
                cur.execute('SELECT %s::text || %s::text', ('a', str(iterations)), prepare=True)
                got = cur.fetchone()[0]
                if got != 'a%d' % iterations:
                    fail('prepared concat: %r' % (got,))
                cur.execute('SELECT pg_backend_pid()', prepare=True)
                pid = cur.fetchone()[0]
                if last is not None and pid != last:
                    switches += 1
                    # Told at once, so that the test moves it again only after it saw this move.
                    print('switch %d' % switches, flush=True)
                last = pid
                backends.add(pid)
        except Exception as e:  # report, and go on: a failure is what the test counts
            fail('iteration %d: %s' % (iterations, e))
    for _ in range(3):
        conn.execute('SELECT 1')
        time.sleep(0.1)
    print(json.dumps({'iterations': iterations, 'failures': failures,
                      'failure_count': failure_count, 'backends': len(backends),
                      'switches': switches, 'notified': sorted(notified)}), flush=True)
    conn.close()


if __name__ == '__main__':
    main()
