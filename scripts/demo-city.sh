#!/bin/sh
# The demo's city move, run against the running demo (scripts/demo.sh):
# the database movr_cities, a small MovR homed by city (rows of new york,
# boston, amsterdam and paris, all in us-east's cluster), has Amsterdam's
# rows homed in eu-central with one command while a MovR-like writer runs:
# one pgbench per city through pgnear, each session placed by its city,
# each transaction a ride started (a vehicle taken, a ride written).  It
# shows SHOW HOMES, runs MOVE CITY 'amsterdam' OF DATABASE movr_cities TO
# REGION eu-central, waits until SHOW MOVES says streaming, cuts over
# (amsterdam's sessions alone are held, and move to eu-central), finishes
# (amsterdam's rows are deleted in us-east), stops the writers and prints
# where each city's rows live, read on each region's primary, where new
# sessions of each city land, and the writers' failed transactions, which
# must be 0.  Run again, it says that amsterdam lives in eu-central already
# and shows the same.  A move that an earlier run left half done (copying,
# streaming, moved) is taken up where it stands; a failed one is aborted
# and started again.  Given another city of movr_cities (paris, say), it
# moves that one to eu-central the same way, city by city: the second
# joins the first there (the database there is not created again, and the
# tables without the city go on following us-east).
#   scripts/demo-city.sh [amsterdam | paris | boston | new+york]
# Run as root (it reads the regions' primaries as the user postgres, over
# the demo's Unix sockets).
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
psql="$PG_BINDIR/psql"
db=movr_cities
home=us-east
target=eu-central
# The cities of movr_cities: as its rows write them, and as a client names
# them in the startup hint pgnear.city (+ stands for a space there).
cities="new+york:New+York boston:Boston amsterdam:Amsterdam paris:Paris"
city=$(echo "${1:-amsterdam}" | tr ' ' +)
case " $cities " in
*" $city:"*) ;;
*) echo "demo-city: no city '$city' in $db; one of: amsterdam, paris, boston, new+york" >&2 && exit 2 ;;
esac
city=$(echo "$city" | tr + ' ')
# Seconds the writers may run at most (a run takes about 10).
bound=120

say() { echo "demo-city: $*"; }
log=""
fail() {
    echo "demo-city: $*" >&2
    if [ -n "$log" ] && [ -f "$log" ]; then
        echo "demo-city: the last lines of $log:" >&2
        tail -n 20 "$log" >&2
    fi
    exit 1
}

[ "$(id -u)" -eq 0 ] || fail "run it as root, as scripts/demo.sh: it reads the regions' primaries as postgres"
run=$top/demo-run
[ -L "$run" ] && run=$(readlink "$run")
if [ ! -f "$run/pgnear.ini" ] || [ ! -f "$run/pgnear.pid" ] || ! kill -0 "$(cat "$run/pgnear.pid")" 2>/dev/null; then
    fail "the demo is not running in $top: start it with scripts/demo.sh"
fi
log=$run/pgnear.log
grep -q "^\[database $db\]" "$run/pgnear.ini" ||
    fail "the running demo has no database $db (it was started by an older scripts/demo.sh): run scripts/demo.sh again"
port=$(sed -n 's/^listen_port = \([0-9]*\)$/\1/p' "$run/pgnear.ini")
# The port of a region's server, from the demo's configuration.
region_port() {
    awk -v r="[region $1]" '$0 == r { on = 1; next } /^\[/ { on = 0 }
        on && $1 == "hosts" { n = split($3, a, ":"); print a[n]; exit }' "$run/pgnear.ini"
}
app="host=127.0.0.1 port=$port dbname=$db user=app password=app-secret"
admin="host=127.0.0.1 port=$port dbname=pgnear user=admin password=admin-secret"

# A console command, as psql -A prints it (a header row, no footer).
console() { "$psql" -X -A -P footer=off "$admin" -c "$1"; }
# From such rows on stdin: column WANT of the first row whose columns match
# each NAME=VALUE of FILTERS (comma-separated); columns read by their names.
pick() {
    awk -F'|' -v want="$1" -v filters="${2:-}" '
        NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; n = split(filters, f, ","); next }
        { for (j = 1; j <= n; j++) { split(f[j], kv, "="); if ($c[kv[1]] != kv[2]) next }
          print $c[want]; exit }'
}
# The state of the newest move of amsterdam's rows (empty when none).
move_state() { console 'SHOW MOVES' | pick state "database=$db,city=$city"; }
# ---------------------------------------------------------------- the writers

# One pgbench per city through pgnear, 2 sessions of 10 rides a second,
# each transaction MovR's "start a ride": a vehicle of the city taken, a
# ride written for one of its riders (start_address names this run, so
# that its rides can be counted).  Sessions need read-write: they write.
tag="demo-city run $(date +%s)"
pids=""
start_writers() {
    for c in $cities; do
        name=${c%%:*}
        rowcity=$(echo "$name" | tr + ' ')
        cat >"$run/city-$name.sql" <<SQL
\\set v random(0, 9)
\\set u random(0, 49)
BEGIN;
UPDATE vehicles SET status = 'in_use'
    WHERE city = '$rowcity' AND id = (SELECT id FROM vehicles WHERE city = '$rowcity' ORDER BY id OFFSET :v LIMIT 1);
INSERT INTO rides (city, rider_id, vehicle_id, start_address, revenue)
    SELECT '$rowcity', (SELECT id FROM users WHERE city = '$rowcity' ORDER BY id OFFSET :u LIMIT 1),
           (SELECT id FROM vehicles WHERE city = '$rowcity' ORDER BY id OFFSET :v LIMIT 1), '$tag', 7.5;
COMMIT;
SQL
        "$PG_BINDIR/pgbench" -n -c 2 -j 1 -R 20 -T "$bound" -f "$run/city-$name.sql" \
            "$app application_name=demo-city-$name options='-c pgnear.city=${c#*:} -c pgnear.target_session_attrs=read-write'" \
            >"$run/city-$name.out" 2>&1 &
        pids="$pids $name:$!"
    done
}
# Ends the writers as -T would (pgbench ends its run on SIGALRM) and waits
# for their reports.
stop_writers() {
    for p in $pids; do kill -ALRM "${p#*:}" 2>/dev/null || true; done
    for p in $pids; do
        rc=0
        wait "${p#*:}" || rc=$?
        echo "$rc" >"$run/city-${p%%:*}.rc"
    done
    pids=""
}
trap 'stop_writers' EXIT
trap 'exit 1' HUP INT TERM
# Rides of this run written so far, on the server of region R, of city C.
rides_of_run() {
    "$psql" -X -At -h "$run" -p "$(region_port "$1")" -U postgres -d "$db" \
        -c "SELECT count(*) FROM rides WHERE city = '$2' AND start_address = '$tag'"
}

# ---------------------------------------------------------------- the move

# MOVE CITY ... TO REGION (after an ABORT, where an earlier move failed),
# unless an earlier run's move is under way; returns once it streams.
start_move() {
    case $state in
    copying | streaming | moved)
        say "a move of $city that an earlier run left $state: taken up there"
        ;;
    failed)
        say "an earlier move of $city failed; ABORT first"
        console "MOVE CITY '$city' OF DATABASE $db ABORT" >/dev/null
        state=aborted
        ;;
    'cutting over' | reverting)
        fail "the move of $city is $state (an earlier command was cut short): see SHOW MOVES"
        ;;
    esac
    if [ -z "$state" ] || [ "$state" = aborted ] || [ "$state" = finished ]; then
        echo
        say "MOVE CITY '$city' OF DATABASE $db TO REGION $target   (checks, then copies by logical replication)"
        out=$("$psql" -X -q "$admin" -c "MOVE CITY '$city' OF DATABASE $db TO REGION $target" 2>&1) ||
            fail "MOVE CITY failed: $out"
        echo "$out" | sed 's/^/    /'
        state=$(move_state)
    fi
    i=0
    while [ "$state" = copying ]; do
        i=$((i + 1))
        [ "$i" -lt 300 ] || fail "SHOW MOVES still says copying after 60 s"
        sleep 0.2
        state=$(move_state)
    done
}

# CUTOVER: prints its NOTICEs and a row per session held, and fails if it
# held a session of another city's writer.
cut_over() {
    echo
    say "SHOW MOVES says streaming: every table copied, $city's changes follow"
    console 'SHOW MOVES' | awk -F'|' -v db="$db" -v city="$city" '
        NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; print "    " $0; next }
        $c["database"] == db && $c["city"] == city { print "    " $0; exit }'
    sleep 1
    echo
    say "MOVE CITY '$city' OF DATABASE $db CUTOVER   (holds $city's sessions alone, a row per session)"
    others=$(console 'SHOW CLIENTS' | awk -F'|' -v me="demo-city-$(echo "$city" | tr ' ' +)" '
        NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        $c["application_name"] ~ /^demo-city-/ && $c["application_name"] != me { print $c["id"] }' | tr '\n' ' ')
    rows=$("$psql" -X -A -P footer=off "$admin" -c "MOVE CITY '$city' OF DATABASE $db CUTOVER" 2>"$run/city-cutover.err") ||
        fail "CUTOVER failed: $(cat "$run/city-cutover.err")"
    notice=$(cat "$run/city-cutover.err")
    echo "$notice" | sed 's/^/    /'
    echo "$rows" | sed 's/^/    /'
    hold=$(echo "$notice" | sed -n 's/.*the sessions were held \([0-9]*\) ms.*/\1/p')
    [ -n "$hold" ] || fail "CUTOVER's NOTICE says no hold: $notice"
    ids=$(echo "$rows" | awk -F'|' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next } { print $c["client_id"] }')
    for id in $ids; do
        case " $others " in *" $id "*) fail "CUTOVER held session $id, of another city's writer" ;; esac
    done
    say "held $hold ms: $(echo "$ids" | wc -w) sessions, all $city's; no session of another city was held"
    state=$(move_state)
    sleep 1
}

# The writers' reports: fails on a failed transaction, a writer that ended
# early, or a ride of amsterdam's writer not in eu-central, or left in us-east.
check_writers() {
    echo
    say "the writers, stopped:"
    failed=0
    for c in $cities; do
        name=${c%%:*}
        out=$(cat "$run/city-$name.out")
        done_tx=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
        bad=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
        lat=$(echo "$out" | sed -n 's/^latency average = \(.*\)$/\1/p')
        printf '    %-10s %s rides, %s failed, latency average %s\n' "$(echo "$name" | tr + ' ')" \
            "${done_tx:-?}" "${bad:-?}" "${lat:-?}"
        if [ "$(cat "$run/city-$name.rc")" != 0 ] || [ "${bad:-1}" != 0 ] || [ "${done_tx:-0}" -eq 0 ] ||
            echo "$out" | grep -q aborted; then
            echo "$out" >&2
            failed=1
        fi
    done
    [ "$failed" = 0 ] || fail "a writer failed transactions or ended early (its report above)"
    done_tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' \
        "$run/city-$(echo "$city" | tr ' ' +).out")
    got="$(rides_of_run "$target" "$city") $(rides_of_run "$home" "$city")"
    [ "$got" = "$done_tx 0" ] ||
        fail "$city's writer committed $done_tx rides; $target holds ${got% *} of them, $home ${got#* }"
    say "all $done_tx rides $city's writer committed are in $target, those of before the cutover too"
}

echo
say "where the cities of $db live now (SHOW HOMES: a row per city with a home of its own, then the others'):"
console 'SHOW HOMES' | sed 's/^/    /'
state=$(move_state)
if [ "$state" = finished ] && [ "$(console 'SHOW HOMES' | pick region "database=$db,city=$city")" = "$target" ]; then
    echo
    say "$city lives in $target already (its move is finished): nothing to move; where the rows live:"
else
    echo
    say "a writer per city through pgnear (2 sessions each, 10 rides a second per session), placed by the city"
    start_writers
    i=0
    # (amsterdam's writer writes in eu-central where an earlier run left its move moved)
    until [ "$(rides_of_run "$home" boston)" -gt 0 ] &&
        { [ "$state" = moved ] || [ "$(rides_of_run "$home" "$city")" -gt 0 ]; }; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || fail "the writers commit nothing in $home after 20 s: $(cat "$run"/city-*.out)"
        sleep 0.2
    done
    start_move
    [ "$state" != streaming ] || cut_over
    [ "$state" = moved ] || fail "the move of $city is '$state', not moved: see SHOW MOVES"
    echo
    say "MOVE CITY '$city' OF DATABASE $db FINISH   (drops the replication, deletes $city's rows in $home)"
    out=$("$psql" -X -q "$admin" -c "MOVE CITY '$city' OF DATABASE $db FINISH" 2>&1) || fail "FINISH failed: $out"
    echo "$out" | sed 's/^/    /'
    stop_writers
    check_writers
    echo
    say "where the rows live now, read on each region's primary (not through pgnear):"
fi

# ---------------------------------------------------------------- the rows

for r in "$home" "$target"; do
    echo "    $r (its primary, 127.0.0.1:$(region_port "$r"))"
    "$psql" -X -P footer=off -h "$run" -p "$(region_port "$r")" -U postgres -d "$db" -c "
        SELECT city, count(*) FILTER (WHERE t = 'users') AS users,
               count(*) FILTER (WHERE t = 'vehicles') AS vehicles, count(*) FILTER (WHERE t = 'rides') AS rides
        FROM (SELECT 'users' AS t, city FROM users UNION ALL SELECT 'vehicles', city FROM vehicles
              UNION ALL SELECT 'rides', city FROM rides) r
        GROUP BY city ORDER BY city" | sed '/^$/d; s/^/    /'
done
echo "    (us-west and eu-west, us-east's standbys, replay us-east's rows; promo_codes has no city:"
echo "    it is written in us-east, and eu-central's copy follows it)"
# promo_codes' copy in eu-central follows us-east: a code written there arrives.
code="demo-$(date +%s)-$city"
"$psql" -X -q -h "$run" -p "$(region_port "$home")" -U postgres -d "$db" \
    -c "INSERT INTO promo_codes VALUES ('$code', 'written in $home by scripts/demo-city.sh')" >/dev/null
i=0
until [ "$("$psql" -X -At -h "$run" -p "$(region_port "$target")" -U postgres -d "$db" \
    -c "SELECT count(*) FROM promo_codes WHERE code = '$code'")" = 1 ]; do
    i=$((i + 1))
    [ "$i" -lt 50 ] || fail "a promo code written in $home did not reach $target in 10 s"
    sleep 0.2
done
echo "    (a promo code written in $home just now, $code, is in $target's copy too)"
# The cities that live in eu-central (their moves finished or cut over), as SQL literals.
homed=$(console 'SHOW HOMES' | awk -F'|' -v db="$db" -v t="$target" '
    NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    $c["database"] == db && $c["city"] != "" && $c["region"] == t { printf "%s'\''%s'\''", n++ ? ", " : "", $c["city"] }')
got=$("$psql" -X -At -h "$run" -p "$(region_port "$home")" -U postgres -d "$db" -c "
    SELECT (SELECT count(*) FROM users WHERE city = '$city') + (SELECT count(*) FROM vehicles WHERE city = '$city')
           + (SELECT count(*) FROM rides WHERE city = '$city')")
[ "$got" = 0 ] || fail "$home still holds $got rows of $city"
got=$("$psql" -X -At -h "$run" -p "$(region_port "$target")" -U postgres -d "$db" -c "
    SELECT (SELECT count(*) FROM rides WHERE city = '$city') || ' '
           || (SELECT count(*) FROM rides WHERE city NOT IN ('$city', ${homed:-''}))")
if [ "${got#* }" != 0 ] || [ "${got% *}" -lt 100 ]; then
    fail "$target holds $got rides of $city and of cities that do not live there: its own 100 at least, and no other"
fi
# SHOW HOMES reads the record every second: the finish shows within one.
i=0
until [ "$(console 'SHOW HOMES' | pick state "database=$db,city=$city")" = finished ]; do
    i=$((i + 1))
    [ "$i" -lt 25 ] || fail "SHOW HOMES does not say that the move of $city is finished after 5 s"
    sleep 0.2
done
echo
say "SHOW HOMES:"
console 'SHOW HOMES' | sed 's/^/    /'

echo
say "new sessions through pgnear, placed by their city (SHOW cluster_name):"
for c in $cities; do
    hint=${c#*:}
    got=$("$psql" -X -At "$app options='-c pgnear.city=$hint'" -c 'SHOW cluster_name' 2>&1) ||
        fail "a session of $hint could not connect through pgnear: $got"
    printf '    %-10s -> %s\n' "$(echo "$hint" | tr + ' ')" "$got"
    # A city that lives in eu-central lands there; Boston, unless moved, where the database lives.
    rowcity=$(echo "${c%%:*}" | tr + ' ')
    case ", $homed, " in
    *", '$rowcity', "*) [ "$got" = "$target" ] || fail "a session of $hint lands on $got, not $target, its home" ;;
    *) [ "$hint" != Boston ] || [ "$got" = "$home" ] || fail "a Boston session lands on $got, not $home" ;;
    esac
done
echo "    (a city that lives in eu-central lands there; the others where movr_cities lives: New York and"
echo "    Boston on us-east's primary, Paris on eu-west's standby, the nearest host, until it moves; a"
echo "    writer of Paris, which needs read-write, goes to us-east)"
echo
say "done: $city's rows live in $target; cities living there: $homed"
