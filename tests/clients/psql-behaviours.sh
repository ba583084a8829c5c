#!/bin/bash
# psql-behaviours.sh HOST PORT: exercise psql/libpq behaviours a wire proxy
# must carry: COPY FROM STDIN / TO STDOUT, \copy both ways, a COPY that fails
# half-way, LISTEN/NOTIFY across two sessions, query cancel (SIGINT ->
# CancelRequest) and the session being usable after it.  Prints one line per
# check and "psql: N passed, N failed".
#
# Env: PSQL_USER (default postgres), PSQL_DB (default postgres), PGPASSWORD
#      as usual (or ~/.pgpass).  Uses a scratch table pgnear_psql_behaviours
#      (dropped at the end) and temp tables; needs no superuser.
set -u
. "$(cd "$(dirname "$0")" && pwd)/common.sh"   # report, failure
[ $# -ge 2 ] || { echo "usage: $0 HOST PORT" >&2; exit 2; }
host=$1 port=$2
user=${PSQL_USER:-postgres} db=${PSQL_DB:-postgres}
tmp=$(mktemp -d /tmp/psql-behaviours.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

unset PGSERVICE PGOPTIONS PGHOST PGPORT PGUSER PGDATABASE
export PGCONNECT_TIMEOUT=10
P=(psql -X -q -At -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U "$user" -d "$db")

npass=0 nfail=0
ok() { npass=$((npass + 1)); echo "ok   $1"; }
bad() { nfail=$((nfail + 1)); echo "FAIL $1${2:+: $2}"; failure "$1"; }
# wait_for FILE PATTERN SECONDS: poll until FILE contains PATTERN.
wait_for() {
	local _
	for _ in $(seq 1 $(($3 * 10))); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}

# 0. reachability, so a dead endpoint fails fast and clearly
if ! out=$("${P[@]}" -c "select 'up'" 2>&1) || [ "$out" != up ]; then
	bad "connect to $host:$port as $user/$db" "$out"
	echo "psql: $npass passed, $((nfail + 8)) failed"   # the 8 other checks did not run
	report "$npass" "$((nfail + 8))" 0
	exit 1
fi
ok "connect to $host:$port as $user/$db"

"${P[@]}" -c "SET client_min_messages = warning; DROP TABLE IF EXISTS pgnear_psql_behaviours; CREATE TABLE pgnear_psql_behaviours (id int PRIMARY KEY, t text)" ||
	bad "create scratch table"

# 1. COPY FROM STDIN with 10000 rows, then COPY TO STDOUT gives them back
seq 1 10000 | awk '{ printf "%d\trow %d with a tab-free payload\n", $1, $1 }' > "$tmp/in.tsv"
if out=$("${P[@]}" -c "COPY pgnear_psql_behaviours FROM STDIN" < "$tmp/in.tsv" 2>&1) &&
	n=$("${P[@]}" -c "select count(*), sum(id) from pgnear_psql_behaviours" 2>&1) &&
	[ "$n" = "10000|50005000" ]; then
	ok "COPY FROM STDIN (10000 rows)"
else
	bad "COPY FROM STDIN (10000 rows)" "$out $n"
fi
if "${P[@]}" -c "COPY (select * from pgnear_psql_behaviours order by id) TO STDOUT" > "$tmp/out.tsv" 2>&1 &&
	cmp -s "$tmp/in.tsv" "$tmp/out.tsv"; then
	ok "COPY TO STDOUT round trip"
else
	bad "COPY TO STDOUT round trip" "$(head -c 200 "$tmp/out.tsv")"
fi

# 2. \copy in both directions, CSV, within one session (temp table)
printf 'id,t\n1,"a,b"\n2,"quote "" inside"\n3,\n' > "$tmp/in.csv"
out=$("${P[@]}" 2>&1 <<SQL
CREATE TEMP TABLE c (id int, t text);
\copy c FROM '$tmp/in.csv' WITH (FORMAT csv, HEADER true)
\copy (select * from c order by id) TO '$tmp/out.csv' WITH (FORMAT csv, HEADER true)
SELECT count(*) || ':' || count(t) FROM c;
SQL
)
if [ "$out" = "3:2" ] && cmp -s "$tmp/in.csv" "$tmp/out.csv"; then
	ok "\\copy FROM file and TO file (CSV)"
else
	bad "\\copy FROM file and TO file (CSV)" "$out / $(tr '\n' ' ' < "$tmp/out.csv" 2>/dev/null)"
fi

# 3. a COPY FROM STDIN that fails half-way (duplicate key at row 5001) reports
#    the error, and the same session goes on working
{ echo "COPY pgnear_psql_behaviours FROM STDIN;"
  seq 10001 15000 | awk '{ printf "%d\tx\n", $1 }'; printf '1\tduplicate\n'
  seq 15001 16000 | awk '{ printf "%d\tx\n", $1 }'; echo '\.'
  echo "SELECT 'alive ' || count(*) FROM pgnear_psql_behaviours;"; } > "$tmp/bad-copy.sql"
out=$(psql -X -q -At -h "$host" -p "$port" -U "$user" -d "$db" -f "$tmp/bad-copy.sql" 2>&1)
if grep -q 'duplicate key' <<<"$out" && grep -q '^alive 10000$' <<<"$out"; then
	ok "COPY error mid-stream, session survives"
else
	bad "COPY error mid-stream, session survives" "$(tr '\n' ' ' <<<"$out" | cut -c1-300)"
fi

# 4. LISTEN in session A, NOTIFY from session B, A sees it with B's PID
mkfifo "$tmp/a.in"
psql -X -At -h "$host" -p "$port" -U "$user" -d "$db" < "$tmp/a.in" > "$tmp/a.out" 2>&1 &
pids+=($!)
exec 3> "$tmp/a.in"
echo "LISTEN pgnear_chan; SELECT 'listening';" >&3
if wait_for "$tmp/a.out" '^listening$' 10; then
	bpid=$("${P[@]}" -c "SELECT pg_backend_pid(); NOTIFY pgnear_chan, 'hello from B'" 2>&1 | head -1)
	sleep 0.3
	echo "SELECT 'after notify';" >&3
	if wait_for "$tmp/a.out" '^after notify$' 10 &&
		grep -q "Asynchronous notification \"pgnear_chan\" with payload \"hello from B\" received from server process with PID $bpid\." "$tmp/a.out"; then
		ok "LISTEN/NOTIFY across two sessions (payload and sender PID)"
	else
		bad "LISTEN/NOTIFY across two sessions" "B pid $bpid; A saw: $(tr '\n' ' ' < "$tmp/a.out" | cut -c1-300)"
	fi
else
	bad "LISTEN/NOTIFY across two sessions" "LISTEN session did not answer: $(head -c 200 "$tmp/a.out")"
fi

exec 3>&-
wait "${pids[0]}" 2>/dev/null
pids=()

# 5. query cancel the way a person does it: interactive psql on a terminal
#    (script(1) gives it a pty), Ctrl-C typed while pg_sleep(30) runs.  psql
#    sends a CancelRequest on a new connection with the session's backend
#    key; the query must end with 57014 well before 30 s and the same
#    session must run the next statement.
mkfifo "$tmp/t.in"
script -qfec "exec psql -X -P pager=off -h '$host' -p '$port' -U '$user' -d '$db'" /dev/null < "$tmp/t.in" > "$tmp/t.out" 2>&1 &
pids+=($!)
exec 4> "$tmp/t.in"
echo "SELECT 'before' || 'sleep';" >&4
if wait_for "$tmp/t.out" 'beforesleep' 10; then
	echo "SELECT pg_sleep(30);" >&4
	sleep 1
	t0=$(date +%s.%N)
	printf '\003' >&4            # Ctrl-C on the terminal -> SIGINT to psql
	if wait_for "$tmp/t.out" 'canceling statement due to user request' 10; then
		secs=$(awk -v s="$t0" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
		ok "interactive Ctrl-C cancels pg_sleep(30) (${secs}s)"
		echo "SELECT 'after' || 'cancel';" >&4
		if wait_for "$tmp/t.out" 'aftercancel' 10; then
			ok "session usable after cancel"
		else
			bad "session usable after cancel" "$(tail -c 300 "$tmp/t.out" | tr -d '\r' | tr '\n' ' ')"
		fi
	else
		bad "interactive Ctrl-C cancels pg_sleep(30)" "$(tail -c 300 "$tmp/t.out" | tr -d '\r' | tr '\n' ' ')"
		bad "session usable after cancel"
	fi
else
	bad "interactive Ctrl-C cancels pg_sleep(30)" "terminal psql did not answer: $(head -c 300 "$tmp/t.out" | tr -d '\r')"
	bad "session usable after cancel"
fi
echo '\q' >&4
exec 4>&-
timeout 5 tail --pid="${pids[0]}" -f /dev/null
pids=()

# 6. non-interactive psql -c "SELECT pg_sleep(30)" sent SIGINT once the
#    query runs (what `kill -INT` from a supervisor does): psql sends the
#    CancelRequest and exits with the 57014 error.  The signal waits until
#    the server shows the query active, so that a slow login does not turn
#    the check into one of psql's start-up.
tag="pgnear-sigint-$$"
psql -X -At -h "$host" -p "$port" -U "$user" -d "$db" -c "SELECT pg_sleep(30) /* $tag */" > "$tmp/sigint.out" 2>&1 &
sigint_pid=$!
pids+=($sigint_pid)
running=0
for _ in $(seq 1 50); do
	n=$("${P[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%$tag */' AND pid <> pg_backend_pid()" 2>/dev/null)
	[ "$n" = 1 ] && { running=1; break; }
	sleep 0.2
done
if [ "$running" = 1 ]; then
	t0=$(date +%s.%N)
	kill -INT "$sigint_pid"
	timeout 10 tail --pid="$sigint_pid" -f /dev/null
	kill "$sigint_pid" 2>/dev/null   # still waiting for its query after 10 s
	wait "$sigint_pid" 2>/dev/null
	rc=$?
	secs=$(awk -v s="$t0" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
	if grep -q 'canceling statement due to user request' "$tmp/sigint.out" && awk -v s="$secs" 'BEGIN { exit !(s < 10) }'; then
		ok "psql -c cancelled by SIGINT (${secs}s, exit $rc)"
	else
		bad "psql -c cancelled by SIGINT" "exit $rc after ${secs}s: $(head -c 300 "$tmp/sigint.out")"
	fi
else
	bad "psql -c cancelled by SIGINT" "the query never showed as active in pg_stat_activity: $(head -c 300 "$tmp/sigint.out")"
fi
pids=()

"${P[@]}" -c "DROP TABLE IF EXISTS pgnear_psql_behaviours" >/dev/null 2>&1
echo "psql: $npass passed, $nfail failed"
report "$npass" "$nfail" 0
[ "$nfail" = 0 ]
