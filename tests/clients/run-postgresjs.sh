#!/bin/bash
# run-postgresjs.sh HOST PORT: run postgres.js's own test suite (tests/index.js,
# ESM build, ~250 tests) against HOST:PORT and print "postgresjs: N passed, N failed".
#
# Server-side requirements (see README.md): user postgres may log in over TCP
# without a password (trust) to databases postgres and postgres_js_test,
# postgres_js_test by trust, postgres_js_test_md5 by md5 and
# postgres_js_test_scram by scram-sha-256; ssl = on; wal_level = logical;
# max_prepared_transactions > 0.
#
# Env: DIRECT_PG* (see common.sh) for the setup connection;
#   PGSOCKET     directory of the endpoint's Unix socket (default /tmp) for
#                the "Unix socket" test;
#   PGPORT2      second endpoint port for "Multiple hosts" (default PORT);
#   PJS_TIMEOUT  whole-suite wall clock limit in seconds (default 300);
#   PJS_LOG      where to keep the full output (default $SUITES_DIR/postgresjs.log);
#   PJS_PGPASSWORD  password for user postgres, if the endpoint wants one
#                (postgres.js then sends it for every login without its own);
#   PJS_RERUN    0: no second run; otherwise, after 1 to 20 failures the
#                suite runs once more and the tests that pass then are
#                marked "passed on rerun", those that fail only then
#                "failed on rerun only" (the counts are the first run's);
#   PJS_SKIP     names of tests not to run, separated by ";" (each must name
#                exactly one test); they count as skipped;
#   POSTGRESJS_SRC  a clone of github.com/porsager/postgres (git directory
#                or checkout); default $MIRROR_ROOT/porsager+postgres/repo.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
need_host_port "$@"

PIN=e7dfa14519f363229ccc3ead7b1b2f2051937efb   # postgres.js v3.4.9, tested 2026-11
src=$SUITES_DIR/postgresjs
: "${PJS_TIMEOUT:=300}"
: "${PJS_LOG:=$SUITES_DIR/postgresjs.log}"

command -v node >/dev/null || die "node is needed (apt-get install nodejs)"
command -v psql >/dev/null || die "psql is needed (apt-get install postgresql-client-15)"

checkout_suite POSTGRESJS_SRC porsager+postgres "$PIN" "$src"
if [ ! -f "$src/.pgnear-patched" ]; then
	node "$here/patch-postgresjs.mjs" "$src" >/dev/null || die "patching postgres.js tests failed"
	touch "$src/.pgnear-patched"
fi
note "postgres.js $(cat "$src/.pgnear-commit") against $TARGET_HOST:$TARGET_PORT (setup via $DIRECT_PGHOST:$DIRECT_PGPORT)"

# --- setup through the direct superuser connection -----------------------
setup() {
	direct_psql -d postgres <<-'SQL' || die "setup through $DIRECT_PGHOST:$DIRECT_PGPORT failed"
	SET client_min_messages = warning;
	DROP DATABASE IF EXISTS postgres_js_test WITH (FORCE);
	DROP ROLE IF EXISTS postgres_js_test;
	DROP ROLE IF EXISTS postgres_js_test_md5;
	DROP ROLE IF EXISTS postgres_js_test_scram;
	CREATE ROLE postgres_js_test LOGIN;
	SET password_encryption = 'md5';
	CREATE ROLE postgres_js_test_md5 LOGIN PASSWORD 'postgres_js_test_md5';
	SET password_encryption = 'scram-sha-256';
	CREATE ROLE postgres_js_test_scram LOGIN PASSWORD 'postgres_js_test_scram';
	CREATE DATABASE postgres_js_test OWNER postgres_js_test;
	GRANT ALL ON DATABASE postgres_js_test TO postgres_js_test;
	-- earlier aborted runs may leave ssl switched off by the "SSL prefer" test
	ALTER SYSTEM SET ssl = on;
	SELECT pg_reload_conf() \g /dev/null
	SQL
}
setup
# Preflight: settings that need a restart cannot be fixed from here; say so.
direct_psql -d postgres -At -c "select name || '=' || setting from pg_settings where name in ('ssl','wal_level','max_prepared_transactions','server_version')" |
while IFS='=' read -r k v; do
	case "$k=$v" in
	wal_level=logical|max_prepared_transactions=[1-9]*|ssl=on) ;;
	wal_level=*) echo "warning: wal_level=$v: the subscribe/replication tests will fail (needs logical)" ;;
	max_prepared_transactions=*) echo "warning: max_prepared_transactions=0: the sql.prepare tests will fail" ;;
	ssl=*) echo "warning: server ssl=$v (no certificate?): the SSL tests will fail" ;;
	server_version=*) echo "server_version=$v" ;;
	esac
done

# --- which tests ----------------------------------------------------------
# PJS_SKIP: a copy of tests/index.js (same folder, for its imports) with
# those tests turned from t( into nt(, the harness's "not this test".
run_file=tests/index.js
skipped=0
if [ -n "${PJS_SKIP:-}" ]; then
	run_file=tests/index.pgnear-skip.js
	cp "$src/tests/index.js" "$src/$run_file"
	IFS=';' read -r -a skip_names <<<"$PJS_SKIP"
	for name in "${skip_names[@]}"; do
		n=$(grep -cF "t('$name'," "$src/$run_file")
		[ "$n" = 1 ] || die "PJS_SKIP: \"$name\" names $n tests, not 1"
		NAME=$name perl -i -pe 's/^t\(\x27\Q$ENV{NAME}\E\x27,/nt(\x27$ENV{NAME}\x27,/' "$src/$run_file"
		grep -qF "nt('$name'," "$src/$run_file" || die "PJS_SKIP: \"$name\" is not a top-level t( test"
		skipped=$((skipped + 1))
		echo "skipped: $name"
	done
fi

# --- run ------------------------------------------------------------------
mkdir -p "$(dirname "$PJS_LOG")"
# run_once LOG: the suite once; sets rc, passed, reported, failed.
# Each passing test writes one check mark; each failed or unfinished test a
# "⛔️ NAME at line N ..." line at the end (all of them, once patched).
# Tests that neither passed nor were reported (the run hit PJS_TIMEOUT or
# crashed) count as failed too: failed = defined - passed.
run_once() {
	(
		cd "$src" || exit 2
		export PGHOST="$TARGET_HOST" PGPORT="$TARGET_PORT" PGUSER=postgres
		PJS_DIRECT_ENV=$(direct_env_json)
		export PJS_DIRECT_ENV
		unset PGDATABASE PGPASSWORD PGSSLMODE PGSERVICE PGOPTIONS
		[ -n "${PJS_PGPASSWORD:-}" ] && export PGPASSWORD="$PJS_PGPASSWORD"
		timeout -k 10 "$PJS_TIMEOUT" node "$run_file"
	) > "$1" 2>&1
	rc=$?
	passed=$(grep -o '✅' "$1" | wc -l)
	reported=$(grep -c '⛔️' "$1")
	failed=$((total - passed))
}
failed_names() { sed -n 's/.*⛔️ \(.*\) at line [0-9]* .*/\1/p' "$1"; }

total=$(grep -cE "^(t|ot)\(" "$src/$run_file")
start=$(date +%s.%N)
run_once "$PJS_LOG"
secs=$(elapsed "$start")
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	echo "warning: suite hit the ${PJS_TIMEOUT}s limit; unfinished tests count as failed"
elif [ "$reported" != "$failed" ]; then
	echo "warning: $failed tests did not pass but $reported were reported; see $PJS_LOG"
fi
sed 's/✅//g' "$PJS_LOG" | grep -a -A2 '⛔️' | sed 's/^/  /' | head -80
# A few failures: the whole suite once more (10 s), after a fresh setup;
# tests that pass then are marked "passed on rerun" (timing, under load).
# The counts stay those of the first run.
first=$(failed_names "$PJS_LOG")
first_passed=$passed first_failed=$failed first_rc=$rc first_reported=$reported
again= reran=0
if [ "${PJS_RERUN:-1}" != 0 ] && [ "$failed" -ge 1 ] && [ "$failed" -le 20 ] && [ "$reported" = "$failed" ]; then
	setup
	run_once "$PJS_LOG.rerun"
	again=$(failed_names "$PJS_LOG.rerun")
	reran=1
	[ "$reported" = "$failed" ] || reran=0   # the rerun itself broke down: no verdict
	echo "rerun: $passed passed, $failed failed, log $PJS_LOG.rerun"
fi
passed=$first_passed failed=$first_failed rc=$first_rc reported=$first_reported
while IFS= read -r t; do
	[ -n "$t" ] || continue
	if [ "$reran" = 1 ]; then
		if grep -qxF -- "$t" <<<"$again"; then failure "$t"; else failure "$t	passed on rerun"; echo "  passed on rerun: $t"; fi
	else
		failure "$t"
	fi
done <<<"$first"
# A test that fails only in the rerun is reported too: the rerun runs on
# what the first left behind (statements a pool kept, say), which is how
# some differences show.  run-all.sh says NEW unless it is known or direct.
while IFS= read -r t; do
	[ -n "$t" ] && [ "$reran" = 1 ] || continue
	grep -qxF -- "$t" <<<"$first" && continue
	failure "$t	failed on rerun only"
	echo "  failed on rerun only: $t"
done <<<"$again"
[ "$reported" != "$failed" ] && failure "($((failed - reported)) tests neither passed nor reported: crash or time limit)"
echo "postgres.js: $total tests run, $skipped skipped, exit $rc, ${secs}s, log $PJS_LOG"
echo "postgresjs: $passed passed, $failed failed"
report "$passed" "$failed" "$skipped"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
