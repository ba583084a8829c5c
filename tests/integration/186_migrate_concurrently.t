# MIGRATE UP of a no-transaction step doing CREATE INDEX CONCURRENTLY while
# a client of migrations_db, through pgnear, holds a transaction open in
# the first region: the index build waits on the server for that
# transaction (its virtualxid), not for anything of pgnear's (the
# connection holding the migration lock is idle, in no transaction);
# meanwhile the console answers SHOW MIGRATIONS (running there, pending in
# the next region) and clients are served at once; the transaction
# committed, the step ends in both regions, one after the other, with
# valid indexes and its rows applied, every statement done.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';

my $eu = PgNearTest::Cluster->new(name => 'eu-west');
my $us = PgNearTest::Cluster->new(name => 'us-east');

my $auth_dir = PgNearTest::tmpdir(name => 'cic-auth');
write_file("$auth_dir/userlist.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
my $dir = PgNearTest::tmpdir(name => 'cic-steps');
write_file("$dir/0001_idx.sql", "-- pgnear: no-transaction\n"
  . "CREATE INDEX CONCURRENTLY t_city ON t (city);\n"
  . "CREATE INDEX CONCURRENTLY t_id ON t (id);\n");
for my $c ($eu, $us) {
    $c->psql_admin(['CREATE TABLE t (id int, city text)', 'CREATE TABLE other (id int)',
                    "INSERT INTO t SELECT g, 'city ' || g % 50 FROM generate_series(1, 5000) g"],
                   dbname => 'movr');
}

my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
    settings => { auth => 'passthrough', server_tls => 'disable', admin_users => 'admin',
                  auth_file => "$auth_dir/userlist.txt", health_check_interval => '1s', health_check_timeout => '5s',
                  migrations_dir => $dir, migrations_db => 'movr',
                  migration_order => 'eu-west, us-east' });
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');

sub in_region { $p->conninfo(options => "-c pgnear.region=$_[0]") }

sub wire_in {
    my ($region) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { options => "-c pgnear.region=$region" });
    return $r->{ok} ? $w : undef;
}

sub one_value { my $q = $_[0]->query($_[1]); $q->{error} ? "error: $q->{error}{M}" : $q->{rows}[0][0] }

# $code's result, and how long it took.
sub timed { my $t0 = time; my @r = $_[0]->(); return (time - $t0, @r) }

sub valid_index {
    my ($c, $name) = @_;
    return $c->psql_admin("SELECT coalesce((SELECT indisvalid FROM pg_index WHERE indexrelid ="
                        . " to_regclass('$name')), false)", dbname => 'movr');
}

sub history_row {
    my ($c) = @_;
    return '' if $c->psql_admin("SELECT to_regclass('pgnear_schema_history') IS NOT NULL",
                                dbname => 'movr') ne 't';
    return $c->psql_admin('SELECT state, statements_done, statements_total, error IS NULL'
                        . ' FROM pgnear_schema_history WHERE version = 1', dbname => 'movr');
}

# pgnear's migration backends in movr: the step's, building the index.
my $step_sql = "SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity"
  . " WHERE datname = 'movr' AND application_name = 'pgnear migrations'"
  . " AND query LIKE 'CREATE INDEX CONCURRENTLY%' AND state = 'active'";
# ... and the one holding the migration lock.
my $holder_sql = "SELECT a.pid, a.state, a.xact_start IS NULL, a.backend_xmin IS NULL,"
  . " a.backend_xid IS NULL FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
  . " WHERE l.locktype = 'advisory' AND l.granted AND l.database ="
  . " (SELECT oid FROM pg_database WHERE datname = 'movr')"
  . " AND a.application_name = 'pgnear migrations'";

# ------------------------------------------------------------------ a transaction left open

# REPEATABLE READ: its snapshot stays while it is idle, and CREATE INDEX
# CONCURRENTLY waits for every transaction of the database holding a
# snapshot older than its own (a READ COMMITTED one drops its snapshot
# between statements, and would not be waited for).

my $long = wire_in('eu-west');
ok $long, 'a client of movr in eu-west, through pgnear';
is $long->query('BEGIN ISOLATION LEVEL REPEATABLE READ')->{tag}, 'BEGIN', '... begins a transaction';
is $long->query('INSERT INTO other VALUES (1)')->{tag}, 'INSERT 0 1', '... touches another table';
my $long_pid = one_value($long, 'SELECT pg_backend_pid()');
like $long_pid, qr/^\d+$/, '... its server backend is known';
my $long_vxid = $eu->psql_admin("SELECT virtualtransaction FROM pg_locks WHERE pid = $long_pid"
                              . " AND locktype = 'virtualxid'", dbname => 'movr');
like $long_vxid, qr{^\d+/\d+$}, '... and its virtual transaction';

# ------------------------------------------------------------------ MIGRATE UP, in the background

my $result = "$auth_dir/migrate-up";
my $up_started = time;
my $kid = fork // die "fork: $!";
if ($kid == 0) {
    my ($crc, $cout, $cerr) = psql($admin_ci, 'MIGRATE UP', verbose => 1, timeout => 90);
    write_file($result, "$crc\n$cout\n$cerr");
    POSIX::_exit(0);
}
my $kid_done = 0;
my $kid_ended = sub { $kid_done ||= waitpid($kid, WNOHANG) == $kid; $kid_done };

my @step;
ok wait_until(sub { @step = split /\|/, $eu->psql_admin($step_sql, dbname => 'movr');
                    ($step[3] // '') eq 'virtualxid' || $kid_ended->() }, timeout => 20)
   && ($step[3] // '') eq 'virtualxid',
    'eu-west: the step\'s CREATE INDEX CONCURRENTLY comes to wait';
is_deeply [@step[1 .. 3]], ['active', 'Lock', 'virtualxid'], '... on a lock: a virtualxid, on the server';
ok !$kid_ended->(), '... and MIGRATE UP has not ended';
my $step_pid = $step[0] // 0;
is $eu->psql_admin("SELECT pg_blocking_pids($step_pid)", dbname => 'movr'), "{$long_pid}",
    '... blocked by the open transaction\'s backend alone';
is $eu->psql_admin("SELECT string_agg(locktype || ' ' || virtualxid, ',') FROM pg_locks"
                 . " WHERE pid = $step_pid AND NOT granted", dbname => 'movr'),
    "virtualxid $long_vxid", '... waiting for its virtual transaction';
my @holder = map { [split /\|/] } split /\n/, $eu->psql_admin($holder_sql, dbname => 'movr');
is scalar(@holder), 1, 'one pgnear migrations backend holds the migration lock';
isnt $holder[0][0], $step_pid, '... not the step\'s own';
is_deeply [@{ $holder[0] }[1 .. 4]], ['idle', 't', 't', 't'],
    '... idle, in no transaction, holding no snapshot and no transaction ID';
is valid_index($eu, 't_city'), 'f', 'eu-west: t_city is built but not valid yet';
is history_row($eu), 'running|0|2|t', '... its row running, statement 1 of 2 not done';
is valid_index($us, 't_city'), 'f', 'us-east: no index yet';
is history_row($us), '', 'us-east: nothing ran there (regions one after the other)';

# ------------------------------------------------------------------ pgnear serves meanwhile

my ($took, $rc, $out, $err) = timed(sub { psql($admin_ci, 'SHOW MIGRATIONS', verbose => 1) });
is $rc, 0, 'a second admin session: SHOW MIGRATIONS answers' or diag $err;
cmp_ok $took, '<', 5, sprintf('... at once, not when the build ends (%.2f s)', $took);
is_deeply [map { join '|', (split /\|/)[0 .. 3] } split /\n/, $out],
    ['1|idx|eu-west|running', '1|idx|us-east|pending'],
    '... the step running in eu-west, pending in us-east';

for my $region ('eu-west', 'us-east') {
    ($took, $rc, $out, $err) = timed(sub { psql(in_region($region), 'SELECT count(*) FROM t') });
    is "$rc $out", '0 5000', "a new client in $region: its query is answered" or diag $err;
    cmp_ok $took, '<', 5, sprintf('... at once, not when the build ends (%.2f s)', $took);
}
my $busy = wire_in('eu-west');
my ($slowest, @wrong) = (0);
for my $i (1 .. 20) {
    my ($t, $v) = timed(sub { one_value($busy, "SELECT count(*) + $i FROM t WHERE id <= 10") });
    $slowest = $t if $t > $slowest;
    push @wrong, "$i: $v" if $v ne 10 + $i;
}
is_deeply \@wrong, [], '20 queries of a client in eu-west, each answered right';
cmp_ok $slowest, '<', 2, '... each at once';
note sprintf 'slowest of the 20: %.3f s', $slowest;
($took, my $v) = timed(sub { one_value($long, 'SELECT count(*) FROM other') });
is $v, 1, 'the open transaction goes on too';
cmp_ok $took, '<', 2, '... at once';

sleep 1;
@step = split /\|/, $eu->psql_admin($step_sql, dbname => 'movr');
is_deeply [@step[0, 3]], [$step_pid, 'virtualxid'], 'a second later the step still waits';
ok !$kid_ended->(), '... and MIGRATE UP has not ended';

# A statement that runs long is reported every 10 s: wait for the first
# report, until the statement has run 11.5 s by the server's clock (the
# step began before it; under load well after MIGRATE UP was sent).
my $running_sql = "SELECT extract(epoch FROM clock_timestamp() - query_start) >= 11.5"
  . " FROM pg_stat_activity WHERE pid = $step_pid";
sleep 0.1 while time - $up_started < 60 && !$kid_ended->()
  && $eu->psql_admin($running_sql, dbname => 'movr') ne 't';
ok !$kid_ended->(), 'after 11.5 s the step still waits';

# ------------------------------------------------------------------ the transaction ends

is $long->query('COMMIT')->{tag}, 'COMMIT', 'the open transaction commits';
ok wait_until($kid_ended, timeout => 60), 'MIGRATE UP then ends';
my ($crc, $cout, @cerr) = split /\n/, (-e $result ? slurp_file($result) : "-1\n\nno result");
is $crc, 0, '... successfully' or diag join("\n", @cerr);
is $cout, 'MIGRATE', '... with the tag MIGRATE';
is_deeply [map { /NOTICE:\s+(?:00000: )?region "([^"]+)": step 1 \(idx\) applied, 2 statements \(no transaction\)/
                   ? $1 : () } @cerr],
    ['eu-west', 'us-east'], '... the step applied in eu-west, then in us-east';
my @still = grep { /NOTICE:\s+(?:00000: )?region "eu-west": step 1 \(idx\), statement 1 of 2 still running, (\d+\.\d) s into the step$/ } @cerr;
is scalar(@still), 1, '... a NOTICE said the first statement was still running, 10 s into it'
    or diag join("\n", @cerr);
like $still[0] // '', qr/, 1\d\.\d s into the step$/, '... with the time so far';
for my $c ($eu, $us) {
    my $r = $c->name;
    is valid_index($c, 't_city') . valid_index($c, 't_id'), 'tt', "$r: both indexes are valid";
    is history_row($c), 'applied|2|2|t', "$r: the row is applied, 2 of 2 statements, no error";
    ok wait_until(sub { $c->psql_admin("SELECT count(*) FROM pg_stat_activity"
                          . " WHERE application_name = 'pgnear migrations'", dbname => 'movr') == 0 }),
        "$r: pgnear's migration connections are closed";
}
is $eu->psql_admin('SELECT count(*) FROM other', dbname => 'movr'), 1, 'the transaction\'s row is there';
like psql($admin_ci, 'SHOW MIGRATIONS'), qr/^1\|idx\|eu-west\|applied\|t\|.*\n1\|idx\|us-east\|applied\|t\|/m,
    'SHOW MIGRATIONS: applied in both regions, checksums matching';
$_->terminate for $long, $busy;
is $p->stop, 0, 'pgnear exits cleanly on SIGTERM';

done_testing();
