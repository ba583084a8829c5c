# target_session_attrs = nearest and routines that write where a standby
# sees no write: code that catches the standby's refusal (PL/pgSQL
# EXCEPTION WHEN OTHERS around an INSERT, in a function, a DO block and a
# procedure), a function that looks at pg_is_in_recovery() before it
# writes, and dblink_exec, whose write commits elsewhere.  A standby runs
# each of them without an error and without writing; pgnear places a
# statement that runs DO or CALL, or calls a volatile function of the
# database's own (pg_proc, oid >= 16384), on the primary.  Each case runs
# directly on the primary and through pgnear in the same script, and both
# must leave the same rows: exactly one.  By the simple and the extended
# protocol, the call first in a transaction and later in a pipelined
# batch; a dblink_exec later in a pipelined batch after a read, and after
# Parse, Describe and Flush of a read whose hold goes on (the remote
# write once: the standby runs none of the request); a dblink_exec write
# then an INSERT in one Query (the remote
# write once) and a lone dblink_exec whose write the session's next read
# sees.  What stays near: a STABLE function, PostgreSQL's own volatile
# functions (now(), random()), and a volatile function that
# nearest_read_functions vouches for (reloaded).  A function made through
# pgnear is known at once (its CREATE has every worker read the catalog
# again), and one made directly on the primary within the refresh.
# A Query whose first statement answers more than 64 kB (past the hold),
# then an INSERT: it starts on the primary, the write once and the
# answers as directly.
# What a standby refuses that a primary runs is run there too: a read of
# an UNLOGGED table, pg_current_wal_lsn(), txid_current(); and under
# session pooling lastval() and currval() after a forwarded INSERT.
# In a READ ONLY block (which runs on the standby) an advisory lock is
# refused (0A000) rather than taken where it excludes nobody, and so is a
# statement that would keep the session on the standby (a WITH HOLD
# cursor), by the extended protocol too (Parse, Bind, Execute of an
# advisory lock, its parameter untyped or declared, and of pg_notify():
# the Parse's text replaced by pgnear's DO, the client's parameters
# bound); a session lock spelled U&"pg\005fadvisory_lock" runs on the
# primary and keeps its connection.  NOTIFY, pg_notify(), and SET
# TRANSACTION ISOLATION LEVEL SERIALIZABLE or READ WRITE in such a block
# (which a primary runs and a standby cannot) are refused in pgnear's
# words, naming the way out.  SET SESSION AUTHORIZATION runs on the
# primary and keeps the session there, its writes run as that user.
# A parameter over 64 kB behind a short Parse (a driver binding a large
# value) starts on the primary, the request read whole before it is
# placed, its Bind sent at once or a moment later, and psycopg 3's insert
# of a 300 kB value.
# Under pool_mode = transaction and session.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;
use PgNearNearest;
use Time::HiRes qw(sleep);

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pg_basebackup);
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : require_tool('python3');
system($python, '-c', 'import psycopg') == 0
  or BAIL_OUT('psycopg 3 is missing (scripts/install-deps.sh installs python3-psycopg)');

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin(<<'SQL', dbname => 'movr');
CREATE EXTENSION dblink;
CREATE TABLE visits (id int, how text);
CREATE FUNCTION log_visit(n int, how text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    INSERT INTO visits VALUES (n, how);
  EXCEPTION WHEN OTHERS THEN
    RETURN 'not logged: ' || SQLERRM;
  END;
  RETURN 'logged';
END$$;
CREATE FUNCTION log_if_primary(n int, how text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  IF pg_is_in_recovery() THEN RETURN 'standby: skipped'; END IF;
  INSERT INTO visits VALUES (n, how);
  RETURN 'logged';
END$$;
CREATE PROCEDURE log_proc(n int, how text) LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO visits VALUES (n, how);
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE 'not logged';
END$$;
CREATE FUNCTION visit_count(n int) RETURNS bigint LANGUAGE sql STABLE AS
  'SELECT count(*) FROM visits WHERE id = n';
CREATE FUNCTION vouched(n int) RETURNS int LANGUAGE sql AS 'SELECT n + 1';
CREATE TABLE tickets (id serial PRIMARY KEY, what text);
CREATE ROLE auditor NOLOGIN;
GRANT ALL ON visits TO auditor;
CREATE UNLOGGED TABLE cache (k int, v text);
INSERT INTO cache VALUES (1, 'hit');
SQL
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
$eu->wait_streaming;

my $auth_dir = tmpdir(name => 'routines-auth');
write_file("$auth_dir/userlist.txt", qq{"app" "} . $us->scram_verifier('app') . qq{"\n});
my $WORKERS = $ENV{PGNEAR_TEST_WORKERS} // 2;
my $dblink = "dbname=movr host=127.0.0.1 port=" . $us->port
  . " user=$PgNearTest::PGNEAR_USER password=$PgNearTest::PGNEAR_PASSWORD";

sub proxy {
    my ($mode, %set) = @_;
    return PgNearTest::Proxy->new(
        regions  => nearest_regions($us, $eu),
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", server_tls => 'disable',
                      health_check_interval => '250ms', workers => $WORKERS, pool_mode => $mode,
                      target_session_attrs => 'nearest', %set });
}

sub login { dublin_login($_[0]->port) }
sub direct {
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $us->port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    die "direct login failed\n" unless $r->{ok};
    return $w;
}
sub rows_of { $us->psql_admin("SELECT count(*) FROM visits WHERE id = $_[0]", dbname => 'movr') }

# Sends the bytes, reads up to ReadyForQuery: the error's "SQLSTATE message", or ''.
sub run_raw {
    my ($w, $bytes) = @_;
    $w->send_raw($bytes);
    my $res = $w->read_result;
    return $res->{error} ? "$res->{error}{C} $res->{error}{M}" : '';
}

# A dblink_exec that inserts row id (its how) through its own connection to the primary.
sub dblink_insert { "SELECT dblink_exec('$dblink', 'INSERT INTO visits VALUES ($_[0], ''$_[1]'')')" }
# Parse and Describe of a read, a Flush, its three answers read; then its Bind and Execute, and more.
# Through pgnear, once the session reads near again (the read is held on the standby).
sub flushed_then {
    my ($w, $more) = @_;
    wait_until(sub { where($w) eq 'eu-west' }, timeout => 10, interval => 0.05) if $w->{near};
    $w->send_msg('P', "\0SELECT 1\0" . pack('n', 0));
    $w->send_msg('D', "S\0");
    $w->send_msg('H', '');
    my $got = join '', map { ($w->read_msg)[0] } 1 .. 3;
    return "answered $got" unless $got eq '1tT';
    return run_raw($w, _bind_execute() . $more);
}
sub _bind_execute { 'B' . pack('N', 12) . "\0\0" . pack('nnn', 0, 0, 0) . 'E' . pack('N', 9) . "\0" . pack('N', 0) }

# Each case, as [name, sql of id] run as a Query, or [name, sub] that runs it on a connection.
my @cases = (
    ['a function whose EXCEPTION clause catches the refusal',
     sub { one($_[0], "SELECT log_visit($_[1], 'fn')") }, 'logged'],
    ['... by the extended protocol',
     sub { run_raw($_[0], ext_statement('SELECT log_visit($1, $2)', $_[1], 'ext') . sync_message()) }, ''],
    ['... later in a pipelined batch, after a read',
     sub { run_raw($_[0], ext_statement('SELECT 1') . ext_statement('SELECT log_visit($1, $2)', $_[1], 'batch') . sync_message()) }, ''],
    ['a DO block with an EXCEPTION clause',
     sub { one($_[0], "DO \$\$BEGIN INSERT INTO visits VALUES ($_[1], 'do'); EXCEPTION WHEN OTHERS THEN NULL; END\$\$") },
     undef],
    ['a CALL of a procedure with an EXCEPTION clause', sub { one($_[0], "CALL log_proc($_[1], 'call')") }, undef],
    ['a function that checks pg_is_in_recovery() first',
     sub { one($_[0], "SELECT log_if_primary($_[1], 'check')") }, 'logged'],
    ['dblink_exec later in a pipelined batch, after a read',
     sub { run_raw($_[0], ext_statement('SELECT 1') . ext_statement(dblink_insert($_[1], 'later')) . sync_message()) }, ''],
    ['dblink_exec after Parse, Describe, Flush of a read (the hold goes on), with its Bind',
     sub { flushed_then($_[0], ext_statement(dblink_insert($_[1], 'flushed')) . sync_message()) }, ''],
    ['dblink_exec, then an INSERT, in one Query',
     sub { one($_[0], "SELECT dblink_exec('$dblink', 'INSERT INTO visits VALUES ($_[1], ''dblink'')');"
                     . " INSERT INTO visits VALUES ($_[1] + 1, 'after')") }, 'INSERT 0 1'],
);

my $id = 1000;
for my $mode (qw(transaction session)) {
    my $p = proxy($mode);
    my $w = login($p);
    $w->{near} = 1;
    my $d = direct();
    # Its first statement waits for its database's routines to be read, then runs near.
    is where($w), 'eu-west', "$mode: the Dublin session's first read runs on eu-west's standby";
    for my $c (@cases) {
        my ($name, $run, $answer) = @$c;
        my ($mine, $theirs) = ($id, $id + 10);
        $id += 20;
        is $run->($d, $theirs), $answer, "$mode: $name: directly on the primary, it answers";
        is rows_of($theirs), 1, "$mode: $name: ... and writes one row";
        is $run->($w, $mine), $answer, "$mode: $name: through pgnear, the same answer";
        is rows_of($mine), 1, "$mode: $name: ... and exactly one row, on the primary";
        is rows_of($mine + 1), 1, "$mode: $name: ... its INSERT once too" if $name =~ /then an INSERT/;
    }

    # A lone dblink_exec: its write is where the session's next read looks.
    my $lone = $id++;
    is one($w, "SELECT dblink_exec('$dblink', 'INSERT INTO visits VALUES ($lone, ''lone'')')"), 'INSERT 0 1',
      "$mode: a lone dblink_exec runs";
    is rows_of($lone), 1, "$mode: ... once";
    is one($w, "SELECT count(*) FROM visits WHERE id = $lone"), 1, "$mode: ... and the session's next read sees it";

    # What stays near.
    ok wait_until(sub { where($w) eq 'eu-west' }, timeout => 10, interval => 0.05),
      "$mode: the session reads near again";
    is one($w, "SELECT visit_count(1000)::text || '\@' || current_setting('cluster_name')"), '1@eu-west',
      "$mode: a STABLE function runs near";
    is one($w, "SELECT (now() IS NOT NULL AND random() < 2)::text || '\@' || current_setting('cluster_name')"),
      'true@eu-west', "$mode: PostgreSQL's own volatile functions run near";
    is one($w, "SELECT vouched(1)::text || '\@' || current_setting('cluster_name')"), '2@us-east',
      "$mode: a volatile function of the database's own runs on the primary";
    $p->update_config(settings => { nearest_read_functions => 'other, vouched' });
    $p->signal('HUP');
    ok wait_until(sub { one($w, "SELECT vouched(1)::text || '\@' || current_setting('cluster_name')") eq '2@eu-west' },
                  timeout => 10, interval => 0.1),
      "$mode: ... near once nearest_read_functions vouches for it (reloaded)";

    # A function made through pgnear: known at once.
    my $fn = "made_$mode";
    is one($w, "CREATE FUNCTION $fn(n int) RETURNS text LANGUAGE plpgsql AS \$\$BEGIN INSERT INTO visits"
               . " VALUES (n, 'made'); RETURN 'ok'; EXCEPTION WHEN OTHERS THEN RETURN 'lost'; END\$\$"),
      undef, "$mode: CREATE FUNCTION through pgnear";
    my $made = $id++;
    ok wait_until(sub { $eu->psql_admin("SELECT count(*) FROM pg_proc WHERE proname = '$fn'", dbname => 'movr') eq '1' },
                  timeout => 10), "$mode: ... replayed by the standby";
    is one($w, "SELECT $fn($made)"), 'ok', "$mode: ... called at once: it ran on the primary";
    is rows_of($made), 1, "$mode: ... its row written once";

    # One made directly on the primary: known within the refresh.
    my $fn2 = "direct_$mode";
    $us->psql_admin("CREATE FUNCTION $fn2(n int) RETURNS text LANGUAGE plpgsql AS \$\$BEGIN INSERT INTO visits"
                    . " VALUES (n, 'direct'); RETURN 'ok'; EXCEPTION WHEN OTHERS THEN RETURN 'lost'; END\$\$",
                    dbname => 'movr');
    sleep 12;    # the catalog's refresh (FUNC_CATALOG_REFRESH_MS, 10 s), and a check or two
    my $direct = $id++;
    is one($w, "SELECT $fn2($direct)"), 'ok', "$mode: a function made on the primary, called after the refresh";
    is rows_of($direct), 1, "$mode: ... its row written once";

    # A Query whose first statement answers more than 64 kB (the hold given up, the rows on their
    # way to the client), then a write: it starts on the primary, where the write runs once.
    ok wait_until(sub { where($w) eq 'eu-west' }, timeout => 10, interval => 0.05),
      "$mode: the session reads near again";
    my %big;
    for my $c ([$d, 'directly'], [$w, 'through pgnear']) {
        my ($conn, $how) = @$c;
        my $row = $big{$how} = $id++;
        my $q = $conn->query("SELECT repeat('x', 100000); INSERT INTO visits VALUES ($row, 'big')");
        $big{"$how answer"} = $q->{error} ? "$q->{error}{C} $q->{error}{M}"
                            : join(',', map { length $_->[0] } @{ $q->{rows} }) . ' ' . join(',', @{ $q->{tags} });
    }
    is $big{'through pgnear answer'}, $big{'directly answer'},
      "$mode: a read of over 64 kB then an INSERT in one Query: the same answers as directly";
    is $big{'directly answer'}, '100000 SELECT 1,INSERT 0 1', "$mode: ... both statements' answers";
    is rows_of($big{'through pgnear'}), 1, "$mode: ... the write once, on the primary";

    # What a standby refuses and a primary answers: the same answer as directly.
    for my $q (['SELECT v FROM cache WHERE k = 1', 'hit', 'a read of an UNLOGGED table (0A000 on a standby)'],
               ['SELECT pg_current_wal_lsn() IS NOT NULL', 't', 'pg_current_wal_lsn() (55000 recovery is in progress)'],
               ['SELECT txid_current() > 0', 't', 'txid_current() (XX000 on a standby)']) {
        my ($sql, $want, $what) = @$q;
        is one($d, $sql), $want, "$mode: $what: directly on the primary";
        is one($w, $sql), $want, "$mode: ... through pgnear, the same answer";
    }

    # lastval() and currval() after a forwarded INSERT (PHP PDO's lastInsertId): under session
    # pooling the session's own primary connection answers, as a direct one does.
    if ($mode eq 'session') {
        for my $c ($d, $w) {
            my $how = $c == $d ? 'directly' : 'through pgnear';
            my $q = $c->query(q{INSERT INTO tickets (what) VALUES ('t') RETURNING id});
            my $ticket = $q->{rows}[0][0];
            is one($c, 'SELECT lastval()'), $ticket, "$mode: lastval() after an INSERT, $how";
            is one($c, q{SELECT currval('tickets_id_seq')}), $ticket, "$mode: ... currval() too, $how";
        }
    }

    # Advisory locks: one in a READ ONLY block (placed on the standby) is refused rather than
    # taken where it excludes nobody; a lock spelled with U& escapes runs on the primary and keeps
    # the session's connection (it is the session's own lock).
    is one($d, 'SELECT pg_advisory_lock(77)'), '', "$mode: a direct session holds lock 77";
    ok wait_until(sub { where($w) eq 'eu-west' }, timeout => 10, interval => 0.05),
      "$mode: the session reads near again";
    is one($w, 'BEGIN READ ONLY'), undef, "$mode: BEGIN READ ONLY through pgnear";
    is where($w), 'eu-west', "$mode: ... the block runs on the standby";
    like one($w, 'SELECT pg_try_advisory_xact_lock(77)'),
      qr/^0A000 pgnear cannot run an advisory lock in a block that runs on a standby/,
      "$mode: ... an advisory lock in it is refused (0A000), not taken on the standby";
    is one($w, 'ROLLBACK'), undef, "$mode: ... ROLLBACK";
    # ... and by Parse, Bind, Execute: its parameters bound as ever, the lock refused as it runs
    my $typed = 'P' . pack('N', 4 + length("\0SELECT pg_try_advisory_xact_lock(\$1)\0") + 6)
              . "\0SELECT pg_try_advisory_xact_lock(\$1)\0" . pack('nN', 1, 20);
    for my $how (['its parameter untyped', ext_statement('SELECT pg_try_advisory_xact_lock($1)', 77)],
                 ['its parameter declared bigint', $typed . substr(ext_statement('SELECT $1', 77), 1 + unpack('N', substr(ext_statement('SELECT $1', 77), 1, 4)))],
                 ['pg_notify()', ext_statement(q{SELECT pg_notify('orders_changed', $1)}, 'x')]) {
        my ($what, $bytes) = @$how;
        is one($d, 'BEGIN READ ONLY'), undef, "$mode: directly, BEGIN READ ONLY";
        is run_raw($d, $bytes . sync_message()), '', "$mode: ... by Parse, Bind, Execute, $what runs on the primary";
        is one($d, 'ROLLBACK'), undef, "$mode: ... ROLLBACK";
        is one($w, 'BEGIN READ ONLY'), undef, "$mode: through pgnear, BEGIN READ ONLY on the standby";
        my $refused = $what =~ /notify/ ? 'NOTIFY' : 'an advisory lock';
        like run_raw($w, $bytes . sync_message()),
          qr/^0A000 pgnear cannot run \Q$refused\E in a block that runs on a standby/,
          "$mode: ... by Parse, Bind, Execute, $what is refused in pgnear's words";
        is one($w, 'ROLLBACK'), undef, "$mode: ... ROLLBACK";
    }
    is one($w, 'SELECT pg_try_advisory_xact_lock(77)::text'), 'false',
      "$mode: outside the block the lock is tried on the primary: held by the other session";
    is one($w, q{SELECT U&"pg\005fadvisory_lock"(78)}), '',
      "$mode: a session lock spelled U&\"pg\\005fadvisory_lock\" is taken";
    is one($d, 'SELECT pg_try_advisory_lock(78)::text'), 'false', "$mode: ... on the primary";
    is one($w, q{SELECT U&"pg\005fadvisory_unlock"(78)::text}), 'true',
      "$mode: ... and the session unlocks it: it kept the connection that holds it";
    is one($d, 'SELECT pg_advisory_unlock(77)::text'), 'true', "$mode: the direct session lets 77 go";

    # A statement that would keep the session on the standby, in a READ ONLY block: refused, and
    # the session's next write runs (on the primary) as ever.  (The session above keeps its
    # primary's connection for its lock: another one.)
    my $w2 = login($p);
    is where($w2), 'eu-west', "$mode: another session reads near";
    is one($w2, 'BEGIN READ ONLY'), undef, "$mode: BEGIN READ ONLY there";
    is where($w2), 'eu-west', "$mode: ... on the standby";
    like one($w2, 'DECLARE c CURSOR WITH HOLD FOR SELECT 1'),
      qr/^0A000 pgnear cannot run a WITH HOLD cursor in a block that runs on a standby/,
      "$mode: ... a WITH HOLD cursor in it is refused (it would keep the session on the standby)";
    is one($w2, 'ROLLBACK'), undef, "$mode: ... ROLLBACK";
    # What a standby cannot run in a READ ONLY block and a primary can: refused in pgnear's words.
    for my $c (['NOTIFY orders_changed', 'NOTIFY'],
               [q{SELECT pg_notify('orders_changed', 'x')}, 'NOTIFY'],
               ['SET TRANSACTION ISOLATION LEVEL SERIALIZABLE', 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE'],
               ['SET TRANSACTION READ WRITE', 'SET TRANSACTION READ WRITE']) {
        my ($sql, $what) = @$c;
        is one($d, 'BEGIN READ ONLY'), undef, "$mode: directly, BEGIN READ ONLY";
        is one($d, $sql), ($sql =~ /^SELECT/ ? '' : undef), "$mode: ... $sql runs on the primary";
        is one($d, 'ROLLBACK'), undef, "$mode: ... ROLLBACK";
        is one($w2, 'BEGIN READ ONLY'), undef, "$mode: through pgnear, BEGIN READ ONLY on the standby";
        like one($w2, $sql), qr/^0A000 pgnear cannot run \Q$what\E in a block that runs on a standby/,
          "$mode: ... $sql is refused in pgnear's words (the standby cannot run it)";
        is one($w2, 'ROLLBACK'), undef, "$mode: ... ROLLBACK";
    }
    my $after = $id++;
    is one($w2, "INSERT INTO visits VALUES ($after, 'after')"), undef, "$mode: the next write runs";
    is rows_of($after), 1, "$mode: ... once, on the primary";
    $w2->terminate;

    # SET SESSION AUTHORIZATION (another user, which no replay can carry) runs on the primary and
    # keeps the session there: its writes run, as that user.
    my $w3 = login($p);
    is where($w3), 'eu-west', "$mode: a third session reads near";
    is one($w3, 'SET SESSION AUTHORIZATION auditor'), undef, "$mode: SET SESSION AUTHORIZATION auditor";
    my $as = $id++;
    is one($w3, "INSERT INTO visits VALUES ($as, current_user) RETURNING how"), 'auditor',
      "$mode: ... then a write runs, as that user";
    is rows_of($as), 1, "$mode: ... once, on the primary";
    is one($w3, q{SELECT current_user || '@' || current_setting('cluster_name')}), 'auditor@us-east',
      "$mode: ... the session stays on the primary's connection that has its user";
    $w3->terminate;

    # A parameter over 64 kB behind a short Parse (a driver binding a large value): the write
    # starts on the primary, whole in one send or its Bind sent a moment after the Parse.
    my $big = 'x' x 200_000;
    my $large = $id++;
    is run_raw($w, ext_statement('INSERT INTO visits VALUES ($1, $2)', $large, $big) . sync_message()), '',
      "$mode: an INSERT with a 200 kB parameter runs";
    is $us->psql_admin("SELECT count(*) || ':' || max(length(how)) FROM visits WHERE id = $large", dbname => 'movr'),
      '1:200000', "$mode: ... once, the whole value on the primary";
    my $split = $id++;
    my $bytes = ext_statement('INSERT INTO visits VALUES ($1, $2)', $split, $big) . sync_message();
    my $parse_len = 1 + unpack('N', substr($bytes, 1, 4));
    $w->send_raw(substr($bytes, 0, $parse_len + 3000));
    sleep 0.3;
    is run_raw($w, substr($bytes, $parse_len + 3000)), '', "$mode: ... and with the Bind sent 0.3 s after the Parse";
    is rows_of($split), 1, "$mode: ... once";
    is one($w, "SELECT count(*) FROM visits WHERE id IN ($large, $split) AND length(how) = 200000"), 2,
      "$mode: the session reads both back";
    my $driver = $id++;
    my ($rc, $out, $err) = run_cmd([$python, '-c', <<'PY', $p->port, $driver], timeout => 60);
import sys, psycopg
with psycopg.connect(host="127.0.0.1", port=sys.argv[1], user="app", password="app-secret", dbname="movr",
                     options="-c pgnear.location=53.35,-6.26", autocommit=True) as c:
    c.execute("INSERT INTO visits VALUES (%s, %s)", (int(sys.argv[2]), "y" * 300000))
    print(c.execute("SELECT length(how) FROM visits WHERE id = %s", (int(sys.argv[2]),)).fetchone()[0])
PY
    is "$rc " . ($out =~ s/\s+$//r), '0 300000', "$mode: psycopg 3 inserts a 300 kB value and reads it back"
      or diag $err;
    is rows_of($driver), 1, "$mode: ... once";

    $w->terminate;
    $d->terminate;
    $p->stop;
}

done_testing;
