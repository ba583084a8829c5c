# Pause steps and stopping a run.  A pause step closes the gate of
# migrations_db in the region it runs in: under pgbench -c 16 to movr in
# eu-west, MIGRATE UP runs one in both regions and pgbench loses nothing;
# while it holds, a query to movr in eu-west waits for the step's end and
# sees its change, while database postgres in eu-west and movr in us-east
# answer at once.  A client left in a transaction keeps the gate from
# closing: after migration_hold_timeout the step is not started (55P03,
# naming the client) and the gate opens again; with FORCE that client is
# ended (57P01) and the step runs.  MIGRATE ABORT from a second admin
# session stops a transactional step (rolled back, no history row), a
# no-transaction one (failed at the canceled statement, RETRY goes on from
# there) and a pause step (held clients let go); psql's Ctrl-C and the
# admin's session ending stop a run the same way; a second migration while
# one runs is refused at once (55006).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IO::Select;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';

my $eu = PgNearTest::Cluster->new(name => 'eu-west');
my $us = PgNearTest::Cluster->new(name => 'us-east');

my $auth_dir = PgNearTest::tmpdir(name => 'pause-auth');
write_file("$auth_dir/userlist.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
my $dir = PgNearTest::tmpdir(name => 'pause-steps');

# How long the sleeping steps sleep: set per region, so that a step the
# test stops sleeps long and the same step run again does not.  The first
# (pause) step sleeps 5 s in eu-west, under pgbench, and not at all in
# us-east, where nothing waits on it.
for my $c ($eu, $us) {
    my ($rc, $out, $err) = pgbench(['-i', '-s', '1', '-q'], $c->conninfo, timeout => 60);
    is $rc, 0, $c->name . ': pgbench -i on movr' or diag $err;
    $c->psql_admin(['CREATE TABLE sleep_for (s float8)',
                    'INSERT INTO sleep_for VALUES (' . ($c == $eu ? 5 : 0) . ')'], dbname => 'movr');
}

my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
    settings => { auth => 'passthrough', server_tls => 'disable', admin_users => 'admin',
                  auth_file => "$auth_dir/userlist.txt", health_check_interval => '1s', health_check_timeout => '5s',
                  migrations_dir => $dir, migrations_db => 'movr',
                  migration_order => 'eu-west, us-east', migration_hold_timeout => '2s' });
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');

sub admin_full { psql($admin_ci, $_[0], verbose => 1, timeout => 60) }
sub in_region { my ($r, %o) = @_; $p->conninfo(options => "-c pgnear.region=$r", %o) }

sub wire_in {
    my ($region) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { options => "-c pgnear.region=$region" });
    return $r->{ok} ? $w : undef;
}

# $code's result, and how long it took.
sub timed { my $t0 = time; my @r = $_[0]->(); return (time - $t0, @r) }

sub all_notes { my @n = $_[0] =~ /NOTICE:\s+(?:00000: )?(.*)/g; \@n }
my $progress_re = qr/, statement \d+ of \d+ \(line \d+\), [\d.]+ s into the step$/;
sub notes { [grep { !/$progress_re/ } @{ all_notes($_[0]) }] }
sub progress { [grep { /$progress_re/ } @{ all_notes($_[0]) }] }

sub history { schema_history($_[0]) }
sub states { schema_states($_[0]) }
sub has_table { $_[0]->psql_admin("SELECT to_regclass('$_[1]') IS NOT NULL", dbname => 'movr') eq 't' }

# pgnear's step backends in movr sleeping in pg_sleep.
sub sleeping {
    $_[0]->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE datname = 'movr'"
                    . " AND application_name = 'pgnear migrations' AND state = 'active'"
                    . " AND query LIKE 'SELECT pg_sleep(%'", dbname => 'movr');
}
sub migration_conns {
    $_[0]->psql_admin("SELECT count(*) FROM pg_stat_activity"
                    . " WHERE application_name = 'pgnear migrations'", dbname => 'movr');
}

# A command in the background: fork, its (rc, out, err) left in a file.
my $bg_n = 0;
sub bg {
    my ($code) = @_;
    my $file = "$auth_dir/bg-" . ++$bg_n;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my @r = $code->();
        write_file($file, join("\0", map { $_ // '' } @r));
        POSIX::_exit(0);
    }
    return { pid => $pid, file => $file, done => 0 };
}
sub bg_ended { my $b = shift; $b->{done} ||= waitpid($b->{pid}, WNOHANG) == $b->{pid}; $b->{done} }
sub bg_result {
    my ($b, $timeout) = @_;
    return (-1, '', 'still running') unless wait_until(sub { bg_ended($b) }, timeout => $timeout // 60);
    return (-1, '', 'no result') unless -e $b->{file};
    return split /\0/, slurp_file($b->{file}), -1;
}
sub bg_admin { my $sql = shift; bg(sub { psql($admin_ci, $sql, verbose => 1, timeout => 90) }) }

# ------------------------------------------------------------------ a pause step under pgbench

write_file("$dir/0001_note.sql", "-- pgnear: pause\n"
  . "ALTER TABLE pgbench_accounts ADD COLUMN note text;\nSELECT pg_sleep((SELECT s FROM sleep_for));\n");

my $bench = bg(sub { pgbench(['-n', '-c', '16', '-j', '2', '-T', '10'], in_region('eu-west'), timeout => 90) });
ok wait_until(sub { $eu->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE datname = 'movr'"
                                  . " AND application_name = 'pgbench'", dbname => 'movr') >= 16 },
              timeout => 20), 'pgbench -c 16 through pgnear: 16 sessions of movr in eu-west';
sleep 1;
my $up = bg_admin('MIGRATE UP');
ok wait_until(sub { sleeping($eu) == 1 || bg_ended($up) }, timeout => 30) && !bg_ended($up),
    'MIGRATE UP: eu-west\'s pause step comes to its sleep';
# When the step's pg_sleep(5) ends, in the server's own clock: a query to
# movr in eu-west sent now is held, and must run after it, however long
# the checks below take under load.
my $sleep_end = $eu->psql_admin("SELECT query_start + interval '5 s' FROM pg_stat_activity"
                              . " WHERE application_name = 'pgnear migrations' AND state = 'active'"
                              . " AND query LIKE 'SELECT pg_sleep(%'", dbname => 'movr');
my $note_sql = "SELECT count(*) FROM pg_attribute WHERE attrelid = 'pgbench_accounts'::regclass"
  . " AND attname = 'note'";
my $held_sql = "SELECT ($note_sql) || ' ' || (clock_timestamp() >= '$sleep_end'::timestamptz)::text";
my $held_query = bg(sub { psql(in_region('eu-west'), $held_sql) });
# Held by pgnear between transactions, not blocked on the server by the
# step's lock: each pgbench backend is there, idle, in no transaction.
is $eu->psql_admin("SELECT count(*) || ' ' || count(*) FILTER (WHERE state = 'idle')"
                 . " FROM pg_stat_activity WHERE datname = 'movr' AND application_name = 'pgbench'",
                   dbname => 'movr'), '16 16', '... the 16 pgbench sessions are held: their backends all idle';

# "At once": answered while the step still sleeps, by the server's clock
# (the servers share this machine's), however slow a login is under load.
my $before_end = "(clock_timestamp() < '$sleep_end'::timestamptz)::text";
my ($took, $rc, $out, $err) =
  timed(sub { psql(in_region('eu-west', dbname => 'postgres'), "SELECT '1 ' || $before_end") });
is "$rc $out", '0 1 true', 'while it holds, database postgres in eu-west answers, at once' or diag $err;
note sprintf 'postgres in eu-west: %.3f s', $took;
($took, $rc, $out, $err) =
  timed(sub { psql(in_region('us-east'), "SELECT count(*) || ' ' || $before_end FROM pgbench_branches") });
is "$rc $out", '0 1 true', 'movr in us-east answers, at once' or diag $err;
note sprintf 'movr in us-east: %.3f s', $took;
# Answering those must not have ended the step: its backend still sleeps
# while the server's clock is before the sleep's end.  On a machine slow
# enough that the 5 s are over by now, this cannot be seen: said, not passed.
my ($still, $in_time) = split / /, $eu->psql_admin(
    "SELECT count(*) || ' ' || (clock_timestamp() < '$sleep_end'::timestamptz)::text FROM pg_stat_activity"
  . " WHERE datname = 'movr' AND application_name = 'pgnear migrations' AND state = 'active'"
  . " AND query LIKE 'SELECT pg_sleep(%'", dbname => 'movr');
SKIP: {
    skip 'the step\'s 5 s had ended by the server\'s clock before it could be looked at', 1
      if ($in_time // '') eq 'false' && ($still // '') eq '0';
    is $still, 1, 'the step still sleeps after those';
}
($rc, $out, $err) = bg_result($held_query, 60);
my ($seen, $after) = split / /, $out // '';
is "$rc " . ($seen // ''), '0 1', 'a query to movr in eu-west is answered, and sees the step\'s column' or diag $err;
is $after, 'true', '... once the step has ended: it ran after the step\'s sleep, by the server\'s clock'
  or diag "sleep ends '$sleep_end'";

($rc, $out, $err) = bg_result($up, 60);
is $rc, 0, 'MIGRATE UP with a pause step succeeds' or diag $err;
is $out, 'MIGRATE', '... tag MIGRATE';
my @n = map { s/\d+ ms/N ms/gr } @{ notes($err) };
is_deeply \@n, [
    (map { ("region \"$_\": step 1 (note) is a pause step: holding the sessions of database \"movr\" there",
            "region \"$_\": the sessions of database \"movr\" are held (N ms to close the gate)",
            "region \"$_\": step 1 (note) applied, 2 statements in N ms",
            "region \"$_\": the sessions of database \"movr\" go on, held N ms") } 'eu-west', 'us-east'),
    'the longest a pause step held its sessions: N ms'],
    '... NOTICEs: holding, held, applied, let go, in each region, then the longest hold'
    or diag explain notes($err);
is_deeply [map { /^region "([^"]+)": step 1 \(note\), statement (\d) of 2 \(line (\d)\), [\d.]+ s into the step$/
                 ? "$1/$2/$3" : $_ } @{ progress($err) }],
    ['eu-west/1/2', 'eu-west/2/3', 'us-east/1/2', 'us-east/2/3'],
    '... and a progress NOTICE per statement';
my ($to_close) = $err =~ /region "eu-west": the sessions of database "movr" are held \((\d+) ms to close/;
my ($held) = $err =~ /region "eu-west": the sessions of database "movr" go on, held (\d+) ms/;
my ($longest) = $err =~ /the longest a pause step held its sessions: (\d+) ms/;
cmp_ok $held // 0, '>=', 5000, 'eu-west held its sessions through the 5 s step';
cmp_ok $longest // 0, '>=', $held // 1e9, '... the longest hold is at least that';
diag sprintf 'under pgbench -c 16: %s ms to close the gate, held %s ms in eu-west, longest hold %s ms',
    $to_close // '?', $held // '?', $longest // '?';

my ($brc, $bout, $berr) = bg_result($bench, 60);
is $brc, 0, 'pgbench exits 0' or diag $berr;
my $r = parse_pgbench($bout);
is $r->{failed} // 0, 0, '... no failed transaction';
cmp_ok $r->{processed} // 0, '>', 0, '... transactions processed';
diag sprintf 'pgbench: %s transactions, %s tps, latency average %s ms',
    $r->{processed} // '?', $r->{tps} // '?', $r->{latency_avg} // '?';
for my $c ($eu, $us) {
    is_deeply states($c), ['1:applied'], $c->name . ': step 1 applied';
    is $c->psql_admin($note_sql, dbname => 'movr'), 1, $c->name . ': the column is there';
}

# ------------------------------------------------------------------ a client in a transaction

write_file("$dir/0002_hold.sql", "-- pgnear: pause\nCREATE TABLE held (i int);\n");
my $holder = wire_in('eu-west');
ok $holder, 'a client of movr in eu-west';
is $holder->query('BEGIN')->{tag}, 'BEGIN', '... begins a transaction';
is $holder->query('SELECT 1')->{rows}[0][0], 1, '... and queries in it';

($took, $rc, $out, $err) = timed(sub { admin_full('MIGRATE UP') });
is sqlstate($err), '55P03', 'MIGRATE UP: 55P03';
like $err, qr/could not hold the sessions of database "movr" in region "eu-west" within migration_hold_timeout \(2000 ms\): step 2 \(hold\) was not started/,
    '... naming database, region, timeout and step';
like $err, qr/DETAIL:\s+Still busy: client \d+ \(127\.0\.0\.1:\d+\) in a transaction/, '... and the client in a transaction';
cmp_ok $took, '>=', 1.9, '... after migration_hold_timeout';
cmp_ok $took, '<', 5, '... not much later';
note sprintf 'MIGRATE UP gave up after %.3f s', $took;
is_deeply states($eu), ['1:applied'], 'eu-west: nothing recorded for step 2';
is_deeply states($us), ['1:applied'], 'us-east: nor there';
ok !has_table($eu, 'held'), '... and it did not run';
($took, $rc, $out, $err) = timed(sub { psql(in_region('eu-west'), 'SELECT count(*) FROM pgbench_branches') });
is "$rc $out", '0 1', 'a new client of movr in eu-west is answered: the gate is open' or diag $err;
# A closed gate would hold it until the step ends; a psql login alone
# takes most of a second on CI's machine.
cmp_ok $took, '<', 1.9, sprintf('... at once: before migration_hold_timeout (%.2f s)', $took);
my $q = $holder->query('COMMIT');
is $q->{tag}, 'COMMIT', 'the client in a transaction commits' or diag explain $q;

is $holder->query('BEGIN')->{tag}, 'BEGIN', 'it begins another';
($took, $rc, $out, $err) = timed(sub { admin_full('MIGRATE UP FORCE') });
is $rc, 0, 'MIGRATE UP FORCE succeeds' or diag $err;
like $err, qr/region "eu-west": the sessions of database "movr" are held \(\d+ ms to close the gate, busy sessions ended by FORCE\)/,
    '... saying it ended busy sessions';
cmp_ok $took, '>=', 1.9, '... after migration_hold_timeout';
$q = $holder->query('SELECT 1');
is sqlstate($q->{error}), '57P01', 'the client in a transaction was ended: 57P01';
like $q->{error}{D} // '', qr/Migration step 2 \(hold\) holds the sessions of database "movr" in region "eu-west".*FORCE/,
    '... its detail names the step and FORCE' or diag explain $q->{error};
for my $c ($eu, $us) {
    is_deeply states($c), ['1:applied', '2:applied'], $c->name . ': step 2 applied';
    ok has_table($c, 'held'), $c->name . ': its table is there';
}

# ------------------------------------------------------------------ MIGRATE ABORT, transactional step

($rc, $out, $err) = admin_full('MIGRATE ABORT');
is sqlstate($err), '55000', 'MIGRATE ABORT with nothing running: 55000';
like $err, qr/no migration is running on this pgnear/, '... saying so';

$_->psql_admin('UPDATE sleep_for SET s = 30', dbname => 'movr') for $eu, $us;
write_file("$dir/0003_sleepy.sql", "CREATE TABLE a (i int);\nSELECT pg_sleep((SELECT s FROM sleep_for));\n");
$up = bg_admin('MIGRATE UP');
ok wait_until(sub { sleeping($eu) == 1 || bg_ended($up) }, timeout => 30) && !bg_ended($up),
    'MIGRATE UP: step 3 sleeps in eu-west';
my $step_pid = $eu->psql_admin("SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(%'"
                             . " AND application_name = 'pgnear migrations'", dbname => 'movr');
for my $cmd ('MIGRATE UP', 'MIGRATE NEXT', 'MIGRATE RETRY 3', 'MIGRATE DOWN TO 1',
             'MIGRATE RESOLVE 3 AS failed') {
    ($took, $rc, $out, $err) = timed(sub { admin_full($cmd) });
    is sqlstate($err), '55006', "$cmd meanwhile: 55006";
    like $err, qr/a migration is already running on this pgnear/, '... saying so';
    like $err, qr/DETAIL:\s+MIGRATE UP by admin admin, started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\./,
        '... and which one: command, admin, when';
    cmp_ok $took, '<', 5, sprintf('... at once, not after the step\'s 30 s (%.2f s)', $took);
}
($took, $rc, $out, $err) = timed(sub { admin_full('MIGRATE ABORT') });
is $rc, 0, 'MIGRATE ABORT from a second admin session' or diag $err;
is $out, 'MIGRATE ABORT', '... tag MIGRATE ABORT';
like $err, qr/NOTICE:\s+(?:00000: )?the migration stopped; /, '... a NOTICE says the migration stopped';
cmp_ok $took, '<', 5, '... within a few seconds';
note sprintf 'MIGRATE ABORT answered in %.3f s', $took;
ok wait_until(sub { bg_ended($up) }, timeout => 5), 'the MIGRATE UP ends too';
($rc, $out, $err) = bg_result($up, 10);
is sqlstate($err), '57014', 'MIGRATE UP: 57014';
like $err, qr/migration canceled by MIGRATE ABORT \(admin admin\) in region "eu-west"/, '... naming who stopped it';
like $err, qr/DETAIL:\s+Step 3 \(sleepy\) was rolled back there/, '... saying the step was rolled back';
ok !has_table($eu, 'a'), 'eu-west: table a does not exist';
is_deeply states($eu), ['1:applied', '2:applied'], '... no history row for step 3';
is_deeply states($us), ['1:applied', '2:applied'], 'us-east: nor there';
like psql($admin_ci, 'SHOW MIGRATIONS'), qr/^3\|sleepy\|eu-west\|pending\|/m, 'SHOW MIGRATIONS: step 3 pending';
ok wait_until(sub { $eu->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE pid = $step_pid"
                                  . " AND state = 'active'", dbname => 'movr') == 0 }, timeout => 5),
    'the sleeping statement is gone';

# ------------------------------------------------------------------ MIGRATE ABORT, no-transaction step

unlink "$dir/0003_sleepy.sql" or die "unlink: $!";
write_file("$dir/0003_notx.sql", "-- pgnear: no-transaction\nCREATE TABLE b (i int);\n"
  . "SELECT pg_sleep((SELECT s FROM sleep_for));\nCREATE TABLE c (i int);\n");
$up = bg_admin('MIGRATE UP');
ok wait_until(sub { sleeping($eu) == 1 || bg_ended($up) }, timeout => 30) && !bg_ended($up),
    'MIGRATE UP: no-transaction step 3 sleeps in eu-west, at statement 2';
($took, $rc, $out, $err) = timed(sub { admin_full('MIGRATE ABORT') });
is "$rc $out", '0 MIGRATE ABORT', 'MIGRATE ABORT' or diag $err;
cmp_ok $took, '<', 5, '... within a few seconds';
($rc, $out, $err) = bg_result($up, 10);
is sqlstate($err), '57014', 'MIGRATE UP: 57014';
like $err, qr/migration canceled by MIGRATE ABORT \(admin admin\) in region "eu-west"/, '... naming who stopped it';
like $err, qr/DETAIL:\s+Step 3 \(notx\) runs without a transaction: its statements before statement 2 of 3 stay done/,
    '... saying what stays done';
my ($row3) = grep { $_->[0] == 3 } @{ history($eu) };
is_deeply [@{ $row3 // [] }[1 .. 3, 5]], ['failed', 1, 3, 2], 'eu-west: step 3 failed, 1 of 3 done, at statement 2';
like $row3->[4] // '', qr/cancel/, '... its error says canceled';
ok has_table($eu, 'b') && !has_table($eu, 'c'), '... b exists, c does not';
is_deeply states($us), ['1:applied', '2:applied'], 'us-east: untouched';

$_->psql_admin('UPDATE sleep_for SET s = 0', dbname => 'movr') for $eu, $us;
($rc, $out, $err) = admin_full('MIGRATE RETRY 3');
is $rc, 0, 'MIGRATE RETRY 3' or diag $err;
like $err, qr/region "eu-west": step 3 \(notx\) goes on from statement 2/, '... goes on from statement 2';
is_deeply [map { /^region "eu-west": step 3 \(notx\), statement (\d) of 3/ ? $1 : () } @{ progress($err) }],
    [2, 3], '... runs statements 2 and 3 only';
($row3) = grep { $_->[0] == 3 } @{ history($eu) };
is_deeply [@{ $row3 // [] }[1 .. 3]], ['applied', 3, 3], 'eu-west: step 3 applied, 3 of 3';
ok has_table($eu, 'c'), '... c exists';
($rc, $out, $err) = admin_full('MIGRATE UP');
is $rc, 0, 'MIGRATE UP runs it in us-east' or diag $err;
is_deeply states($us), ['1:applied', '2:applied', '3:applied'], 'us-east: step 3 applied';

# ------------------------------------------------------------------ MIGRATE ABORT, pause step

$eu->psql_admin('UPDATE sleep_for SET s = 30', dbname => 'movr');
write_file("$dir/0004_paused.sql", "-- pgnear: pause\nCREATE TABLE d (i int);\n"
  . "SELECT pg_sleep((SELECT s FROM sleep_for));\n");
my $client = wire_in('eu-west');
ok $client, 'a client of movr in eu-west, idle';
$up = bg_admin('MIGRATE UP');
ok wait_until(sub { sleeping($eu) == 1 || bg_ended($up) }, timeout => 30) && !bg_ended($up),
    'MIGRATE UP: pause step 4 sleeps in eu-west';
$client->send_query('SELECT 42');
ok !IO::Select->new($client->socket)->can_read(1.5), 'the client\'s query is held';
my $t0 = time;
($rc, $out, $err) = admin_full('MIGRATE ABORT');
is "$rc $out", '0 MIGRATE ABORT', 'MIGRATE ABORT' or diag $err;
$q = $client->read_result;
is_deeply $q->{rows}, [[42]], 'the held query is answered';
cmp_ok time - $t0, '<', 5, '... within a few seconds of the ABORT';
($rc, $out, $err) = bg_result($up, 10);
is sqlstate($err), '57014', 'MIGRATE UP: 57014';
like $err, qr/DETAIL:\s+Step 4 \(paused\) was rolled back there/, '... the step rolled back';
like $err, qr/region "eu-west": the sessions of database "movr" go on, held \d+ ms/, '... the sessions let go';
ok !has_table($eu, 'd'), 'eu-west: d does not exist';
is_deeply states($eu), [map { "$_:applied" } 1 .. 3], '... no row for step 4';
is $client->query('SELECT 43')->{rows}[0][0], 43, 'the client goes on';

# ------------------------------------------------------------------ Ctrl-C, and the session dropped

my $psql_bin = PgNearTest::require_tool('psql');
sub psql_bg {
    my ($errfile) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', "$errfile.out" or POSIX::_exit(1);
        open STDERR, '>', $errfile or POSIX::_exit(1);
        { exec $psql_bin, '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', '\set VERBOSITY verbose',
             '-c', 'MIGRATE UP', '-d', $admin_ci }
        POSIX::_exit(1);
    }
    return $pid;
}
my $kid_gone = sub { my $pid = shift; sub { waitpid($pid, WNOHANG) == $pid } };

my $kid = psql_bg("$auth_dir/ctrl-c");
ok wait_until(sub { sleeping($eu) == 1 }, timeout => 30), 'MIGRATE UP in psql: step 4 sleeps';
kill 'INT', $kid;
ok wait_until($kid_gone->($kid), timeout => 10), 'SIGINT to psql: it ends';
$err = slurp_file("$auth_dir/ctrl-c");
is sqlstate($err), '57014', '... with 57014';
like $err, qr/migration canceled by a cancel request \(Ctrl-C\) in region "eu-west"/, '... a cancel request';
ok wait_until(sub { sleeping($eu) == 0 }, timeout => 5), 'the sleep is gone';
ok !has_table($eu, 'd'), 'eu-west: d does not exist';
is_deeply states($eu), [map { "$_:applied" } 1 .. 3], '... no row for step 4';

$kid = psql_bg("$auth_dir/kill");
ok wait_until(sub { sleeping($eu) == 1 }, timeout => 30), 'MIGRATE UP in psql again: step 4 sleeps';
kill 'KILL', $kid;
$t0 = time;
ok wait_until($kid_gone->($kid), timeout => 5), 'psql killed';
ok wait_until(sub { sleeping($eu) == 0 }, timeout => 5), 'the sleep is gone within a few seconds';
note sprintf 'gone %.3f s after the kill', time - $t0;
ok wait_until(sub { migration_conns($eu) == 0 }, timeout => 5), 'pgnear\'s migration connections are closed';
ok !has_table($eu, 'd'), 'eu-west: d does not exist';
is_deeply states($eu), [map { "$_:applied" } 1 .. 3], '... no row for step 4';
($rc, $out, $err) = admin_full('MIGRATE PLAN');
is $rc, 0, 'MIGRATE PLAN answers' or diag $err;
like $out, qr/^eu-west\|4\|paused\|transaction\|t\|2$/m, '... step 4 pending in eu-west';
$eu->psql_admin('UPDATE sleep_for SET s = 0', dbname => 'movr');
($rc, $out, $err) = admin_full('MIGRATE UP');
is $rc, 0, 'MIGRATE UP is not refused: it runs step 4' or diag $err;
for my $c ($eu, $us) {
    is_deeply states($c), [map { "$_:applied" } 1 .. 4], $c->name . ': every step applied';
    ok has_table($c, 'd'), $c->name . ': d exists';
}

# ------------------------------------------------------------------ SIGTERM while a pause step holds

# pgnear is told to stop in the middle of a pause step: the admin's session
# ends with it, which stops the run; the step is rolled back, the gate
# opens, and the held client gets its answer before pgnear goes.
$eu->psql_admin('UPDATE sleep_for SET s = 30', dbname => 'movr');
write_file("$dir/0005_last.sql", "-- pgnear: pause\nCREATE TABLE e (i int);\n"
  . "SELECT pg_sleep((SELECT s FROM sleep_for));\n");
$up = bg_admin('MIGRATE UP');
ok wait_until(sub { sleeping($eu) == 1 || bg_ended($up) }, timeout => 30) && !bg_ended($up),
    'MIGRATE UP: step 5 holds and sleeps';
$client->send_query('SELECT 44');
ok !IO::Select->new($client->socket)->can_read(1), 'the client\'s query is held';
$t0 = time;
$p->signal('TERM');
$q = $client->read_result;
is_deeply $q->{rows}, [[44]], 'SIGTERM: the held query is answered';
cmp_ok time - $t0, '<', 5, '... within a few seconds';
($rc, $out, $err) = bg_result($up, 10);
isnt $rc, 0, 'MIGRATE UP does not end well';
ok wait_until(sub { sleeping($eu) == 0 }, timeout => 5), 'the step\'s sleep is canceled';
ok wait_until(sub { migration_conns($eu) == 0 }, timeout => 5), 'pgnear\'s migration connections are closed';
ok !has_table($eu, 'e'), 'eu-west: e does not exist';
is_deeply states($eu), [map { "$_:applied" } 1 .. 4], '... no row for step 5';
$client->terminate;
# The SIGTERM above asked for the end: pgnear goes once its last client has.
is $p->wait_for_exit(timeout => 20), 0, 'pgnear exits cleanly once its last client has gone';

done_testing();
