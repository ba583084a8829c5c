#!/bin/sh
# The demo: a PostgreSQL 15 primary as the region us-east and two
# streaming standbys of it as us-west and eu-west, a cluster of its own as
# eu-central, pgnear in front of them, and lines to try: routing by city
# and by what a session needs (a writable primary, a standby to read from,
# a read that sees a write, reads near with writes forwarded), the admin
# console, the MovR schema migrations of conf/migrations/ (run in us-east,
# replayed by the standbys), moving
# the database movr to eu-central and back while clients keep working,
# moving one city's rows of movr_cities, a database homed by city, to
# eu-central while every city writes (scripts/demo-city.sh), a
# WebSocket client (the Neon serverless driver of tests/node) and the
# Prometheus metrics.
#   scripts/demo.sh          install, build, start (a running demo is stopped first)
#   scripts/demo.sh stop     stop what the demo started
# Its files (configuration, certificates, logs, the clusters' data) are in
# demo-run/.  PostgreSQL runs as the user postgres, which must be able to
# reach them: when it cannot enter the checkout (under /root, which is
# drwx------, say), they go to a directory of their own under /var/tmp
# instead, and demo-run is a link to it.  Run as root.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
link="$top/demo-run"
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
# (from /: the postgres user may not be allowed into the current directory;
# with its own HOME, set again once install-deps.sh has made the user: a
# server's libpq connection, a subscription's, looks for a client
# certificate in ~/.postgresql, and may not read root's)
postgres_user() {
    as_postgres="setpriv --reuid=postgres --regid=postgres --init-groups env --chdir=/ HOME=$(getent passwd postgres | cut -d: -f6)"
}
postgres_user
# name:location:port:kind; kind: the primary, a streaming standby of it, or
# a cluster of its own
regions="us-east:39.04,-77.49:25501:primary us-west:45.60,-121.18:25502:standby
 eu-west:53.35,-6.26:25503:standby eu-central:50.11,8.68:25504:own"
port=${PGNEAR_PORT:-6432}
ws_port=${PGNEAR_WS_PORT:-6480}
metrics_port=${PGNEAR_METRICS_PORT:-9187}
run=""

say() { echo "demo: $*"; }
warn() { echo "demo: $*" >&2; }
fail() {
    warn "$@"
    exit 1
}

# Is process PID alive (not gone, not a zombie)?
alive() {
    [ -r "/proc/$1/stat" ] || return 1
    state=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

cmdline() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline"; }

# The pgnear processes running on the configuration DIR/pgnear.ini, for
# each DIR given (the demo's own, however it was found).
pgnear_on() {
    for f in /proc/[0-9]*/cmdline; do
        c=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
        for dir in "$@"; do
            case $c in
            pgnear" -d $dir/pgnear.ini " | */pgnear" -d $dir/pgnear.ini ")
                p=${f#/proc/}
                echo "${p%/cmdline}"
                ;;
            esac
        done
    done
}

# What listens on TCP port PORT (any address, IPv4 or IPv6): "PID COMMAND"
# lines; status 1 when nothing does.  Read from /proc: no ss needed.
listeners() {
    hex=$(printf '%04X' "$1")
    inodes=$(awk -v p="$hex" 'FNR > 1 && $4 == "0A" { n = split($2, a, ":"); if (a[n] == p) print $10 }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null) || true
    [ -n "$inodes" ] || return 1
    found=""
    for ino in $inodes; do
        for fd in $(find /proc/[0-9]*/fd -lname "socket:\[$ino\]" 2>/dev/null); do
            pid=${fd#/proc/}
            pid=${pid%%/*}
            case " $found " in *" $pid "*) continue ;; esac
            found="$found $pid"
            echo "pid $pid: $(cmdline "$pid")"
        done
    done
    [ -n "$found" ] || echo "a process this user cannot see"
    return 0
}

# Stops what the demo in directory $1 started: the pgnear whose pid it
# wrote (and any other pgnear on its configuration), then its clusters.
stop_all() {
    dir=$1
    pids=$(cat "$dir/pgnear.pid" 2>/dev/null || true)
    for pid in $pids $(pgnear_on "$dir" "$link"); do
        case $pid in '' | *[!0-9]*) continue ;; esac
        alive "$pid" || continue
        case $(cmdline "$pid") in
        *pgnear*" -d "*/pgnear.ini*) ;;
        *)
            warn "pid $pid in $dir/pgnear.pid is no longer pgnear; left alone"
            continue
            ;;
        esac
        # SIGINT closes the sessions at once; SIGTERM would wait for them.
        kill -INT "$pid" 2>/dev/null || true
        i=0
        while alive "$pid" && [ "$i" -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        if alive "$pid"; then
            warn "pgnear (pid $pid) did not stop in 10 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped pgnear (pid $pid)"
    done
    rm -f "$dir/pgnear.pid"
    for r in $regions; do
        name=${r%%:*}
        [ -f "$dir/$name/postmaster.pid" ] || continue
        $as_postgres "$PG_BINDIR/pg_ctl" -D "$dir/$name" status >/dev/null 2>&1 || continue
        if $as_postgres "$PG_BINDIR/pg_ctl" -D "$dir/$name" -m fast -w stop >/dev/null; then
            say "stopped PostgreSQL of region $name"
        else
            warn "could not stop PostgreSQL in $dir/$name (log: $dir/$name.log)"
        fi
    done
}

# The directory of the demo that ran last, if any.
last_run() {
    if [ -L "$link" ]; then
        readlink "$link"
    elif [ -d "$link" ]; then
        echo "$link"
    fi
}

[ "$(id -u)" -eq 0 ] || fail "run the demo as root: it installs packages and starts PostgreSQL as the user postgres"

if [ "${1:-}" = "stop" ]; then
    old=$(last_run)
    if [ -z "$old" ]; then
        say "nothing to stop: no demo-run in $top"
        exit 0
    fi
    stop_all "$old"
    p=$(sed -n 's/^listen_port = \([0-9]*\)$/\1/p' "$old/pgnear.ini" 2>/dev/null) || true
    port=${p:-$port}
    if who=$(listeners "$port"); then
        warn "port $port is still in use, by something this demo did not start:"
        echo "$who" >&2
    fi
    say "demo stopped (its files stay in $old)"
    exit 0
elif [ $# -gt 0 ]; then
    fail "unknown argument '$1' (usage: scripts/demo.sh [stop])"
fi

scripts/install-deps.sh
postgres_user
bin=$(scripts/build.sh)/pgnear

# A demo started before (from this checkout) is stopped and started afresh.
old=$(last_run)
[ -z "$old" ] || stop_all "$old"

# Anything else on the demo's ports would take its connections: pgnear
# shares its port with any other pgnear (SO_REUSEPORT), so clients would
# reach the old one, with the old certificates.
busy=""
for p in "$port" "$ws_port" "$metrics_port" 25501 25502 25503 25504; do
    if who=$(listeners "$p"); then
        warn "port $p is in use, by something this demo did not start:"
        echo "$who" | sed 's/^/    /' >&2
        busy="$busy $p"
    fi
done
[ -z "$busy" ] || fail "stop it first (kill PID), or give pgnear other ports with PGNEAR_PORT=6433, PGNEAR_WS_PORT or PGNEAR_METRICS_PORT"

if [ -n "$old" ]; then
    case $old in
    "$link" | /var/tmp/pgnear-demo.*) rm -rf "$old" ;;
    *) warn "demo-run linked to $old, which the demo did not make: left as it is" ;;
    esac
    rm -f "$link"
fi

# Where the files go: in the checkout when the user postgres can reach it.
if $as_postgres test -x "$top"; then
    run=$link
    mkdir -p "$run"
    where=""
else
    blocked=""
    d=$top
    while [ "$d" != / ]; do
        $as_postgres test -x "$d" 2>/dev/null || blocked=$d
        d=$(dirname "$d")
    done
    run=$(mktemp -d /var/tmp/pgnear-demo.XXXXXX)
    ln -s "$run" "$link"
    where="The user postgres cannot enter ${blocked:-$top} ($(stat -c '%A, owner %U' "${blocked:-$top}")),
so the demo's files are in $run (demo-run links to it)."
    say "the user postgres cannot enter ${blocked:-$top}: the demo's files go to $run (demo-run links to it)"
fi
chown postgres "$run"

# From here on, a failure stops what was started.
started=no
on_exit() {
    if [ "$started" = no ] && [ -n "$run" ]; then
        warn "the demo did not start; stopping what it had started (files: $run)"
        stop_all "$run" >&2
    fi
}
trap on_exit EXIT
trap 'exit 1' HUP INT TERM

# A throwaway CA and certificates, for TLS on both sides.
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=pgnear demo CA" \
    -keyout "$run/ca.key" -out "$run/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$run/server.key" \
    -out "$run/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n' >"$run/san.ext"
openssl x509 -req -in "$run/server.csr" -CA "$run/ca.crt" -CAkey "$run/ca.key" \
    -CAcreateserial -days 30 -extfile "$run/san.ext" -out "$run/server.crt" 2>/dev/null
chown postgres "$run/server.key" "$run/server.crt" "$run/ca.crt"
chmod 600 "$run/server.key"

# us-east is the primary; us-west and eu-west are its streaming standbys
# (pg_basebackup -R), the way most teams run PostgreSQL in several regions;
# eu-central is a cluster of its own, where a database can be moved.
# us-east's conf lines are copied with its files: a standby's own come
# after them.  wal_level = logical: a move copies by logical replication.
start_cluster() {
    cat >>"$run/$1/postgresql.conf" <<CONF
port = $2
wal_level = logical
listen_addresses = '127.0.0.1'
unix_socket_directories = '$run'
cluster_name = '$1'
ssl = on
ssl_cert_file = '$run/server.crt'
ssl_key_file = '$run/server.key'
CONF
    if ! $as_postgres "$PG_BINDIR/pg_ctl" -D "$run/$1" -l "$run/$1.log" -w start >/dev/null; then
        tail -n 20 "$run/$1.log" >&2 || true
        fail "PostgreSQL of region $1 did not start (log: $run/$1.log)"
    fi
}

# The roles, made in us-east and given to eu-central with the same SCRAM
# secrets: app, the application's; pgnear, the superuser pgnear connects
# as (moving a database creates a subscription, which PostgreSQL 15 lets
# only a superuser do).
make_roles() {
    $psql -c "CREATE ROLE app LOGIN PASSWORD 'app-secret'"
    $psql -c "CREATE ROLE pgnear LOGIN SUPERUSER PASSWORD 'pgnear-secret'"
    verifier=$($psql -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'")
    pgnear_verifier=$($psql -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'pgnear'")
    # The console's admin needs a SCRAM secret in auth_file only, not a
    # role in any region: the server makes it, and forgets the role.
    $psql -c "CREATE ROLE pgnear_demo_admin PASSWORD 'admin-secret'"
    admin_verifier=$($psql -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'pgnear_demo_admin'")
    $psql -c "DROP ROLE pgnear_demo_admin"
    $psql -c "CREATE DATABASE movr OWNER app"
    # What the migrations make there, as pgnear, the application may use.
    $psql -d movr -c "ALTER DEFAULT PRIVILEGES FOR ROLE pgnear GRANT ALL ON TABLES TO app" \
        -c "ALTER DEFAULT PRIVILEGES FOR ROLE pgnear GRANT ALL ON SEQUENCES TO app"
    make_movr_cities
}

# movr_cities: a small MovR whose rows are homed by their city
# ([database movr_cities] home_by = city), for MOVE CITY
# (scripts/demo-city.sh).  movr keeps MovR's own schema, whose key
# rides (rider_city, rider_id) -> users (city, id) lets a ride leave its
# city, which MOVE CITY refuses.  Here ids are UUIDs, the city is in every
# homed table's primary key, each foreign key pairs city with city, and
# promo_codes, without the column, is a reference table.  Owned by app.
make_movr_cities() {
    $psql -c "CREATE DATABASE movr_cities OWNER app"
    $psql -d movr_cities -v ON_ERROR_STOP=1 <<'SQL'
SET ROLE app;
CREATE TABLE users (city text, id uuid DEFAULT gen_random_uuid(), name text NOT NULL,
    address text, PRIMARY KEY (city, id));
CREATE TABLE vehicles (city text, id uuid DEFAULT gen_random_uuid(), type text NOT NULL,
    owner_id uuid, status text NOT NULL DEFAULT 'available', PRIMARY KEY (city, id),
    FOREIGN KEY (city, owner_id) REFERENCES users (city, id));
CREATE TABLE rides (city text, id uuid DEFAULT gen_random_uuid(), rider_id uuid,
    vehicle_id uuid, start_address text, start_time timestamptz NOT NULL DEFAULT now(),
    revenue numeric(10, 2), PRIMARY KEY (city, id),
    FOREIGN KEY (city, rider_id) REFERENCES users (city, id),
    FOREIGN KEY (city, vehicle_id) REFERENCES vehicles (city, id));
CREATE TABLE promo_codes (code text PRIMARY KEY, description text);
-- 50 riders, 10 vehicles and 100 rides in each of four cities
INSERT INTO users (city, name, address)
    SELECT c, initcap(c) || ' rider ' || g, g || ' Main Street'
    FROM unnest(ARRAY['new york', 'boston', 'amsterdam', 'paris']) c, generate_series(1, 50) g;
CREATE TEMP VIEW numbered AS
    SELECT city, id, row_number() OVER (PARTITION BY city ORDER BY id) AS k FROM users;
INSERT INTO vehicles (city, type, owner_id) SELECT city, 'scooter', id FROM numbered WHERE k <= 10;
INSERT INTO rides (city, rider_id, vehicle_id, start_address, revenue)
    SELECT v.city, u.id, v.id, 'the demo''s first rides', 12.5
    FROM vehicles v JOIN numbered u ON u.city = v.city AND u.k <= 10;
INSERT INTO promo_codes SELECT 'promo_' || g, 'demo promotion ' || g FROM generate_series(1, 10) g;
SQL
}

primary_port=""
hosts_lines=""
for r in $regions; do
    name=${r%%:*}
    kind=${r##*:}
    rest=${r#*:}
    rest=${rest%:*}
    loc=${rest%:*}
    pgport=${rest##*:}
    case $kind in
    standby)
        $as_postgres "$PG_BINDIR/pg_basebackup" -D "$run/$name" -h "$run" -p "$primary_port" \
            -U postgres -R -X stream --checkpoint=fast >/dev/null ||
            fail "pg_basebackup of region $name from us-east failed"
        start_cluster "$name" "$pgport"
        ;;
    *)
        $as_postgres "$PG_BINDIR/initdb" -D "$run/$name" -U postgres --auth-local=trust \
            --auth-host=scram-sha-256 >/dev/null ||
            fail "initdb of region $name failed (in $run/$name)"
        start_cluster "$name" "$pgport"
        psql="$PG_BINDIR/psql -X -q -h $run -p $pgport -U postgres -d postgres"
        if [ "$kind" = primary ]; then
            primary_port=$pgport
            make_roles
        else
            $psql -c "CREATE ROLE app LOGIN PASSWORD '$verifier'"
            $psql -c "CREATE ROLE pgnear LOGIN SUPERUSER PASSWORD '$pgnear_verifier'"
        fi
        ;;
    esac
    hosts_lines="$hosts_lines
[region $name]
location = $loc
hosts = 127.0.0.1:$pgport
"
done

printf '"app" "%s"\n"admin" "%s"\n' "$verifier" "$admin_verifier" >"$run/userlist.txt"
chmod 600 "$run/userlist.txt"
geoip=""
if ls "$top"/conf/geoip/*.mmdb >/dev/null 2>&1; then
    geoip="geoip_db = $(ls "$top"/conf/geoip/*.mmdb | paste -sd, -)"
fi
# PostgreSQL over WebSocket when the Neon serverless driver's client can
# run (install-deps.sh installs Node.js and tests/node's modules).
websocket=""
ws_client="$top/tests/node/neon_client.js"
fence_client="$top/tests/node/fence_client.js"
node_ok=""
if command -v node >/dev/null 2>&1 && [ -d "$top/tests/node/node_modules/@neondatabase/serverless" ] &&
    [ -d "$top/tests/node/node_modules/pg" ]; then
    node_ok=yes
fi
if [ -n "$node_ok" ]; then
    # wss, with the demo's certificate: the driver sends its password as
    # soon as it connects (pipelineConnect = "password", its default), which
    # pgnear checks against the user's SCRAM secret.  (websocket_auth =
    # scram would make the driver compute SCRAM in JavaScript: seconds on a
    # busy machine.)
    websocket="websocket_port = $ws_port
websocket_tls = on"
fi
cat >"$run/pgnear.ini" <<CONF
[pgnear]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = $run
auth = scram
auth_file = $run/userlist.txt
client_tls = allow
client_tls_cert_file = $run/server.crt
client_tls_key_file = $run/server.key
server_tls = verify-full
server_tls_ca_file = $run/ca.crt
default_region = us-east
cities_file = $top/conf/cities.csv
$geoip
proxy_protocol = optional
trusted_proxies = 127.0.0.1/32
health_check_interval = 2s
server_conninfo = user=pgnear password=pgnear-secret
logfile = $run/pgnear.log
admin_users = admin
metrics_addr = 127.0.0.1:$metrics_port
$websocket
; the MovR steps, run by MIGRATE UP on the console in us-east, whose
; standbys in the other regions replay them
migrations_dir = $top/conf/migrations
migrations_db = movr
; as pgnear is meant to run (conf/pgnear.example.ini): each transaction on
; the nearest host that can run it, a write a standby refuses run again on
; the primary (the default, any, would leave a Dublin session's INSERT on
; eu-west's standby to fail with 25006)
target_session_attrs = nearest
$hosts_lines
; movr lives in us-east's cluster: its primary, and its standbys in us-west
; and eu-west (MOVE DATABASE movr TO REGION eu-central moves it)
[database movr]
regions = us-east, us-west, eu-west

; movr_cities, homed by city: each city's rows live in its home region,
; where the database lives (us-east's cluster) until the city is moved
; (MOVE CITY 'amsterdam' OF DATABASE movr_cities TO REGION eu-central)
[database movr_cities]
regions = us-east, us-west, eu-west
home_by = city
CONF

"$bin" --check "$run/pgnear.ini"
: >"$run/pgnear.log"
if ! "$bin" -d "$run/pgnear.ini"; then
    tail -n 20 "$run/pgnear.log" >&2 || true
    fail "pgnear did not start (log: $run/pgnear.log)"
fi

# pgnear -d returns once it has forked; the process that goes on logs its pid.
pid=""
i=0
while [ "$i" -lt 100 ]; do
    pid=$(sed -n 's/.* started (pid \([0-9]*\)).*/\1/p' "$run/pgnear.log" | tail -n 1)
    [ -n "$pid" ] && break
    grep -q 'FATAL' "$run/pgnear.log" && break
    sleep 0.1
    i=$((i + 1))
done
if [ -z "$pid" ] || ! alive "$pid"; then
    tail -n 20 "$run/pgnear.log" >&2 || true
    fail "pgnear is not running (log: $run/pgnear.log)"
fi
echo "$pid" >"$run/pgnear.pid"

# It must answer on its port, with this run's certificate, and route.
check="host=localhost hostaddr=127.0.0.1 port=$port dbname=movr user=app password=app-secret
 sslmode=verify-full sslrootcert=$run/ca.crt connect_timeout=10"
if ! got=$(PGAPPNAME=pgnear-demo "$PG_BINDIR/psql" -X -At "$check" -c 'SHOW cluster_name' 2>&1) ||
    [ "$got" != us-east ]; then
    echo "$got" >&2
    tail -n 20 "$run/pgnear.log" >&2 || true
    fail "pgnear (pid $pid) does not answer on 127.0.0.1:$port as it should (log: $run/pgnear.log)"
fi
started=yes

# Read your own write on a standby, end to end: a write with report_fence,
# then a read from Dublin with its fence, which must land on eu-west's
# standby and see the row.
fenced=""
if [ -n "$node_ok" ]; then
    if ! fenced=$(node "$fence_client" --port "$port" 2>&1) ||
        ! printf '%s\n' "$fenced" | grep -q 'on eu-west, a standby, row [0-9]* seen'; then
        echo "$fenced" >&2
        tail -n 20 "$run/pgnear.log" >&2 || true
        fail "pgnear (pid $pid) did not place a fenced read on the standby in eu-west (log: $run/pgnear.log)"
    fi
fi

app="host=127.0.0.1 port=$port dbname=movr user=app password=app-secret"
admin="host=127.0.0.1 port=$port dbname=pgnear user=admin password=admin-secret"
near="-c pgnear.city=Dublin"    # the file's target_session_attrs: nearest

# Reads near, writes forwarded, end to end: one Dublin session that names
# no need (the file's, nearest) reads on eu-west's standby, inserts a row (eu-west refuses it
# with 25006, and pgnear runs it again on us-east's primary), is shown by
# SHOW CLIENTS, and reads its row back, each statement saying where it
# ran.  Its table is made first, and is on eu-west before the session
# starts; so is eu-west's role, which the checks' first round may still be
# finding out.
ro_dublin="-c pgnear.city=Dublin -c pgnear.target_session_attrs=read-only"
"$PG_BINDIR/psql" -X -q "$app options='-c pgnear.target_session_attrs=read-write'" \
    -c 'CREATE TABLE IF NOT EXISTS pgnear_nearest_demo (id serial PRIMARY KEY, at timestamptz DEFAULT now())' ||
    fail "pgnear (pid $pid) could not create the table of the nearest session on us-east (log: $run/pgnear.log)"
eu_west_ready() {
    "$PG_BINDIR/psql" -X -At "$admin" -c 'SHOW REGIONS' 2>/dev/null |
        awk -F'|' '$1 == "eu-west" && $7 == "standby" { ok = 1 } END { exit !ok }' &&
        [ "$("$PG_BINDIR/psql" -X -At "$app options='$ro_dublin'" 2>/dev/null \
            -c "SELECT current_setting('cluster_name') || ' ' || (to_regclass('pgnear_nearest_demo') IS NOT NULL)")" = "eu-west true" ]
}
i=0
until eu_west_ready; do
    i=$((i + 1))
    [ "$i" -lt 50 ] || fail "pgnear (pid $pid) has no standby in eu-west with the table pgnear_nearest_demo after 10 s (log: $run/pgnear.log)"
    sleep 0.2
done
if ! nearest=$(PGAPPNAME=pgnear-demo-nearest DEMO_PSQL="$PG_BINDIR/psql" DEMO_ADMIN="$admin" \
    "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 "$app options='$near'" 2>&1 <<'SQL'
SELECT format('read on %s, %s', current_setting('cluster_name'),
              CASE WHEN pg_is_in_recovery() THEN 'a standby' ELSE 'the primary' END);
INSERT INTO pgnear_nearest_demo DEFAULT VALUES
  RETURNING id AS row, current_setting('cluster_name') AS node,
            CASE WHEN pg_is_in_recovery() THEN 'a standby' ELSE 'the primary' END AS role \gset
\echo wrote row :row on :node, :role
\! "$DEMO_PSQL" -X -A -P footer=off "$DEMO_ADMIN" -c 'SHOW CLIENTS' | awk -F'|' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next } $c["application_name"] == "pgnear-demo-nearest" { print "SHOW CLIENTS: reads_at " $c["reads_at"] ", writes_at " $c["writes_at"] ", forwarded " $c["forwarded"] }'
SELECT format('read back on %s, %s: row %s %s', current_setting('cluster_name'),
              CASE WHEN pg_is_in_recovery() THEN 'a standby' ELSE 'the primary' END, :row,
              CASE WHEN EXISTS (SELECT 1 FROM pgnear_nearest_demo WHERE id = :row)
                   THEN 'seen' ELSE 'NOT seen' END);
SQL
) || ! printf '%s\n' "$nearest" | grep -q '^read on eu-west, a standby$' ||
    ! printf '%s\n' "$nearest" | grep -q '^wrote row [0-9]* on us-east, the primary$' ||
    ! printf '%s\n' "$nearest" | grep -q '^SHOW CLIENTS: reads_at eu-west, writes_at us-east, forwarded 1$' ||
    ! printf '%s\n' "$nearest" | grep -q '^read back on .*: row [0-9]* seen$'; then
    echo "$nearest" >&2
    tail -n 20 "$run/pgnear.log" >&2 || true
    fail "pgnear (pid $pid) did not read near, forward the write to us-east and read it back for a Dublin session that needs nearest (log: $run/pgnear.log)"
fi
echo
echo "pgnear (pid $pid) is running on 127.0.0.1:$port in front of four regions (log: $run/pgnear.log):"
echo "a primary in us-east, its streaming standbys in us-west and eu-west, and a cluster of its own in eu-central."
[ -z "$where" ] || echo "$where"
rw="-c pgnear.target_session_attrs=read-write"
ro="-c pgnear.target_session_attrs=read-only"
cat <<MSG

Route a caller: a city in the startup options picks the region (no hint: default_region us-east).
  psql "$app options='-c pgnear.city=Tokyo'" -c 'SHOW cluster_name'
  psql "$app options='-c pgnear.city=Dublin'" -c 'SHOW cluster_name'
  psql "$app" -c 'SHOW cluster_name'
  $bin --explain $run/pgnear.ini city=Tokyo
  psql "host=localhost port=$port dbname=movr user=app password=app-secret sslmode=verify-full sslrootcert=$run/ca.crt channel_binding=require" -c 'SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()'

What a session needs (libpq's target_session_attrs names): writers to the primary, readers to the nearest standby.
  psql "$app options='-c pgnear.city=Dublin $rw'" -c 'SHOW cluster_name'    # us-east
  psql "$app options='-c pgnear.city=Dublin $ro'" -c 'SHOW cluster_name'    # eu-west
Read your own write from a standby: pgnear.min_lsn (a WAL position, or the pgnear.fence that
pgnear.report_fence=on sends a writer) puts the read where that position has been replayed.
  lsn=\$(psql "$app options='$rw'" -Atc 'SELECT pg_current_wal_lsn()')
  psql "$app options='-c pgnear.city=Dublin $ro -c pgnear.min_lsn=\$lsn'" -c 'SHOW cluster_name'
MSG
if [ -n "$node_ok" ]; then
    cat <<MSG
The same with the fence itself (node-postgres shows ParameterStatus; psql does not), as run just now:
  node $fence_client --port $port
$(printf '%s\n' "$fenced" | sed 's/^/    /')
MSG
fi
cat <<MSG

Reads near, writes forwarded: pgnear's own need, nearest, runs each transaction on the nearest host
that can run it.  A write eu-west refuses (25006) runs again on us-east, no SQL parsed, and the
session's next reads see it.  This demo's configuration sets target_session_attrs = nearest for all,
as conf/pgnear.example.ini does: a session that names no need gets it.
  psql "$app options='$near'"
    SELECT current_setting('cluster_name');    -- eu-west
    INSERT INTO pgnear_nearest_demo DEFAULT VALUES RETURNING current_setting('cluster_name');    -- us-east
  psql "$admin" -c 'SHOW CLIENTS'    # meanwhile: its reads_at eu-west, writes_at us-east, forwarded 1
  psql "$admin" -c "SHOW ROUTE FOR CITY 'Dublin' NEEDING nearest"
As run just now:
$(printf '%s\n' "$nearest" | sed 's/^/    /')

The admin console: the database pgnear, as user admin (or as root over the Unix socket: psql -h $run -p $port pgnear).
SHOW HELP lists its commands.
  psql "$admin" -c 'SHOW REGIONS'    # each host's role and lag
  psql "$admin" -c "SHOW ROUTE FOR CITY 'Tokyo'"
  psql "$admin" -c "SHOW ROUTE FOR CITY 'Tokyo' NEEDING read-write"

A schema migration: the MovR steps of conf/migrations/ for the database movr (the last renames a
column while the sessions of movr are held) run in us-east; the standbys of us-west and eu-west replay them.
  psql "$admin" -c 'MIGRATE PLAN'
  psql "$admin" -c 'MIGRATE UP'
  psql "$admin" -c 'SHOW MIGRATIONS'
  psql "$app options='-c pgnear.city=Dublin'" -c '\d users'    # after MIGRATE UP: payment_method

Move the database movr to eu-central while its clients keep working: the first command checks,
copies by logical replication and answers once the copy runs; the cutover holds movr's sessions at
their next transaction boundary and moves them there.  (With pgbench writing meanwhile: its table
pgbench_history has no primary key, which the move refuses; ALTER TABLE pgbench_history REPLICA
IDENTITY FULL first.)
  psql "$admin" -c 'MOVE DATABASE movr TO REGION eu-central'
  psql "$admin" -c 'SHOW MOVES'    # streaming, once every table is copied
  psql "$admin" -c 'MOVE DATABASE movr CUTOVER'
  psql "$app" -c 'SHOW cluster_name'    # eu-central
  psql "$admin" -c 'MOVE DATABASE movr REVERT'    # back to us-east, no write lost; FINISH instead ends the move

Home one city's rows in another region while every city writes: movr_cities, a small MovR homed by
city ([database movr_cities] home_by = city), keeps the rows of New York, Boston, Amsterdam and Paris
in us-east's cluster.  MOVE CITY copies Amsterdam's rows to eu-central, CUTOVER holds Amsterdam's
sessions alone (the other cities write on) and moves them there, FINISH deletes its rows in us-east.
This script runs it with a pgbench writer per city through pgnear (it fails unless 0 transactions
fail), then shows where each city's rows live and where each city's new sessions land; given
another city, it moves that one next, city by city (Paris joins Amsterdam in eu-central):
  scripts/demo-city.sh
  scripts/demo-city.sh paris
  psql "$admin" -c 'SHOW HOMES'
  psql "host=127.0.0.1 port=$port dbname=movr_cities user=app password=app-secret options='-c pgnear.city=Amsterdam'" -c 'SHOW cluster_name'    # eu-central, once moved

A failover whose old primary runs on: eu-west is promoted while us-east goes on as a primary, and
pgnear fences us-east (SHOW REGIONS says former primary, and why): no session or transaction goes
there, a Boston writer lands on eu-west.  Last, as it changes the demo (scripts/demo.sh restarts it):
  scripts/demo-failover.sh
MSG
if [ -n "$websocket" ]; then
    cat <<MSG

A WebSocket client: the Neon serverless driver, over wss on port $ws_port; a header as a CDN would send it places the caller.
  node $ws_client --port $ws_port --wss --ca $run/ca.crt --sql 'SHOW cluster_name'
  node $ws_client --port $ws_port --wss --ca $run/ca.crt --header 'X-City: Tokyo' --sql 'SHOW cluster_name'
MSG
else
    echo
    echo "(No WebSocket listener: Node.js or tests/node/node_modules is missing; scripts/install-deps.sh installs them.)"
fi
cat <<MSG

Prometheus metrics, and some load:
  curl -s http://127.0.0.1:$metrics_port/metrics | grep -E '^pgnear_(routing_decisions|host_up|websocket_upgrades)'
  pgbench -i "$app" && pgbench -S -T 5 "$app"

Stop it with: scripts/demo.sh stop
MSG
