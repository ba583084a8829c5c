#!/bin/bash
# run-all.sh [--shapes LIST] [--suites LIST] [--pool-only SHAPES] [--pool-size N]
#            [--workdir DIR] [--keep] PGNEAR_BINARY
#
# Runs the client suites directly against a fresh PostgreSQL 15 cluster and
# through pgnear in each shape, one run at a time, and prints one table:
# suite x shape -> passed/failed/skipped, then every failure through pgnear,
# marked "also direct", "known: why" (known-differences.txt) or NEW; a
# failure of the runners' second run alone ("failed on rerun only") too.
# Exits 0 when no failure is NEW.  README.md says what the shapes are.
#
#   --shapes LIST      of direct,A,B,S,N,T,RS,RT (default all); direct always
#                      runs first when it is listed, since the others compare
#                      to it; RS and RT add a streaming standby to the cluster
#   --suites LIST      of psql,postgresjs,node-postgres,psycopg3 (default all)
#   --pool-only LIST   shapes in which psycopg3 runs only tests/pool (its
#                      pooling tests, ~1 min) instead of the whole suite (~8 min)
#   --pool-size N      pool_size in shape T (default 10)
#   --workdir DIR      where the cluster, configurations and logs go (default
#                      a new /tmp/pgnear-clients.XXXXXX, kept for its logs)
#   --keep             leave the cluster's data directory there too
#
# The suites' sources: NODE_PG_SRC, POSTGRESJS_SRC, PSYCOPG_SRC, or
# MIRROR_ROOT (see common.sh); they are extracted once into SUITES_DIR.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

shapes=direct,A,B,S,N,T,RS,RT
suites=psql,postgresjs,node-postgres,psycopg3
pool_only=
t_pool_size=10
workdir=
keep=0
binary=
while [ $# -gt 0 ]; do
	case $1 in
	--shapes) shapes=${2:?}; shift 2 ;;
	--shapes=*) shapes=${1#*=}; shift ;;
	--suites) suites=${2:?}; shift 2 ;;
	--suites=*) suites=${1#*=}; shift ;;
	--pool-only) pool_only=${2:?}; shift 2 ;;
	--pool-only=*) pool_only=${1#*=}; shift ;;
	--pool-size) t_pool_size=${2:?}; shift 2 ;;
	--pool-size=*) t_pool_size=${1#*=}; shift ;;
	--workdir) workdir=${2:?}; shift 2 ;;
	--workdir=*) workdir=${1#*=}; shift ;;
	--keep) keep=1; shift ;;
	-h | --help) usage ;;
	-*) die "unknown option $1" ;;
	*) [ -z "$binary" ] || usage; binary=$1; shift ;;
	esac
done
IFS=, read -r -a shape_list <<<"$shapes"
IFS=, read -r -a suite_list <<<"$suites"
for sh in "${shape_list[@]}"; do
	case $sh in direct | A | B | S | N | T | RS | RT) ;; *) die "unknown shape $sh (direct, A, B, S, N, T, RS, RT)" ;; esac
done
for su in "${suite_list[@]}"; do
	case $su in psql | postgresjs | node-postgres | psycopg3) ;; *) die "unknown suite $su" ;; esac
done
[[ $t_pool_size =~ ^[1-9][0-9]*$ ]] || die "--pool-size wants a positive number, not $t_pool_size"
if [ "${shapes}" != direct ]; then
	[ -n "$binary" ] || usage
	[ -x "$binary" ] || die "$binary is not an executable"
	binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
fi
# direct first: the other shapes are compared with it
ordered=()
for sh in direct A B S N T RS RT; do
	[[ ",$shapes," == *",$sh,"* ]] && ordered+=("$sh")
done

# --- a work directory, ports, cleanup --------------------------------------
if [ -z "$workdir" ]; then
	workdir=$(mktemp -d /tmp/pgnear-clients.XXXXXX)
else
	mkdir -p "$workdir"
	[ -e "$workdir/pg" ] && die "$workdir/pg exists: stop that cluster and remove it, or choose another --workdir"
	workdir=$(cd "$workdir" && pwd)
fi
chmod 711 "$workdir"   # the cluster runs as user postgres inside it
mkdir -p "$workdir/results" "$workdir/logs"

PORT_LOCK_DIR=/tmp/pgnear-test-ports   # shared with tests/lib/PgNearTest.pm
my_port_files=()
port_bindable() {
	python3 -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)' "$1" 2>/dev/null
}
# reserve_port VAR: a free port in 20000-31999 (below the ephemeral range),
# reserved the way the integration tests reserve theirs.
reserve_port() {
	local p f owner _
	mkdir -p "$PORT_LOCK_DIR" && chmod 1777 "$PORT_LOCK_DIR" 2>/dev/null
	for _ in $(seq 1 500); do
		p=$((20000 + RANDOM % 12000))
		f=$PORT_LOCK_DIR/$p
		if ! (set -o noclobber; echo $$ > "$f") 2>/dev/null; then
			owner=$(cat "$f" 2>/dev/null)
			[[ $owner =~ ^[0-9]+$ ]] && ! kill -0 "$owner" 2>/dev/null && rm -f "$f"
			continue
		fi
		if port_bindable "$p"; then
			my_port_files+=("$f")
			printf -v "$1" %s "$p"
			return 0
		fi
		rm -f "$f"
	done
	die "no free port in 20000-31999 after 500 tries"
}

pgnear_pid=
cleanup() {
	[ -n "$pgnear_pid" ] && kill "$pgnear_pid" 2>/dev/null
	if [ -f "$workdir/standby/data/postmaster.pid" ]; then
		"$here/start-pg15.sh" --stop "$workdir/standby" >/dev/null
		[ "$keep" = 1 ] || rm -rf "$workdir/standby/data"
	fi
	if [ -f "$workdir/pg/data/postmaster.pid" ]; then
		"$here/start-pg15.sh" --stop "$workdir/pg" >/dev/null
		[ "$keep" = 1 ] || rm -rf "$workdir/pg/data"
	fi
	rm -f "${my_port_files[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- PostgreSQL -------------------------------------------------------------
reserve_port pg_port
"$here/start-pg15.sh" "$workdir/pg" "$pg_port" > "$workdir/logs/start-pg15.out" 2>&1 ||
	{ cat "$workdir/logs/start-pg15.out" >&2; die "start-pg15.sh failed"; }
export DIRECT_PGHOST=127.0.0.1 DIRECT_PGPORT=$pg_port DIRECT_PGUSER=postgres
unset DIRECT_PGPASSWORD
pg_version=$(direct_psql -d postgres -At -c 'show server_version')
note "PostgreSQL $pg_version on 127.0.0.1:$pg_port, work directory $workdir"
# RS and RT: a streaming standby of it, which the suites reach only through
# pgnear (their setup goes to the primary and replicates)
if [[ ",$shapes," == *,R[ST],* ]]; then
	reserve_port standby_port
	"$here/start-pg15.sh" --standby "$pg_port" "$workdir/standby" "$standby_port" \
		> "$workdir/logs/start-standby.out" 2>&1 ||
		{ cat "$workdir/logs/start-standby.out" >&2; die "start-pg15.sh --standby failed"; }
	note "standby on 127.0.0.1:$standby_port"
fi

# --- pgnear in each shape ----------------------------------------------------
# write_config SHAPE PORT: the shape's configuration file; prints its path.
write_config() {
	local shape=$1 port=$2 conf=$workdir/$1/pgnear.ini
	mkdir -p "$workdir/$shape/sock"
	{
		echo "; shape $shape, written by tests/clients/run-all.sh"
		echo "[pgnear]"
		echo "listen_addr = 127.0.0.1"
		echo "listen_port = $port"
		echo "unix_socket_dir = $workdir/$shape/sock"
		echo "logfile = $workdir/$shape/pgnear.log"
		echo "server_conninfo = user=postgres"
		echo "shutdown_timeout = 2s"
		case $shape in
		A)
			echo "auth = passthrough"
			echo "server_tls = require"
			echo "client_tls = disable"
			echo "workers = 2" ;;
		B)
			echo "auth = passthrough"
			echo "server_tls = disable"
			echo "client_tls = allow"
			echo "client_tls_cert_file = $workdir/tls/pgnear.crt"
			echo "client_tls_key_file = $workdir/tls/pgnear.key"
			echo "workers = 1" ;;
		S | N | T | RS | RT)
			echo "auth = scram"
			echo "auth_file = $workdir/auth_file"
			# users not in auth_file (postgres.js's postgres_js_test_scram,
			# whose secret has a random salt): the server's own secret
			echo "auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename = \$1"
			case $shape in
			S | RS) echo "pool_mode = session" ;;
			N) echo "pool_mode = none" ;;
			T | RT)
				echo "pool_mode = transaction"
				echo "pool_size = $t_pool_size" ;;
			esac
			case $shape in
			RS | RT)
				# every session: reads on the standby, writes forwarded
				echo "target_session_attrs = nearest"
				# callers of unknown locality are in eu-west, the standby's
				echo "default_region = eu-west" ;;
			esac
			echo "server_tls = require"
			echo "client_tls = disable" ;;
		esac
		echo
		case $shape in
		RS | RT)
			echo "[region us-east]"
			echo "location = 39.04, -77.49"
			echo "hosts = 127.0.0.1:$pg_port"
			echo
			echo "[region eu-west]"
			echo "location = 53.35, -6.26"
			echo "hosts = 127.0.0.1:$standby_port" ;;
		*)
			echo "[region local]"
			echo "hosts = 127.0.0.1:$pg_port" ;;
		esac
	} > "$conf"
	echo "$conf"
}

# The users auth = scram knows, with the fixed-salt secrets the runners give
# their roles (postgres gets psycopg_test's: the server lets postgres in by
# trust, and psql-behaviours logs in as postgres with that password; so
# does postgres.js's postgres_js_test, for which postgres.js sends
# PJS_PGPASSWORD, as for postgres).
write_auth_file() {
	local u pw
	: > "$workdir/auth_file"
	for u in psycopg_test:psycopg_test postgres:psycopg_test postgres_js_test:psycopg_test \
		node_pg_test:node_pg_test \
		scram_test:test4scram scram_unicode_test:$'IX-\u2168'; do
		pw=${u#*:}
		printf '"%s" "%s"\n' "${u%%:*}" "$(scram_secret "$pw" "$FIXED_SCRAM_SALT")" >> "$workdir/auth_file"
	done
}

make_client_cert() {
	mkdir -p "$workdir/tls"
	openssl req -new -x509 -nodes -days 30 -subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$workdir/tls/pgnear.key" -out "$workdir/tls/pgnear.crt" 2>/dev/null ||
		die "openssl could not make pgnear's certificate"
	chmod 600 "$workdir/tls/pgnear.key"
}

# start_pgnear SHAPE PORT: start it and wait until a login through it works
# (or die).
start_pgnear() {
	local shape=$1 port=$2 conf _
	conf=$(write_config "$shape" "$port")
	"$binary" --check "$conf" > "$workdir/$shape/check.out" 2>&1 ||
		{ cat "$workdir/$shape/check.out" >&2; die "pgnear --check $conf failed"; }
	grep 'WARNING' "$workdir/$shape/check.out" | sed "s/^/   $shape: /"
	"$binary" "$conf" > "$workdir/$shape/stderr" 2>&1 &
	pgnear_pid=$!
	for _ in $(seq 1 150); do
		kill -0 "$pgnear_pid" 2>/dev/null || { cat "$workdir/$shape/stderr" >&2; die "pgnear ($shape) exited at start"; }
		env -u PGSSLMODE PGPASSWORD=psycopg_test PGCONNECT_TIMEOUT=5 \
			psql -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	die "no login through pgnear ($shape) within 15 s; see $workdir/$shape/pgnear.log"
}

stop_pgnear() {
	local _
	[ -n "$pgnear_pid" ] || return 0
	kill -TERM "$pgnear_pid" 2>/dev/null
	for _ in $(seq 1 100); do kill -0 "$pgnear_pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pgnear_pid" 2>/dev/null && echo "   pgnear did not stop on SIGTERM within 10 s: killed"
	wait "$pgnear_pid" 2>/dev/null
	pgnear_pid=
}

# applies SHAPE SUITE: whether the suite runs in the shape (all do).
applies() {
	return 0
}

# run_suite SHAPE SUITE HOST PORT SOCKDIR
run_suite() {
	local shape=$1 suite=$2 host=$3 port=$4 sockdir=$5 out start rc res
	out=$workdir/logs/$shape.$suite.out
	res=$workdir/results/$shape.$suite
	rm -f "$res" "$res.failures"
	start=$(date +%s)
	(
		export CLIENTS_RESULT=$res CLIENTS_FAILURES=$res.failures
		case $suite in
		psql)
			case $shape in
			B) export PGSSLMODE=require ;;                 # all 9 checks over TLS to pgnear
			S | N | T | R?) export PGPASSWORD=psycopg_test ;;   # postgres's line in auth_file
			esac
			"$here/psql-behaviours.sh" "$host" "$port" ;;
		postgresjs)
			export PGSOCKET=$sockdir PJS_LOG=$workdir/logs/$shape.postgresjs.log
			# it turns the server's ssl off and expects to log in: refused,
			# as configured, under server_tls = require (README.md)
			case $shape in A | S | N | T | R?) export PJS_SKIP="Connect using SSL prefer" ;; esac
			# auth = scram: postgres and postgres_js_test log in with a
			# password (their lines in auth_file), which postgres.js sends
			# for every login without one of its own
			case $shape in S | N | T | R?) export PJS_PGPASSWORD=psycopg_test ;; esac
			"$here/run-postgresjs.sh" "$host" "$port" ;;
		node-postgres)
			export NODE_PG_LOGDIR=$workdir/logs/$shape.node-postgres
			case $shape in S | N | T | R?) export NODE_PG_AUTH=fixed ;; esac
			"$here/run-node-postgres.sh" "$host" "$port" ;;
		psycopg3)
			export PSYCOPG3_LOG=$workdir/logs/$shape.psycopg3.log
			[[ ",$pool_only," == *",$shape,"* ]] && export PSYCOPG3_ARGS=tests/pool
			# nearest: a standby lists no prepared transaction, so the tests'
			# cleanup misses the one a failed test left, and the next TRUNCATE
			# waits for its lock for ever (README.md)
			case $shape in R?) export PSYCOPG3_ARGS="${PSYCOPG3_ARGS:-} --deselect tests/test_tpc.py --deselect tests/test_tpc_async.py" ;; esac
			"$here/run-psycopg3.sh" "$host" "$port" ;;
		esac
	) > "$out" 2>&1
	rc=$?
	echo $(($(date +%s) - start)) > "$res.secs"
	[ -f "$res.failures" ] || : > "$res.failures"
	if [ -f "$res" ]; then
		read -r p f s < "$res"
		printf '   %-6s %-13s %5s passed, %3s failed, %3s skipped, %4ss\n' "$shape" "$suite" "$p" "$f" "$s" "$(cat "$res.secs")"
	else
		echo "   $shape $suite: no result (exit $rc); see $out"
		tail -5 "$out" | sed 's/^/     /'
	fi
	# postgres.js's "SSL prefer" test turns ssl off and back on; make sure
	[ "$(direct_psql -d postgres -At -c 'show ssl')" = on ] || {
		echo "   server ssl was left off after $shape $suite: turning it on"
		direct_psql -d postgres -c 'ALTER SYSTEM SET ssl = on' -c 'SELECT pg_reload_conf()' >/dev/null
	}
}

write_auth_file
make_client_cert
start_all=$(date +%s)
for shape in "${ordered[@]}"; do
	if [ "$shape" = direct ]; then
		host=127.0.0.1 port=$pg_port sockdir=$workdir/pg/sock
		note "direct: PostgreSQL at 127.0.0.1:$pg_port"
	else
		reserve_port port
		host=127.0.0.1 sockdir=$workdir/$shape/sock
		start_pgnear "$shape" "$port"
		note "shape $shape: pgnear at 127.0.0.1:$port ($(grep -E '^(auth|server_tls|client_tls|pool_mode|pool_size|workers|target_session_attrs) ' "$workdir/$shape/pgnear.ini" | tr '\n' ' '| sed 's/ = /=/g'))"
	fi
	for suite in "${suite_list[@]}"; do
		applies "$shape" "$suite" && run_suite "$shape" "$suite" "$host" "$port" "$sockdir"
	done
	if [ "$shape" != direct ]; then
		stop_pgnear
		grep -E ' (WARNING|ERROR|FATAL) ' "$workdir/$shape/pgnear.log" |
			sed -E 's/^[0-9-]+ [0-9:.]+ UTC (WARNING|ERROR|FATAL) (c[0-9]+: )?/\1 /; s/[0-9]+/N/g' |
			sort | uniq -c | sort -rn | head -12 > "$workdir/results/$shape.pgnear-log"
		if [ -s "$workdir/results/$shape.pgnear-log" ]; then
			echo "   pgnear's warnings and errors ($shape), numbers as N:"
			sed 's/^/     /' "$workdir/results/$shape.pgnear-log"
		fi
	fi
done

# --- the report -------------------------------------------------------------
commit_of() { [ -f "$SUITES_DIR/$1/.pgnear-commit" ] && cut -c1-12 "$SUITES_DIR/$1/.pgnear-commit" || echo "-"; }
cell() {
	local res=$workdir/results/$1.$2 p f s
	applies "$1" "$2" || { echo "n/a"; return; }
	[ -f "$res" ] || { echo "no result"; return; }
	read -r p f s < "$res"
	echo "$p / $f / $s$([ "$2" = psycopg3 ] && [[ ",$pool_only," == *",$1,"* ]] && echo ' (pool)')"
}
{
	echo
	echo "## Client suites, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	if [ -n "$binary" ]; then
		src_commit=$(git -C "$(dirname "$binary")" rev-parse --short HEAD 2>/dev/null || echo unknown)
		git -C "$(dirname "$binary")" diff --quiet HEAD 2>/dev/null || src_commit="$src_commit (tree with changes)"
		echo "pgnear: $binary, $("$binary" --version 2>/dev/null), commit $src_commit"
	fi
	echo "PostgreSQL $pg_version; suites: node-postgres $(commit_of node-postgres), postgres.js $(commit_of postgresjs), psycopg $(commit_of psycopg3)"
	echo "Cells: passed / failed / skipped; total wall $(( ($(date +%s) - start_all) / 60 )) min"
	echo
	printf '| suite |'; for sh in "${ordered[@]}"; do printf ' %s |' "$sh"; done; echo
	printf '| --- |'; for sh in "${ordered[@]}"; do printf ' --- |'; done; echo
	for su in "${suite_list[@]}"; do
		printf '| %s |' "$su"
		for sh in "${ordered[@]}"; do printf ' %s |' "$(cell "$sh" "$su")"; done
		echo
	done
	echo
	printf '| seconds |'; for sh in "${ordered[@]}"; do printf ' %s |' "$sh"; done; echo
	printf '| --- |'; for sh in "${ordered[@]}"; do printf ' --- |'; done; echo
	for su in "${suite_list[@]}"; do
		printf '| %s |' "$su"
		for sh in "${ordered[@]}"; do printf ' %s |' "$(cat "$workdir/results/$sh.$su.secs" 2>/dev/null || echo -)"; done
		echo
	done
} | tee "$workdir/summary.md"

# Each failure: also direct, known (known-differences.txt), or NEW.
new=0
{
	for sh in "${ordered[@]}"; do
		for su in "${suite_list[@]}"; do
			fl=$workdir/results/$sh.$su.failures
			[ -s "$fl" ] || continue
			echo
			echo "Failures, $sh, $su:"
			while IFS=$'\t' read -r t note; do
				verdict=NEW
				if [ "$sh" = direct ]; then
					verdict="direct"
				elif cut -f1 "$workdir/results/direct.$su.failures" 2>/dev/null | grep -qxF -- "$t"; then
					verdict="also direct"
				else
					why=$(awk -F' [|] ' -v sh="$sh" -v su="$su" -v t="$t" '
						/^#/ || NF < 4 { next }
						{ n = split($1, shapes, /[ ,]+/); hit = 0
						  for (i = 1; i <= n; i++) if (shapes[i] == sh) hit = 1
						  if (hit && $2 == su && t ~ $3) { print $4; exit } }' \
						"$here/known-differences.txt" | sed 's/ *$//')
					[ -n "$why" ] && verdict="known: $why"
				fi
				# "passed on rerun": flaky unless explained; "failed on rerun
				# only" (the runners report those too): NEW unless explained
				case $note in
				"") ;;
				"failed on rerun only") verdict="$verdict; $note" ;;
				*) [ "$verdict" = NEW ] && verdict="flaky, $note" || verdict="$verdict; $note" ;;
				esac
				[[ $verdict == NEW* ]] && new=$((new + 1))
				echo "- $t: $verdict"
			done < "$fl"
		done
	done
	echo
	echo "New failures through pgnear (neither direct nor known): $new"
	echo "Logs: $workdir/logs; pgnear's logs: $workdir/SHAPE/pgnear.log"
} > "$workdir/failures.md"
cat "$workdir/failures.md" | tee -a "$workdir/summary.md"
new=$(sed -n 's/^New failures through pgnear.*: //p' "$workdir/failures.md")
[ "$new" = 0 ]
