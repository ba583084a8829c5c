#!/usr/bin/env python3
"""listen_client.py: psycopg 3's own LISTEN usage through pgnear, for
283_listen.t, as psycopg's notify tests do it: an autocommit connection
LISTENs and reads conn.notifies(); another sends 50 notifications; then
the listener sends one itself.  Each must come, in order, with the
channel, the payload and the sender's pid: the connection's own
(info.backend_pid, its BackendKeyData), as a client that skips its own
notifications compares it.  Prints "ok 50 notifications, own pid, other client
ran", or "fail: why".

    /usr/bin/python3 tests/clients/listen_client.py --port PORT [--host H]
        [--user U] [--password P] [--database D]
"""
import argparse
import sys
import threading

import psycopg

N = 50


def collect(conn, count, secs):
    """The next count notifications of conn.notifies(), as many as came within secs.

    (psycopg 3.1's generator takes no timeout: it runs in a thread of its own.)
    """
    out = []

    def run():
        for n in conn.notifies():
            out.append((n.pid, n.channel, n.payload))
            if len(out) >= count:
                break

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(secs)
    return list(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--user', default='app')
    ap.add_argument('--password', default='app-secret')
    ap.add_argument('--database', default='movr')
    o = ap.parse_args()

    def connect():
        return psycopg.connect(host=o.host, port=o.port, user=o.user, password=o.password,
                               dbname=o.database, autocommit=True)

    listener, sender = connect(), connect()
    listener.execute('LISTEN "Boom"')
    sent = []
    for i in range(1, N + 1):
        sender.execute("SELECT pg_notify('Boom', %s)", (str(i),))
        sent.append((sender.info.backend_pid, 'Boom', str(i)))
    heard = collect(listener, N, 10)
    if heard != sent:
        raise RuntimeError('heard %d of %d, first difference at %s' % (
            len(heard), N, next((i for i, (a, b) in enumerate(zip(heard, sent)) if a != b), len(heard))))
    # One that comes with a query's answer goes to the handlers (as its own does directly,
    # before the ReadyForQuery); one that comes after, to notifies().
    during = []
    listener.add_notify_handler(lambda n: during.append((n.pid, n.channel, n.payload)))
    listener.execute("SELECT pg_notify('Boom', 'self')")
    own = listener.info.backend_pid
    heard = during if during else collect(listener, 1, 5)
    if heard != [(own, 'Boom', 'self')]:
        raise RuntimeError('own notification: %r, its pid %d' % (heard, own))
    listener.execute('UNLISTEN *')
    listener.close()
    sender.close()
    print('ok %d notifications, own pid, other client ran' % N)


if __name__ == '__main__':
    try:
        main()
    except Exception as e:  # reported to the test, which names the driver
        print('fail: %s' % e)
        sys.exit(1)
