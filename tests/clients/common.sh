# common.sh: helpers shared by the client-suite runners. Sourced, not run.
#
# A runner is called as `run-X.sh HOST PORT`. HOST:PORT is the endpoint the
# suite talks to (PostgreSQL itself, or pgnear in front of it).  Objects the
# suite needs are (re)created through a *direct* superuser connection to the
# PostgreSQL server, given by
#   DIRECT_PGHOST, DIRECT_PGPORT   default: HOST, PORT (i.e. a direct run)
#   DIRECT_PGUSER                  default: postgres
#   DIRECT_PGPASSWORD              default: unset (trust, or ~/.pgpass)
# Suites are extracted under SUITES_DIR (default /tmp/pgnear-client-suites)
# from their source (suite_source below); nothing goes into the repository.
# When CLIENTS_RESULT is set, a runner writes "PASSED FAILED SKIPPED" to
# that file, and when CLIENTS_FAILURES is set, one line per failure (a test
# name or file) to that one: run-all.sh reads both.

set -u

: "${SUITES_DIR:=/tmp/pgnear-client-suites}"
# The salt of the fixed SCRAM secrets ("pgnear-psycopg3!").
FIXED_SCRAM_SALT=cGduZWFyLXBzeWNvcGczIQ==

die() { echo "error: $*" >&2; exit 2; }
note() { echo "== $*"; }

need_host_port() {
	[ $# -ge 2 ] || die "usage: $(basename "$0") HOST PORT"
	TARGET_HOST=$1
	TARGET_PORT=$2
	: "${DIRECT_PGHOST:=$TARGET_HOST}"
	: "${DIRECT_PGPORT:=$TARGET_PORT}"
	: "${DIRECT_PGUSER:=postgres}"
	export DIRECT_PGHOST DIRECT_PGPORT DIRECT_PGUSER
}

# direct_psql [psql args...]: superuser psql on the server itself, never via
# the endpoint under test.
direct_psql() {
	env -u PGSERVICE -u PGSSLMODE PGHOST="$DIRECT_PGHOST" PGPORT="$DIRECT_PGPORT" \
		PGUSER="$DIRECT_PGUSER" ${DIRECT_PGPASSWORD+PGPASSWORD="$DIRECT_PGPASSWORD"} \
		PGCONNECT_TIMEOUT=10 psql -X -q -v ON_ERROR_STOP=1 "$@"
}

# Prints the environment a child process needs to reach the server directly,
# as a JSON object; used by the postgres.js harness.
direct_env_json() {
	node -e '
	const e = { PGHOST: process.env.DIRECT_PGHOST, PGPORT: process.env.DIRECT_PGPORT,
	            PGUSER: process.env.DIRECT_PGUSER, PGDATABASE: "postgres" };
	if (process.env.DIRECT_PGPASSWORD !== undefined) e.PGPASSWORD = process.env.DIRECT_PGPASSWORD;
	process.stdout.write(JSON.stringify(e));'
}

# suite_source VAR OWNER+REPO: where a suite's source is.  $VAR (NODE_PG_SRC,
# POSTGRESJS_SRC, PSYCOPG_SRC) when set: a git directory (bare or not) or a
# plain checkout.  Otherwise $MIRROR_ROOT/OWNER+REPO/repo, the layout of a
# mirror of GitHub repositories (one bare git directory per repository).
suite_source() {
	local var=$1 mirror=$2
	if [ -n "${!var:-}" ]; then
		echo "${!var}"
	elif [ -n "${MIRROR_ROOT:-}" ]; then
		echo "$MIRROR_ROOT/$mirror/repo"
	else
		die "no source for github.com/${mirror/+//}: set $var to a clone of it (git directory or checkout), or MIRROR_ROOT to a mirror holding $mirror/repo"
	fi
}

# checkout_suite VAR OWNER+REPO PINNED_COMMIT DEST [PATH...]
# Extracts a source tree (or only PATHs of it) into DEST, once.  From a git
# directory the pinned commit is used when the repository has it, else its
# HEAD (with a warning); a plain directory is copied as it is.
checkout_suite() {
	local var=$1 mirror=$2 pin=$3 dest=$4 src ref
	shift 4
	if [ -f "$dest/.pgnear-commit" ]; then
		return 0
	fi
	src=$(suite_source "$var" "$mirror") || exit 2
	rm -rf "$dest"
	mkdir -p "$dest"
	if [ -d "$src" ] && git --git-dir="$src" rev-parse --git-dir >/dev/null 2>&1; then
		:
	elif [ -d "$src/.git" ]; then
		src=$src/.git
	elif [ -d "$src" ]; then
		local p
		for p in "${@:-.}"; do
			[ -e "$src/$p" ] || { rm -rf "$dest"; die "$src has no $p"; }
			cp -a "$src/$p" "$dest/$(dirname "$p")/"
		done
		echo "copy-of:$src" > "$dest/.pgnear-commit"
		return 0
	else
		rm -rf "$dest"
		die "$src does not exist (set $var, or MIRROR_ROOT)"
	fi
	ref=HEAD
	if git --git-dir="$src" cat-file -e "$pin^{commit}" 2>/dev/null; then
		ref=$pin
	elif [ -n "${REQUIRE_PIN:-}" ]; then
		rm -rf "$dest"
		die "$src lacks the pinned commit $pin ($REQUIRE_PIN)"
	else
		echo "warning: $src lacks pinned commit $pin; using HEAD" >&2
	fi
	git --git-dir="$src" archive "$ref" "$@" | tar -x -C "$dest" || die "git archive from $src failed"
	git --git-dir="$src" rev-parse "$ref" > "$dest/.pgnear-commit"
}

# report PASSED FAILED SKIPPED: the counts, for run-all.sh.
report() {
	[ -n "${CLIENTS_RESULT:-}" ] && echo "$1 $2 $3" > "$CLIENTS_RESULT"
	return 0
}

# failure NAME: one failed test (or file), for run-all.sh.
failure() {
	[ -n "${CLIENTS_FAILURES:-}" ] && printf '%s\n' "$1" >> "$CLIENTS_FAILURES"
	return 0
}

# scram_secret PASSWORD SALT: the SCRAM-SHA-256 secret that PostgreSQL stores
# for PASSWORD with this salt (base64) and 4096 iterations.  With a fixed
# salt it is the same on every run, so that an auth_file written beforehand
# matches the role.  The password is normalised with NFKC, which is all of
# SASLprep that the passwords here need.
scram_secret() {
	python3 - "$1" "$2" <<-'PY'
	import base64, hashlib, hmac, sys, unicodedata
	password = unicodedata.normalize("NFKC", sys.argv[1]).encode()
	salt = base64.b64decode(sys.argv[2])
	salted = hashlib.pbkdf2_hmac("sha256", password, salt, 4096)
	key = lambda what: hmac.new(salted, what, "sha256").digest()
	stored = hashlib.sha256(key(b"Client Key")).digest()
	b64 = lambda b: base64.b64encode(b).decode()
	print(f"SCRAM-SHA-256$4096:{sys.argv[2]}${b64(stored)}:{b64(key(b'Server Key'))}")
	PY
}

# elapsed START: seconds since START (from `date +%s.%N`), one decimal.
elapsed() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }
