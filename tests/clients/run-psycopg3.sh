#!/bin/bash
# run-psycopg3.sh HOST PORT: run psycopg 3's own test suite (tests/ of the
# psycopg repository at tag 3.1.7) against HOST:PORT, with the psycopg that
# Debian 12 installs (python3-psycopg 3.1.7, pure-Python implementation over
# the system libpq 15), and print "psycopg3: N passed, N failed".
#
# Only the tests/ folder is taken from psycopg's repository, so that the
# Debian package is what gets tested (a checkout's psycopg/ folder must not
# shadow it).  Needs: apt-get install python3-psycopg python3-psycopg-pool
#   python3-pytest python3-pytest-asyncio python3-anyio python3-dnspython
#
# Server-side requirements: password login for ordinary users over TCP (the
# md5 method with a SCRAM-stored verifier, as start-pg15.sh sets up, or
# scram-sha-256); the hstore extension available (postgresql-15 ships it).
# Setup, through the direct superuser connection (common.sh): superuser
# psycopg_test, password psycopg_test stored as a SCRAM-SHA-256 secret with
# a fixed salt (the same on every run, for pgnear's auth_file), owning
# database psycopg_test, with hstore created in it.  (Upstream CI logs in as
# postgres, a superuser, too.)
#
# Deselected, for want of what they need here:
#   -m "not mypy"   tests/test_typing.py, test_rows.py etc.: run mypy over
#                   snippets (mypy is not installed; minutes per test, and
#                   nothing about the wire);
#   -m "not proxy"  tests using the `proxy` / `deaf_port` fixtures: they start
#                   the pproxy program, which Debian does not package and we
#                   do not pip-install.
# Skipped by the suite itself: C-module tests (Debian ships the pure-Python
# implementation), CockroachDB-only tests, shapely/PostGIS, Windows/macOS.
# Kept: "slow" and "timing" tests (the latter can fail on a loaded machine).
#
# Env: DIRECT_PG* (common.sh) for setup;
#   PSYCOPG3_PYTHON    interpreter with Debian's psycopg (default /usr/bin/python3)
#   PSYCOPG3_SSLMODE   sslmode= added to the test DSN (default: none, so libpq's
#                      PGSSLMODE or its default "prefer" applies)
#   PSYCOPG3_TIMEOUT   whole-run limit, s (default 1800)
#   PSYCOPG3_ARGS      extra pytest arguments, as shell words (e.g. "-x",
#                      "tests/pool -k 'test_check or test_grow'")
#   PSYCOPG3_LOG       full output (default $SUITES_DIR/psycopg3.log)
#   PSYCOPG3_RERUN     0: no second run.  Otherwise (the default), when 1 to
#                      100 tests failed, they run once more, alone, and those
#                      that pass then are marked "passed on rerun" (timing
#                      tests fail now and then on a loaded machine).  The
#                      counts stay those of the first run.
#   PSYCOPG_SRC        a clone of github.com/psycopg/psycopg (git directory,
#                      which must have tag 3.1.7, or a checkout of that tag)
#                      to take tests/ from; default $MIRROR_ROOT/psycopg+psycopg/repo
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
need_host_port "$@"

PIN=cefcafff6e29e534f7a6ce5ba9a7e97f1bd193c2   # tag 3.1.7 (Debian 12's python3-psycopg)
src=$SUITES_DIR/psycopg3
: "${PSYCOPG3_PYTHON:=/usr/bin/python3}"
: "${PSYCOPG3_TIMEOUT:=1800}"
: "${PSYCOPG3_LOG:=$SUITES_DIR/psycopg3.log}"
: "${PSYCOPG3_ARGS:=}"

command -v psql >/dev/null || die "psql is needed (apt-get install postgresql-client-15)"
ver=$("$PSYCOPG3_PYTHON" -c 'import psycopg, psycopg_pool, pytest, pytest_asyncio, anyio; print(psycopg.__version__, psycopg.pq.__impl__, psycopg.pq.version())' 2>&1) ||
	die "$PSYCOPG3_PYTHON lacks the test requirements (apt-get install python3-psycopg python3-psycopg-pool python3-pytest python3-pytest-asyncio python3-anyio python3-dnspython): $ver"
"$PSYCOPG3_PYTHON" -c 'import dns' 2>/dev/null || echo "warning: no dnspython: the dns tests will be skipped (apt-get install python3-dnspython)"

# --- the tests/ folder at the pinned tag, nothing else ---------------------
if [ ! -f "$src/.pgnear-commit" ]; then
	REQUIRE_PIN="tag 3.1.7: the tests must match Debian's psycopg" \
		checkout_suite PSYCOPG_SRC psycopg+psycopg "$PIN" "$src" tests
	# upstream's [tool.pytest.ini_options] from pyproject.toml at the same tag
	cat > "$src/pytest.ini" <<-'INI'
	[pytest]
	asyncio_mode = auto
	filterwarnings =
	    error
	testpaths = tests
	INI
fi
note "psycopg $ver, tests $(cat "$src/.pgnear-commit") against $TARGET_HOST:$TARGET_PORT (setup via $DIRECT_PGHOST:$DIRECT_PGPORT)"

# --- setup through the direct superuser connection -----------------------
secret=$(scram_secret psycopg_test "$FIXED_SCRAM_SALT") || die "python3 could not compute the SCRAM secret"
direct_psql -d postgres <<SQL || die "setup through $DIRECT_PGHOST:$DIRECT_PGPORT failed"
SET client_min_messages = warning;
DROP DATABASE IF EXISTS psycopg_test WITH (FORCE);
DROP ROLE IF EXISTS psycopg_test;
-- password psycopg_test as a SCRAM secret with a fixed salt, so that an
-- auth_file for pgnear's auth = scram can hold the same line across runs
CREATE ROLE psycopg_test SUPERUSER LOGIN PASSWORD '$secret';
CREATE DATABASE psycopg_test OWNER psycopg_test;
SQL
direct_psql -d psycopg_test -c "CREATE EXTENSION IF NOT EXISTS hstore" ||
	die "CREATE EXTENSION hstore failed"

dsn="host=$TARGET_HOST port=$TARGET_PORT user=psycopg_test password=psycopg_test dbname=psycopg_test"
[ -n "${PSYCOPG3_SSLMODE:-}" ] && dsn="$dsn sslmode=$PSYCOPG3_SSLMODE"

# --- run ------------------------------------------------------------------
mkdir -p "$(dirname "$PSYCOPG3_LOG")"
start=$(date +%s.%N)
(
	cd "$src" || exit 2
	unset PGHOST PGHOSTADDR PGPORT PGUSER PGPASSWORD PGDATABASE PGSERVICE PGOPTIONS PSYCOPG_IMPL
	rm -rf .pytest_cache   # it remembers a segfault of the previous run
	# PSYCOPG3_ARGS is split as shell words, quotes honoured: -k 'a or b'
	eval "extra=($PSYCOPG3_ARGS)"
	timeout -k 10 "$PSYCOPG3_TIMEOUT" "$PSYCOPG3_PYTHON" -m pytest -p no:randomly \
		-rfE --tb=line -o console_output_style=classic --color=no \
		-m "not mypy and not proxy" --test-dsn "$dsn" "${extra[@]}"
) > "$PSYCOPG3_LOG" 2>&1
rc=$?
secs=$(elapsed "$start")

# pytest's last line: "== 12 failed, 1900 passed, 40 skipped, 5 deselected, 1 error in 300s =="
last=$(grep -aE '^=+ .*( passed| failed| error| no tests ran).* in [0-9.]+s' "$PSYCOPG3_LOG" | tail -1)
count() { sed -n "s/.*[ ,=]\([0-9]\+\) $1[s]\?\([ ,].*\)\?\$/\1/p" <<<"$last" | head -1; }
passed=$(count passed); failed=$(count failed); errors=$(count error); skipped=$(count skipped)
deselected=$(count deselected); xfailed=$(count xfailed); xpassed=$(count xpassed)
passed=${passed:-0} failed=${failed:-0} errors=${errors:-0} skipped=${skipped:-0}
deselected=${deselected:-0} xfailed=${xfailed:-0} xpassed=${xpassed:-0}
# errors (a fixture or teardown that failed) count as failures
failed=$((failed + errors))
if [ -z "$last" ]; then
	echo "warning: no pytest summary (exit $rc: crash or the ${PSYCOPG3_TIMEOUT}s limit); see $PSYCOPG3_LOG"
	failed=$((failed + 1))
fi
grep -aE '^(FAILED|ERROR) ' "$PSYCOPG3_LOG" | cut -c1-220 | sed 's/^/  /' | head -80
# the failed tests' node ids, without pytest's " - message"
mapfile -t failed_ids < <(grep -aE '^(FAILED|ERROR) ' "$PSYCOPG3_LOG" | sed -E 's/^(FAILED|ERROR) //; s/ - .*//' | sort -u)
if [ "${PSYCOPG3_RERUN:-1}" != 0 ] && [ "${#failed_ids[@]}" -ge 1 ] && [ "${#failed_ids[@]}" -le 100 ]; then
	(
		cd "$src" || exit 2
		unset PGHOST PGHOSTADDR PGPORT PGUSER PGPASSWORD PGDATABASE PGSERVICE PGOPTIONS PSYCOPG_IMPL
		# psycopg's conftest.py keeps a segfault mark in pytest's cache: the
		# cache must be there (no -p no:cacheprovider), and empty
		rm -rf .pytest_cache
		timeout -k 10 600 "$PSYCOPG3_PYTHON" -m pytest -p no:randomly \
			-rfE --tb=line -o console_output_style=classic --color=no \
			-m "not mypy and not proxy" --test-dsn "$dsn" "${failed_ids[@]}"
	) > "$PSYCOPG3_LOG.rerun" 2>&1
	still=$(grep -aE '^(FAILED|ERROR) ' "$PSYCOPG3_LOG.rerun" | sed -E 's/^(FAILED|ERROR) //; s/ - .*//')
	grep -qaE '^=+ .* in [0-9.]+s' "$PSYCOPG3_LOG.rerun" || still=$(printf '%s\n' "${failed_ids[@]}")
	for t in "${failed_ids[@]}"; do
		if grep -qxF -- "$t" <<<"$still"; then failure "$t"; else failure "$t	passed on rerun"; echo "  passed on rerun: $t"; fi
	done
else
	for t in "${failed_ids[@]}"; do failure "$t"; done
fi
[ -z "$last" ] && failure "(no pytest summary: crash or time limit)"
report "$passed" "$failed" "$skipped"
echo "psycopg3: $skipped skipped, $deselected deselected, $xfailed xfailed, $xpassed xpassed; exit $rc, ${secs}s, log $PSYCOPG3_LOG"
echo "psycopg3: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
