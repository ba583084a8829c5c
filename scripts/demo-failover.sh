#!/bin/sh
# The demo's failover while the old primary runs on: eu-west, a streaming
# standby of us-east in the running demo (scripts/demo.sh), is promoted
# (pg_ctl promote) while us-east goes on running as a primary, as in the
# first seconds of a failover whose old primary is cut off rather than
# dead.  pgnear fences us-east as a former primary: SHOW REGIONS says so,
# and why; a session from Boston that needs a primary, whose nearest
# region is us-east, lands on eu-west; none goes to us-east.  Afterwards
# the demo's primary is eu-west: scripts/demo.sh starts it afresh.  Run
# again, it finds eu-west promoted already and shows the same.
#   scripts/demo-failover.sh
# Run as root (it promotes eu-west as the user postgres).
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
psql="$PG_BINDIR/psql"

say() { echo "demo-failover: $*"; }
fail() {
    echo "demo-failover: $*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || fail "run it as root, as scripts/demo.sh: it promotes eu-west as postgres"
run=$top/demo-run
[ -L "$run" ] && run=$(readlink "$run")
if [ ! -f "$run/pgnear.ini" ] || [ ! -f "$run/pgnear.pid" ] || ! kill -0 "$(cat "$run/pgnear.pid")" 2>/dev/null; then
    fail "the demo is not running in $top: start it with scripts/demo.sh"
fi
[ -d "$run/eu-west" ] || fail "the running demo has no eu-west data directory in $run"
port=$(sed -n 's/^listen_port = \([0-9]*\)$/\1/p' "$run/pgnear.ini")
admin="host=127.0.0.1 port=$port dbname=pgnear user=admin password=admin-secret"
boston="host=127.0.0.1 port=$port dbname=movr user=app password=app-secret options='-c pgnear.location=42.36,-71.06 -c pgnear.target_session_attrs=read-write'"
as_postgres="setpriv --reuid=postgres --regid=postgres --init-groups env --chdir=/ HOME=$(getent passwd postgres | cut -d: -f6)"

# SHOW REGIONS' region, port, role and fenced columns, read by their names.
regions() {
    "$psql" -X -A -P footer=off "$admin" -c 'SHOW REGIONS' | awk -F'|' '
        NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        { printf "  %-10s %-6s %-15s %s\n", $c["region"], $c["port"], $c["role"], $c["fenced"] }'
}
role_of() { regions | awk -v r="$1" '$1 == r { $1 = ""; $2 = ""; sub(/^ +/, ""); print; exit }'; }

say "before: each host's role, as pgnear's health checks see it"
regions
if [ "$($as_postgres "$PG_BINDIR/pg_controldata" "$run/eu-west" | sed -n 's/^Database cluster state: *//p')" = "in production" ]; then
    say "eu-west was promoted already (an earlier run)"
else
    say "promoting eu-west while us-east runs on: pg_ctl promote"
    $as_postgres "$PG_BINDIR/pg_ctl" -D "$run/eu-west" -w promote >/dev/null ||
        fail "pg_ctl promote of eu-west failed (log: $run/eu-west.log)"
fi
i=0
until role_of us-east | grep -q '^former primary'; do
    i=$((i + 1))
    [ "$i" -le 100 ] || fail "us-east is not fenced 20 s after eu-west's promotion; SHOW REGIONS:
$(regions)"
    sleep 0.2
done
say "after: us-east says primary, but eu-west is on a newer timeline: us-east is fenced"
regions
where=$("$psql" -X -At "$boston" -c "SELECT current_setting('cluster_name') || ', in recovery: ' || pg_is_in_recovery()")
say "a session from Boston that needs a primary (its nearest region is us-east) lands on: $where"
case $where in
eu-west,*false) ;;
*) fail "it should have landed on eu-west, a primary" ;;
esac
say "us-east takes no session or transaction until it follows eu-west (pg_rewind, then a restart as a standby); scripts/demo.sh starts the demo afresh"
