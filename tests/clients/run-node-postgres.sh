#!/bin/bash
# run-node-postgres.sh HOST PORT: run node-postgres's own tests against
# HOST:PORT and print "node-postgres: N passed, N failed".
#
# Parts (each can be turned off with NODE_PG_PARTS, a space list; default all):
#   unit         packages/pg/test/unit       (no server; constant, for reference)
#   integration  packages/pg/test/integration, pure-JS client
#   native       packages/pg/test/native + integration with the libpq binding
#                (skipped when the libpq addon did not build)
#   pgnative     packages/pg-native (mocha; libpq: PQcancel, COPY, NOTIFY)
#   pool         packages/pg-pool (mocha)
#   cursor       packages/pg-cursor (mocha)
#   stream       packages/pg-query-stream (mocha + ts-node)
# The pg files use the suite's own runner, which exits at a file's first
# failing test: "passed" counts ✔ test cases, "failed" counts failing files
# (their remaining tests did not run; the per-file lines say which).
#
# Server-side requirements (README.md): password login (scram-sha-256 or md5)
# for ordinary users over TCP; ssl = on with any certificate.
# Env: DIRECT_PG* (common.sh) for setup;
#   NODE_PG_FILE_TIMEOUT  per test file / mocha package limit, s (default 120)
#   NODE_PG_RERUN=0       no second run of what failed (see the end)
#   NODE_PG_NOSSL=1       skip the SSL-only file gh-issues/2085 (PGTESTNOSSL)
#   NODE_PG_LOGDIR        logs (default $SUITES_DIR/node-postgres-logs)
#   NODE_PG_AUTH          md5 | scram | fixed | auto (default): how
#                         node_pg_test's password is stored.  Upstream CI uses
#                         md5; auto takes md5 when the server's pg_hba lets it
#                         log in, else scram.  fixed: SCRAM secrets with a
#                         fixed salt for node_pg_test and the two SCRAM roles,
#                         the ones `run-all.sh` puts in pgnear's auth_file for
#                         auth = scram.  (SCRAM makes each connect cost ~10 ms
#                         of CPU, which makes pg-pool's 100 ms "emits acquire"
#                         test fail on a loaded 2-core machine.)
#   NODE_PG_SRC           a clone of github.com/brianc/node-postgres (git
#                         directory or checkout); default
#                         $MIRROR_ROOT/brianc+node-postgres/repo
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
need_host_port "$@"

PIN=c9e57617bc92c2ded23a75345f50eadc527bd131   # node-postgres master, pg 8.23.0, tested 2026-11
src=$SUITES_DIR/node-postgres
: "${NODE_PG_PARTS:=unit integration native pgnative pool cursor stream}"
: "${NODE_PG_FILE_TIMEOUT:=120}"
: "${NODE_PG_LOGDIR:=$SUITES_DIR/node-postgres-logs}"
: "${NODE_PG_AUTH:=auto}"

command -v node >/dev/null || die "node is needed (apt-get install nodejs npm)"
command -v psql >/dev/null || die "psql is needed (apt-get install postgresql-client-15)"

checkout_suite NODE_PG_SRC brianc+node-postgres "$PIN" "$src"
if [ ! -f "$src/.pgnear-built" ]; then
	note "installing node-postgres dependencies with npm (once; ~1-2 min, ~400 MB)"
	# --ignore-scripts: the root package's prepublish wants yarn; we build
	# the TypeScript packages ourselves and compile only the libpq addon.
	( cd "$src" && npm install --no-audit --no-fund --ignore-scripts ) > "$SUITES_DIR/node-postgres-npm.log" 2>&1 ||
		die "npm install failed, see $SUITES_DIR/node-postgres-npm.log"
	( cd "$src" && npx tsc --build ) >> "$SUITES_DIR/node-postgres-npm.log" 2>&1 ||
		die "tsc --build failed, see $SUITES_DIR/node-postgres-npm.log"
	( cd "$src" && npm rebuild libpq ) >> "$SUITES_DIR/node-postgres-npm.log" 2>&1 ||
		echo "warning: libpq addon did not build (needs libpq-dev, python3, g++): native part will be skipped"
	touch "$src/.pgnear-built"
fi
note "node-postgres $(cat "$src/.pgnear-commit") against $TARGET_HOST:$TARGET_PORT (setup via $DIRECT_PGHOST:$DIRECT_PGPORT)"

# --- setup through the direct superuser connection -----------------------
# Like upstream CI: a password-authenticated superuser owning the test
# database (CI uses postgres/postgres with md5) and the two SCRAM roles.
direct_psql -d postgres <<'SQL' || die "setup through $DIRECT_PGHOST:$DIRECT_PGPORT failed"
SET client_min_messages = warning;
DROP DATABASE IF EXISTS node_pg_test WITH (FORCE);
DROP ROLE IF EXISTS node_pg_test;
DROP ROLE IF EXISTS scram_test;
DROP ROLE IF EXISTS scram_unicode_test;
SET password_encryption = 'scram-sha-256';
CREATE ROLE node_pg_test SUPERUSER LOGIN PASSWORD 'node_pg_test';
CREATE DATABASE node_pg_test OWNER node_pg_test;
CREATE ROLE scram_test LOGIN PASSWORD 'test4scram';
CREATE ROLE scram_unicode_test LOGIN PASSWORD U&'IX-\2168';
SQL
auth=$NODE_PG_AUTH
if [ "$auth" = fixed ]; then
	for role_pw in node_pg_test:node_pg_test scram_test:test4scram scram_unicode_test:$'IX-\u2168'; do
		secret=$(scram_secret "${role_pw#*:}" "$FIXED_SCRAM_SALT") || die "python3 could not compute the SCRAM secret"
		direct_psql -d postgres -c "ALTER ROLE ${role_pw%%:*} PASSWORD '$secret'" || die "setting ${role_pw%%:*}'s secret failed"
	done
elif [ "$auth" != scram ]; then
	direct_psql -d postgres -c "SET password_encryption = 'md5'; ALTER ROLE node_pg_test PASSWORD 'node_pg_test'" 2>/dev/null
	if ! env DIRECT_PGUSER=node_pg_test DIRECT_PGPASSWORD=node_pg_test bash -c ". '$here/common.sh'; direct_psql -d node_pg_test -c 'select 1'" >/dev/null 2>&1; then
		[ "$auth" = md5 ] && die "node_pg_test cannot log in with an md5-stored password (pg_hba says scram-sha-256?)"
		direct_psql -d postgres -c "ALTER ROLE node_pg_test PASSWORD 'node_pg_test'" # scram again
		auth=scram
	else
		auth=md5
	fi
fi
note "node_pg_test logs in with $auth"
[ "$(direct_psql -d postgres -At -c 'show ssl')" = on ] ||
	echo "warning: server ssl is off: ssl-tests and gh-issues/2085 will fail (or set NODE_PG_NOSSL=1)"

export PGHOST="$TARGET_HOST" PGPORT="$TARGET_PORT" PGUSER=node_pg_test PGPASSWORD=node_pg_test PGDATABASE=node_pg_test
export SCRAM_TEST_PGUSER=scram_test SCRAM_TEST_PGPASSWORD=test4scram
export SCRAM_TEST_PGUSER_UNICODE=scram_unicode_test SCRAM_TEST_PGPASSWORD_UNICODE=$'IX-\u2168'
unset PGSSLMODE PGSERVICE PGOPTIONS PGAPPNAME PGTESTNOSSL
[ "${NODE_PG_NOSSL:-0}" = 1 ] && export PGTESTNOSSL=true

rm -rf "$NODE_PG_LOGDIR"; mkdir -p "$NODE_PG_LOGDIR"
tot_pass=0 tot_fail=0 tot_skip=0
summary=() failed_files=() failed_mocha=()

# run_pg_files PART DIR [EXTRA_ARG]: each *-tests.js file as its own process,
# as the package's Makefile does (node FILE postgres:// [native]).
run_pg_files() {
	local part=$1 dir=$2 extra=${3:-} f log rc pass skip nfiles=0 nbad=0 ppass=0 pskip=0 start t0 secs
	start=$(date +%s.%N)
	while IFS= read -r f; do
		nfiles=$((nfiles + 1))
		log="$NODE_PG_LOGDIR/$part-$(echo "${f#test/}" | tr / _).log"
		t0=$(date +%s.%N)
		( cd "$src/packages/pg" && timeout -k 5 "$NODE_PG_FILE_TIMEOUT" node "$f" postgres:// ${extra:+"$extra"} ) > "$log" 2>&1
		rc=$?
		pass=$(grep -o '✔' "$log" | wc -l)
		skip=$(grep -c 'SKIPPED\|(skipped' "$log")
		ppass=$((ppass + pass)); pskip=$((pskip + skip))
		if [ $rc != 0 ]; then
			nbad=$((nbad + 1))
			failed_files+=("$part|$f|$extra|$log")
			echo "  FAIL $part ${f#test/} (exit $rc, $pass passed before it, $(elapsed "$t0")s): $(grep -a -m1 -E 'FAILED|Error|did not complete' "$log" | cut -c1-160)"
		fi
	done < <(cd "$src/packages/pg" && find "$dir" -name '*-tests.js' | sort)
	secs=$(elapsed "$start")
	summary+=("$(printf '%-12s %3d files, %3d failed files, %4d passed, %2d skipped, %6ss' "$part" "$nfiles" "$nbad" "$ppass" "$pskip" "$secs")")
	tot_pass=$((tot_pass + ppass)); tot_fail=$((tot_fail + nbad)); tot_skip=$((tot_skip + pskip))
}

# run_mocha PART PACKAGE ARGS...: mocha in packages/PACKAGE, spec reporter.
run_mocha() {
	local part=$1 pkg=$2 log rc p f s start secs; shift 2
	log="$NODE_PG_LOGDIR/$part.log"
	: > "$log.failures"
	start=$(date +%s.%N)
	( cd "$src/packages/$pkg" && timeout -k 5 "$NODE_PG_FILE_TIMEOUT" "$src/node_modules/.bin/mocha" --reporter spec --no-colors "$@" ) > "$log" 2>&1
	rc=$?
	secs=$(elapsed "$start")
	p=$(sed -n 's/^ *\([0-9]\+\) passing.*/\1/p' "$log" | tail -1)
	f=$(sed -n 's/^ *\([0-9]\+\) failing.*/\1/p' "$log" | tail -1)
	s=$(sed -n 's/^ *\([0-9]\+\) pending.*/\1/p' "$log" | tail -1)
	p=${p:-0} f=${f:-0} s=${s:-0}
	if ! grep -qE '^ *[0-9]+ passing' "$log" || { [ $rc != 0 ] && [ "$f" = 0 ]; }; then
		echo "  FAIL $part: mocha exit $rc without a result summary (crash or ${NODE_PG_FILE_TIMEOUT}s limit), see $log"
		echo "(no mocha summary: crash or time limit)" > "$log.failures"
		f=$((f + 1))
	fi
	mocha_failures "$log" >> "$log.failures"
	[ -s "$log.failures" ] && failed_mocha+=("$part|$pkg|$log|$([ $# = 0 ] || printf '%q ' "$@")")
	grep -A3 -E '^ +[0-9]+\) ' "$log" | head -40 | sed 's/^/  /'
	summary+=("$(printf '%-12s mocha,   %3d failed,       %4d passed, %2d pending, %6ss' "$part" "$f" "$p" "$s" "$secs")")
	tot_pass=$((tot_pass + p)); tot_fail=$((tot_fail + f)); tot_skip=$((tot_skip + s))
}

# mocha_failures LOG: the full title of each failure in mocha's list after
# "N failing" ("1) suite\n   sub suite\n   test title:"), one a line.
mocha_failures() {
	awk '/^ *[0-9]+ failing/ { on = 1; next }
	     on && /^ +[0-9]+\) / { sub(/^ +[0-9]+\) /, ""); name = $0; open = !/:$/; if (!open) { sub(/:$/, "", name); print name }; next }
	     on && open { line = $0; sub(/^ +/, "", line); name = name " " line; if (line ~ /:$/) { sub(/:$/, "", name); print name; open = 0 } }' "$1"
}

have_native() { [ -f "$src/node_modules/libpq/build/Release/addon.node" ]; }

for part in $NODE_PG_PARTS; do
	case $part in
	unit) chmod 600 "$src/packages/pg/test/unit/client/pgpass.file"; run_pg_files unit test/unit ;;
	integration) run_pg_files integration test/integration ;;
	native)
		if have_native; then
			run_pg_files native-api test/native
			run_pg_files native-int test/integration native
		else
			echo "  (native part skipped: libpq addon not built)"
		fi ;;
	pgnative)
		if have_native; then run_mocha pgnative pg-native; else echo "  (pgnative part skipped: libpq addon not built)"; fi ;;
	pool) run_mocha pool pg-pool ;;
	cursor) run_mocha cursor pg-cursor ;;
	stream) run_mocha stream pg-query-stream -r ts-node/register 'test/**/*.ts' ;;
	*) die "unknown part $part" ;;
	esac
done

# A failed pg file runs once more, alone, and a mocha package with failures
# runs once more whole; what passes then is marked "passed on rerun" (timing
# tests, on a loaded machine), a mocha test that fails only then "failed on
# rerun only".  The counts stay those of the first run.
rerun() { [ "${NODE_PG_RERUN:-1}" != 0 ]; }
for e in "${failed_files[@]}"; do
	IFS='|' read -r part f extra log <<<"$e"
	if rerun && ( cd "$src/packages/pg" && timeout -k 5 "$NODE_PG_FILE_TIMEOUT" node "$f" postgres:// ${extra:+"$extra"} ) > "$log.rerun" 2>&1; then
		failure "$part ${f#test/}	passed on rerun"
		echo "  passed on rerun: $part ${f#test/}"
	else
		failure "$part ${f#test/}"
	fi
done
for e in "${failed_mocha[@]}"; do
	IFS='|' read -r part pkg log args <<<"$e"
	again=
	if rerun; then
		eval "set -- $args"
		( cd "$src/packages/$pkg" && timeout -k 5 "$NODE_PG_FILE_TIMEOUT" "$src/node_modules/.bin/mocha" --reporter spec --no-colors "$@" ) > "$log.rerun" 2>&1
		rc=$?
		if grep -qE '^ *[0-9]+ passing' "$log.rerun" && { [ $rc = 0 ] || grep -qE '^ *[0-9]+ failing' "$log.rerun"; }; then
			again=$(mocha_failures "$log.rerun"; echo .)
		fi
	fi
	while IFS= read -r t; do
		if [ -n "$again" ] && ! grep -qxF -- "$t" <<<"$again"; then
			failure "$part $t	passed on rerun"
			echo "  passed on rerun: $part $t"
		else
			failure "$part $t"
		fi
	done < "$log.failures"
	# failed in the rerun alone: reported too (run-all.sh: NEW unless known or direct)
	while IFS= read -r t; do
		[ -n "$t" ] && [ "$t" != . ] || continue
		grep -qxF -- "$t" "$log.failures" && continue
		failure "$part $t	failed on rerun only"
		echo "  failed on rerun only: $part $t"
	done <<<"$again"
done

printf '%s\n' "${summary[@]}"
echo "node-postgres: logs in $NODE_PG_LOGDIR; $tot_skip skipped/pending"
echo "node-postgres: $tot_pass passed, $tot_fail failed"
report "$tot_pass" "$tot_fail" "$tot_skip"
[ "$tot_fail" = 0 ] && [ "$tot_pass" -gt 0 ]
