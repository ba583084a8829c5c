#!/usr/bin/env python3
"""django_client.py: Django's connect path (Debian 12's python3-django 3.2
over psycopg2) through pgnear, for 300_driver_settings.t.

It runs the tiny project of django_site/ (its settings module says where
the server is, from its environment): three aliases on one database,
"default" and the tenants tenant_a and tenant_b.  Django's connect runs
SET TIME ZONE (USE_TZ: each alias's TIME_ZONE, UTC for default) and the
app's connection_created handler SET search_path for a tenant.  Each alias
opens its connection, reports the settings its session holds then (the
rows of pg_settings whose source is 'session': what the connect path set),
and then for --rounds rounds the aliases take turns: an ORM query of the
model Item (the table items of the schema its search_path finds) and a
cursor's SELECT of its time zone, search_path, now()'s UTC offset and
pg_backend_pid(), each a transaction of its own (autocommit) in even
rounds, both in one transaction.atomic() block in odd ones.  Every answer
is checked against what the alias set.

    /usr/bin/python3 tests/clients/django_client.py --port PORT [--host H]
        [--user U] [--password P] [--database D] [--rounds N]

(the flags go to the settings module as DRV_PORT and friends).

It prints one JSON line: {"driver": "django", "clients": [{"id", "session",
"answers", "backends", "failure_count", "failures"}]}, or {"fatal": ...};
then it keeps the connections open until it reads "stop" (or EOF) on
stdin, so that the test can look at them, and closes them.
"""
import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'django_site.settings')

import django  # noqa: E402

ALIASES = ('default', 'tenant_a', 'tenant_b')
WANT = {  # alias: (its table's row, its time zone, its search_path)
    'default': ('public', 'UTC', '"$user", public'),
    'tenant_a': ('a', 'Asia/Kolkata', 'tenant_a'),
    'tenant_b': ('b', 'America/Los_Angeles', 'tenant_b'),
}


def session_settings(conn):
    with conn.cursor() as c:
        c.execute("SELECT name, setting FROM pg_settings WHERE source = 'session' ORDER BY name")
        return dict(c.fetchall())


def one_round(r, alias, res, Item, connections, transaction):
    def look():
        who = list(Item.objects.using(alias).values_list('who', flat=True))
        with connections[alias].cursor() as c:
            c.execute("SELECT current_setting('TimeZone'), current_setting('search_path'), now(), "
                      "pg_backend_pid()")
            tz, sp, now, pid = c.fetchone()
        return who, tz, sp, int(now.utcoffset().total_seconds() // 60), pid

    if r % 2:
        with transaction.atomic(using=alias):
            who, tz, sp, offset, pid = look()
    else:
        who, tz, sp, offset, pid = look()
    res['answers'].append([r, who, tz, sp, offset])
    if pid not in res['backends']:
        res['backends'].append(pid)
    want = WANT[alias]
    if [who, tz, sp] != [[want[0]], want[1], want[2]]:
        res['failure_count'] += 1
        if len(res['failures']) < 10:
            res['failures'].append('round %d: %r, want %r' % (r, [who, tz, sp], want))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--user', default='app')
    ap.add_argument('--password', default='app-secret')
    ap.add_argument('--database', default='movr')
    ap.add_argument('--rounds', type=int, default=10)
    o = ap.parse_args()
    os.environ.update(DRV_HOST=o.host, DRV_PORT=str(o.port), DRV_USER=o.user, DRV_PASSWORD=o.password,
                      DRV_DB=o.database)
    try:
        django.setup()
        from django.db import connections, transaction
        from django_site.models import Item
        results = []
        for alias in ALIASES:
            connections[alias].ensure_connection()
            results.append({'id': alias, 'session': session_settings(connections[alias]), 'answers': [],
                            'backends': [], 'failure_count': 0, 'failures': []})
        for r in range(o.rounds):
            for alias, res in zip(ALIASES, results):
                try:
                    one_round(r, alias, res, Item, connections, transaction)
                except Exception as e:  # counted: the test reports it
                    res['failure_count'] += 1
                    res['failures'].append('round %d: %s: %s' % (r, type(e).__name__, e))
    except Exception as e:
        print(json.dumps({'fatal': '%s: %s' % (type(e).__name__, e)}), flush=True)
        sys.exit(1)
    print(json.dumps({'driver': 'django', 'clients': results}), flush=True)
    for line in sys.stdin:
        if line.strip() == 'stop':
            break
    connections.close_all()


if __name__ == '__main__':
    main()
