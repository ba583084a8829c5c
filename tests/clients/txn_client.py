#!/usr/bin/env python3
"""txn_client.py: psycopg 3 sessions under pool_mode = transaction, for
251_txn_drivers.t; the same transactions as tests/node/txn_client.js.

It opens --clients connections (autocommit), each run by a thread of its
own, all at once.  psycopg prepares a query on the server (a named
statement, _pg3_N) once it has run prepare_threshold times: connections
of an even number set prepare_threshold=0, so that every query is
prepared from its first run, the odd ones keep the default (5).  Each
does --txns transactions, a mix of: the query q_K ('SELECT %s::int + K',
K cycling through 0 .. --names - 1: that many distinct statements),
another parameterized query, a block in conn.transaction() (BEGIN ...
COMMIT) whose statements must see their own uncommitted row and all run
on one backend, and a ROLLBACK block (explicit BEGIN ... ROLLBACK, or
psycopg.Rollback out of conn.transaction()) whose row must be gone after.
A ROLLBACK makes psycopg drop its prepared statements: it sends DEALLOCATE
ALL before its next query.  Rows go to the table txn_rows (client text, n
int, v int), keyed by the client's id (--tag and its number), which the
test makes beforehand.  Every result is checked; pg_backend_pid() comes
with each, and the distinct ones are reported.

    /usr/bin/python3 tests/clients/txn_client.py --port PORT [--host H]
        [--user U] [--password P] [--database D] [--clients N] [--txns N]
        [--names N] [--seconds S] [--tag T] [--app NAME]

Every connection logs in with application_name --app and client_encoding
UTF8, the startup parameters node-postgres sends: under transaction
pooling a server connection serves only clients of exactly its startup
parameters, and these share theirs with txn_client.js's.

When all are done it prints one JSON line, as txn_client.js does (each
client also says its "prepare_threshold"), then keeps every connection
open until it reads "stop" (or EOF) on stdin, and closes them.
"""
import argparse
import json
import sys
import threading
import time

import psycopg

KINDS = 5


def run_client(conn, cid, o, deadline, res):
    backends = set()

    def fail(what):
        res['failure_count'] += 1
        if len(res['failures']) < 10:
            res['failures'].append(what)

    def check(what, got, want):
        if str(got) == str(want):
            res['ok'] += 1
            return True
        fail('%s: got %r, want %r' % (what, got, want))
        return False

    def one(sql, params=None):
        """The one row of a statement, its last column pg_backend_pid(), noted."""
        row = conn.execute(sql, params).fetchone()
        if row is not None:
            backends.add(row[-1])
        return row

    committed, n = 0, 0
    for i in range(o.txns):
        if time.time() > deadline:
            fail('out of time after %d of %d transactions' % (i, o.txns))
            break
        kind = i % KINDS
        try:
            if kind == 0:
                k = i % o.names
                row = one('SELECT %%s::int + %d, pg_backend_pid()' % k, (i,))
                res['transactions'] += 1
                check('q_%d(%d)' % (k, i), row[0], i + k)
            elif kind == 1:
                row = one("SELECT %s::text || ':' || %s::int, pg_backend_pid()", (cid, i))
                res['transactions'] += 1
                check('unnamed (%d)' % i, row[0], '%s:%d' % (cid, i))
            elif kind == 2:
                v = i * 7
                with conn.transaction():
                    p0 = one('INSERT INTO txn_rows (client, n, v) VALUES (%s, %s, %s) RETURNING pg_backend_pid()',
                             (cid, n, v))[0]
                    row = one('SELECT v, pg_backend_pid() FROM txn_rows WHERE client = %s AND n = %s', (cid, n))
                    check('commit block %d: its own uncommitted row' % i, row[0] if row else 'no row', v)
                    check('commit block %d: the same backend (select)' % i, row[-1] if row else None, p0)
                    row = one('SELECT count(*), pg_backend_pid() FROM txn_rows WHERE client = %s', (cid,))
                    check('commit block %d: its rows, the new one counted' % i, row[0], committed + 1)
                    check('commit block %d: the same backend (count)' % i, row[-1], p0)
                    k = i % o.names
                    row = one('SELECT %%s::int + %d, pg_backend_pid()' % k, (v,))
                    check('commit block %d: q_%d inside' % (i, k), row[0], v + k)
                    check('commit block %d: the same backend (q_%d)' % (i, k), row[-1], p0)
                res['transactions'] += 1
                committed += 1
                n += 1
            elif kind == 3:
                v = -i
                explicit = (i // KINDS) % 2 == 0
                if explicit:
                    conn.execute('BEGIN')
                    p0 = one('INSERT INTO txn_rows (client, n, v) VALUES (%s, %s, %s) RETURNING pg_backend_pid()',
                             (cid, n, v))[0]
                    row = one('SELECT count(*), pg_backend_pid() FROM txn_rows WHERE client = %s', (cid,))
                    check('rollback block %d: its rows, the new one counted' % i, row[0], committed + 1)
                    check('rollback block %d: the same backend' % i, row[-1], p0)
                    conn.execute('ROLLBACK')
                else:
                    with conn.transaction():
                        p0 = one('INSERT INTO txn_rows (client, n, v) VALUES (%s, %s, %s) RETURNING pg_backend_pid()',
                                 (cid, n, v))[0]
                        row = one('SELECT count(*), pg_backend_pid() FROM txn_rows WHERE client = %s', (cid,))
                        check('rollback block %d: its rows, the new one counted' % i, row[0], committed + 1)
                        check('rollback block %d: the same backend' % i, row[-1], p0)
                        raise psycopg.Rollback()
                res['transactions'] += 1
                row = one('SELECT count(*), pg_backend_pid() FROM txn_rows WHERE client = %s', (cid,))
                res['transactions'] += 1
                check('rollback block %d: the row is gone after ROLLBACK' % i, row[0], committed)
                row = one('SELECT count(*), pg_backend_pid() FROM txn_rows WHERE client = %s AND n = %s', (cid, n))
                res['transactions'] += 1
                check('rollback block %d: row %d is not there' % (i, n), row[0], 0)
            else:
                # Not prepared, whatever the threshold: an unnamed statement every time.
                row = conn.execute('SELECT count(*), pg_backend_pid() FROM txn_rows WHERE client = %s', (cid,),
                                   prepare=False).fetchone()
                backends.add(row[-1])
                res['transactions'] += 1
                check('unprepared query %d: its committed rows' % i, row[0], committed)
        except Exception as e:  # report, and go on: a failure is what the test counts
            fail('transaction %d (kind %d): %s%s' % (i, kind, (getattr(e, 'sqlstate', None) or '') + ' ', e))
            try:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.execute('ROLLBACK')
            except Exception as e2:
                fail('ROLLBACK after the failure: %s' % e2)
        if i == o.txns - 1:
            res['finished'] = True
    res['backends'] = sorted(backends)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--user', default='app')
    ap.add_argument('--password', default='app-secret')
    ap.add_argument('--database', default='movr')
    ap.add_argument('--clients', type=int, default=8)
    ap.add_argument('--txns', type=int, default=200)
    ap.add_argument('--names', type=int, default=3)
    ap.add_argument('--seconds', type=float, default=40)
    ap.add_argument('--tag', default='py')
    ap.add_argument('--app', default='txn-client')
    ap.add_argument('--prepared-max', type=int, default=0,
                    help="psycopg's own cache of prepared statements (0: its default); "
                         "past it psycopg evicts with DEALLOCATE name")
    o = ap.parse_args()
    try:
        conns = []
        for k in range(o.clients):
            extra = {'prepare_threshold': 0} if k % 2 == 0 else {}
            conns.append(psycopg.connect(host=o.host, port=o.port, user=o.user, password=o.password,
                                         dbname=o.database, application_name=o.app,
                                         client_encoding='UTF8', autocommit=True, **extra))
            if o.prepared_max > 0:
                conns[-1].prepared_max = o.prepared_max
    except Exception as e:
        print(json.dumps({'fatal': str(e)}), flush=True)
        sys.exit(1)
    deadline = time.time() + o.seconds
    results, threads = [], []
    for k, conn in enumerate(conns):
        res = {'id': '%s-%d' % (o.tag, k), 'finished': False, 'ok': 0, 'transactions': 0,
               'failure_count': 0, 'failures': [], 'backends': [],
               'prepare_threshold': conn.prepare_threshold}
        results.append(res)
        t = threading.Thread(target=run_client, args=(conn, res['id'], o, deadline, res))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    print(json.dumps({'clients': results}), flush=True)
    for line in sys.stdin:
        if line.strip() == 'stop':
            break
    for conn in conns:
        conn.close()


if __name__ == '__main__':
    main()
