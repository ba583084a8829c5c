# SHOW MIGRATIONS and MIGRATE PLAN against three regions: the errors while
# migrations_dir and migrations_db are not set, every step pending where
# no history table exists, the plan in full, TO a version and IN one
# region, in migration_order; then history rows written by hand in one
# region (with pgnear's own table text and checksums, from
# tests/unit/print_migrations): applied steps, a running one shown as
# running while the migration lock is held and uncertain when it is free,
# a checksum mismatch after a file is edited, a recorded step with no
# file, a bad step file; a region whose server is down says so while the
# others are shown.  Through psql, and through DBD::Pg's prepared
# statements.
use strict;
use warnings;
use File::Copy qw(copy);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;

$SIG{PIPE} = 'IGNORE';

my $src = $ENV{PGNEAR_SRCDIR} // "$FindBin::RealBin/../..";
my $helper = migrations_helper();

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $uw = PgNearTest::Cluster->new(name => 'us-west');
my $eu = PgNearTest::Cluster->new(name => 'eu-west');

my $auth_dir = PgNearTest::tmpdir(name => 'migr-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist, qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});

# The example steps, copied so that the test may edit them.
my $dir = PgNearTest::tmpdir(name => 'migr-steps');
opendir(my $dh, "$src/conf/migrations") or die "$src/conf/migrations: $!";
for my $f (grep { /\.sql$/ } readdir $dh) {
    copy("$src/conf/migrations/$f", "$dir/$f") or die "copy $f: $!";
}
closedir $dh;

# pgnear's view of the steps: version => [name, checksum, statements].
sub steps_of {
    my ($rc, $out, $err) = run_cmd([$helper, 'steps', $dir]);
    die "print_migrations steps failed ($rc): $err" if $rc != 0;
    return { map { my @f = split /\|/; ($f[0] => [@f[1 .. 3]]) } split /\n/, $out };
}
my $steps = steps_of();
is_deeply [sort keys %$steps], [1, 2, 3, 4], 'the four example steps';

my $p = PgNearTest::Proxy->new(regions => [$us, $uw, $eu],
    settings => { auth => 'passthrough', server_tls => 'disable', auth_file => $userlist,
                  admin_users => 'admin', health_check_interval => '1s', health_check_timeout => '5s',
                  migration_order => 'eu-west, us-east' });

sub admin_ci { $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret', @_) }
sub admin { psql(admin_ci(), @_) }
sub rows { [map { [split /\|/, $_, -1] } split /\n/, admin(@_)] }

# (SQLSTATE, stderr) of a command that must fail.
sub admin_err {
    my ($sql) = @_;
    my ($rc, $out, $err) = psql(admin_ci(), $sql, verbose => 1);
    return $rc == 0 ? ('none', $out) : (sqlstate($err), $err);
}

# ------------------------------------------------------------------ not configured

my $help = admin('SHOW HELP');
like $help, qr/^SHOW MIGRATIONS\|/m, 'SHOW HELP lists SHOW MIGRATIONS';
like $help, qr/^\QMIGRATE PLAN [TO version] [IN REGION region]\E\|/m, '... and MIGRATE PLAN';

my ($state, $err) = admin_err('SHOW MIGRATIONS');
is $state, '55000', 'without migrations_dir: 55000';
like $err, qr/migrations_dir is not set/, '... saying so';
like $err, qr/HINT:.*Set migrations_dir/, '... with a hint naming the setting';
admin("SET migrations_dir = '$dir'");
($state, $err) = admin_err('MIGRATE PLAN');
is $state, '55000', 'without migrations_db: 55000';
like $err, qr/HINT:.*Set migrations_db/, '... the hint names migrations_db';
admin("SET migrations_db = 'movr'");

# ------------------------------------------------------------------ nothing ran yet

my @order = ('eu-west', 'us-east', 'us-west');
my $show = rows('SHOW MIGRATIONS');
is scalar(@$show), 12, 'SHOW MIGRATIONS: one row per step and region';
is_deeply [map { "$_->[0]/$_->[2]" } @$show],
    [map { my $v = $_; map { "$v/$_" } @order } 1 .. 4],
    '... by version, the regions in migration_order then the file\'s order';
is_deeply [map { $_->[3] } @$show], [('pending') x 12], '... all pending: no history table anywhere';
is_deeply [map { $_->[1] } @$show[0, 3, 6, 9]], [map { $steps->{$_}[0] } 1 .. 4], '... with the steps\' names';
is_deeply [map { @$_[4 .. 8] } @$show], [('') x 60], '... checksum_ok, times, run_by and error NULL';

my $plan = rows('MIGRATE PLAN');
is scalar(@$plan), 12, 'MIGRATE PLAN: every step in every region';
is_deeply [map { "$_->[0]/$_->[1]" } @$plan],
    [map { my $r = $_; map { "$r/$_" } 1 .. 4 } @order], '... region by region, each in version order';
is_deeply [@{ $plan->[0] }], ['eu-west', 1, 'users', 'transaction', 'f', $steps->{1}[2]],
    '... region, version, name, transaction mode, pause, statements';
is_deeply [@{ $plan->[2] }[3, 4]], ['no-transaction', 'f'], '... step 3 runs without a transaction';
is_deeply [@{ $plan->[3] }[3, 4]], ['transaction', 't'], '... step 4 is a pause step';
is_deeply [map { $_->[5] } @$plan[0 .. 3]], [map { $steps->{$_}[2] } 1 .. 4],
    '... statement counts as the loader splits the files';

is_deeply [map { "$_->[0]/$_->[1]" } @{ rows('MIGRATE PLAN TO 2') }],
    [map { my $r = $_; map { "$r/$_" } 1 .. 2 } @order], 'MIGRATE PLAN TO 2: steps 1 and 2 everywhere';
is_deeply [map { "$_->[0]/$_->[1]" } @{ rows('MIGRATE PLAN TO 3 IN REGION "us-west"') }],
    ['us-west/1', 'us-west/2', 'us-west/3'], 'MIGRATE PLAN TO 3 IN REGION us-west: that region only';
is_deeply [map { $_->[2] } @{ rows('SHOW MIGRATIONS') }], [map { @order } 1 .. 4],
    'SHOW MIGRATIONS again: the same regions';

($state, $err) = admin_err('MIGRATE PLAN IN REGION mars');
is $state, '42704', 'an unknown region: 42704';
like $err, qr/region "mars" does not exist/, '... named';
($state) = admin_err('MIGRATE PLAN TO 0');
is $state, '22023', 'TO 0: 22023';
($state, $err) = admin_err('MIGRATE ABORT');
is $state, '55000', 'MIGRATE ABORT with no migration running: 55000';
like $err, qr/no migration is running on this pgnear/, '... saying so';

# ------------------------------------------------------------------ history by hand

my ($trc, $table) = run_cmd([$helper, 'table']);
die "print_migrations table failed" if $trc != 0;
$us->psql_admin($table, dbname => 'movr');
sub history_row {
    my ($cluster, $v, $state, %o) = @_;
    my $sum = $o{checksum} // $steps->{$v}[1];
    my $name = $o{name} // $steps->{$v}[0];
    my $fin = $state eq 'running' ? 'NULL' : "now()";
    my $error = defined $o{error} ? "'$o{error}'" : 'NULL';
    $cluster->psql_admin(
        "INSERT INTO pgnear_schema_history (version, name, checksum, state, statements_done,"
      . " statements_total, started_at, finished_at, run_by, error)"
      . " VALUES ($v, '$name', '$sum', '$state', 0, 1, '2026-01-02 03:04:05+00', $fin, 'by hand', $error)",
        dbname => 'movr');
}
history_row($us, 1, 'applied');
history_row($us, 2, 'applied');

$show = rows('SHOW MIGRATIONS');
my %cell = map { ("$_->[0]/$_->[2]" => $_) } @$show;
is_deeply [@{ $cell{'1/us-east'} }[3, 4, 5, 7, 8]],
    ['applied', 't', '2026-01-02 03:04:05+00', 'by hand', ''],
    'SHOW MIGRATIONS: an applied step with its checksum, start and run_by';
like $cell{'2/us-east'}[6], qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00$/, '... its finished_at';
is $cell{'3/us-east'}[3], 'pending', '... the next step pending there';
is $cell{'1/eu-west'}[3], 'pending', '... and pending in the other regions';

$plan = rows('MIGRATE PLAN');
is_deeply [map { "$_->[0]/$_->[1]" } @$plan],
    ['eu-west/1', 'eu-west/2', 'eu-west/3', 'eu-west/4', 'us-east/3', 'us-east/4',
     'us-west/1', 'us-west/2', 'us-west/3', 'us-west/4'],
    'MIGRATE PLAN: us-east goes on from step 3';
my ($rc, $out, $notice) = psql(admin_ci(), 'MIGRATE PLAN TO 2 IN REGION "us-east"');
is $out, '', 'MIGRATE PLAN TO 2 IN REGION us-east: nothing to run';
like $notice, qr/NOTICE:.*region "us-east" has nothing to run/, '... said in a NOTICE';

# A step recorded as running while a run holds the region's migration lock: shown as running.
history_row($us, 3, 'running');
my $holder = PgNearTest::Wire->connect(host => '127.0.0.1', port => $us->port);
ok $holder->startup(user => $PgNearTest::APP_USER, database => 'movr',
                    password => $PgNearTest::APP_PASSWORD)->{ok}, 'a session straight to us-east';
$holder->query('SELECT pg_advisory_lock(7236842019847731201)');
%cell = map { ("$_->[0]/$_->[2]" => $_) } @{ rows('SHOW MIGRATIONS') };
is_deeply [@{ $cell{'3/us-east'} }[3, 6]], ['running', ''],
    'a running step, the lock held: shown as running, unfinished';
($state, $err) = admin_err('MIGRATE PLAN');
is $state, '55000', 'MIGRATE PLAN with a running step: 55000';
like $err, qr/step 3 \(vehicle_indexes\) is running in region "us-east"/, '... naming step and region';
is scalar(@{ rows('MIGRATE PLAN IN REGION "eu-west"') }), 4, '... while another region still plans';
# Nobody holds the lock: the pgnear that ran it stopped in it, so it is uncertain.
$holder->terminate;
%cell = map { ("$_->[0]/$_->[2]" => $_) } @{ rows('SHOW MIGRATIONS') };
is $cell{'3/us-east'}[3], 'uncertain', 'a running step, the lock free: shown as uncertain';
($state, $err) = admin_err('MIGRATE PLAN');
is $state, '55000', '... MIGRATE PLAN: 55000';
like $err, qr/step 3 \(vehicle_indexes\) is uncertain in region "us-east"/, '... naming step and region';
is $us->psql_admin('SELECT state FROM pgnear_schema_history WHERE version = 3', dbname => 'movr'),
    'running', '... the table itself is not changed by reading it';
is $us->psql_admin('SELECT count(*) FROM pg_locks WHERE locktype = \'advisory\'', dbname => 'movr'),
    0, '... and no advisory lock is left behind';
$us->psql_admin('DELETE FROM pgnear_schema_history WHERE version = 3', dbname => 'movr');

history_row($us, 3, 'failed', error => 'deadlock detected (40P01)');
%cell = map { ("$_->[0]/$_->[2]" => $_) } @{ rows('SHOW MIGRATIONS') };
is_deeply [@{ $cell{'3/us-east'} }[3, 8]], ['failed', 'deadlock detected (40P01)'], 'a failed step with its error';
($state, $err) = admin_err('MIGRATE PLAN TO 2');
is $state, '55000', 'a failed step stops the region even for a lower target';
like $err, qr/is failed in region "us-east".*\n.*deadlock detected/, '... the detail gives its error';
$us->psql_admin('DELETE FROM pgnear_schema_history WHERE version = 3', dbname => 'movr');

# A file edited after it ran.
my $file = "$dir/0001_$steps->{1}[0].sql";
my $orig = slurp_file($file);
write_file($file, $orig . "-- edited after it ran\n");
%cell = map { ("$_->[0]/$_->[2]" => $_) } @{ rows('SHOW MIGRATIONS') };
is $cell{'1/us-east'}[4], 'f', 'an edited file: checksum_ok false where it ran';
is $cell{'1/eu-west'}[4], '', '... NULL where it did not';
($state, $err) = admin_err('MIGRATE PLAN');
is $state, '55000', 'MIGRATE PLAN with a checksum mismatch: 55000';
like $err, qr/checksum mismatch for step 1 \(users\) in region "us-east"/, '... naming step and region';
like $err, qr/DETAIL:.*records checksum \Q$steps->{1}[1]\E/, '... the detail gives the recorded checksum';
write_file($file, $orig);
is scalar(@{ rows('MIGRATE PLAN') }), 10, 'the file restored, the plan is back';

# A bad step file: the loader's message, nothing asked of any region.
write_file("$dir/0005_bad.sql", "SELECT 'never closed;\n");
($state, $err) = admin_err('SHOW MIGRATIONS');
is $state, 'F0000', 'a bad step file: F0000';
like $err, qr/0005_bad\.sql:1:/, '... naming the file and line';
unlink "$dir/0005_bad.sql";

# A step recorded in a region but gone from migrations_dir.
$eu->psql_admin($table, dbname => 'movr');
history_row($eu, 9, 'applied', name => 'gone', checksum => 'a' x 64);
($rc, $out, $notice) = psql(admin_ci(), 'SHOW MIGRATIONS');
my @gone = grep { /^9\|/ } split /\n/, $out;
is_deeply [map { [(split /\|/, $_, -1)[0 .. 4]] } @gone], [[9, 'gone', 'eu-west', 'applied', '']],
    'SHOW MIGRATIONS shows a recorded step that has no file';
like $notice, qr/step 9 \(gone\) is in the history of region "eu-west" but has no file/, '... with a NOTICE';
($state, $err) = admin_err('MIGRATE PLAN');
is $state, '55000', 'MIGRATE PLAN refuses it: 55000';
like $err, qr/step 9 \(gone\) ran in region "eu-west" but has no step file/, '... naming it';
$eu->psql_admin('DELETE FROM pgnear_schema_history', dbname => 'movr');

# ------------------------------------------------------------------ prepared statements

{
    my $dbh = dbi_connect(admin_ci());
    ok $dbh, 'DBD::Pg logs in';
    my $sth = $dbh->prepare('SHOW MIGRATIONS');
    ok $sth->execute, 'a prepared SHOW MIGRATIONS executes';
    is_deeply $sth->{NAME},
        [qw(version name region state checksum_ok started_at finished_at run_by error)],
        '... Describe gave its columns';
    is_deeply [@{ $sth->{pg_type} }[0, 4, 5]], ['int8', 'bool', 'timestamptz'], '... and types';
    is scalar(@{ $sth->fetchall_arrayref }), 12, '... and its rows';
    $sth = $dbh->prepare('MIGRATE PLAN TO 2 IN REGION "us-west"');
    ok $sth->execute, 'a prepared MIGRATE PLAN executes';
    is_deeply $sth->{NAME}, [qw(region version name transaction pause statements)], '... its columns';
    is_deeply $sth->fetchall_arrayref, [['us-west', 1, 'users', 'transaction', 0, $steps->{1}[2]],
                                        ['us-west', 2, 'rides_by_city', 'transaction', 0, $steps->{2}[2]]],
        '... its rows, typed';
    ok $sth->execute, '... again';
    is scalar(@{ $sth->fetchall_arrayref }), 2, '... the same rows';
    my $bad = $dbh->prepare('MIGRATE PLAN IN REGION mars');
    ok !$bad->execute, 'a prepared plan for an unknown region fails';
    is $dbh->state, '42704', '... with 42704';
    $dbh->disconnect;
}

# ------------------------------------------------------------------ a region down

$uw->stop;
($rc, $out, $notice) = psql(admin_ci(), 'SHOW MIGRATIONS');
is $rc, 0, 'SHOW MIGRATIONS with us-west down still answers';
my @rows = map { [split /\|/, $_, -1] } split /\n/, $out;
my @down = grep { $_->[2] eq 'us-west' } @rows;
is scalar(@down), 4, '... a row per step for us-west';
is_deeply [map { $_->[3] } @down], [('unknown') x 4], '... its state unknown';
like $down[0][8], qr/^region cannot be reached: /, '... its error says it cannot be reached';
like $notice, qr/NOTICE:.*region "us-west" cannot be reached/, '... and a NOTICE';
is_deeply [map { $_->[3] } grep { $_->[2] eq 'us-east' } @rows], ['applied', 'applied', 'pending', 'pending'],
    '... the other regions are shown';
($state, $err) = admin_err('MIGRATE PLAN');
is $state, '08001', 'MIGRATE PLAN with a region down: 08001';
like $err, qr/could not read the migration history of region "us-west"/, '... naming it';
is scalar(@{ rows('MIGRATE PLAN IN REGION "us-east"') }), 2, 'a plan for another region still works';
$uw->start;
ok wait_until(sub { my ($rc, $out) = psql(admin_ci(), 'MIGRATE PLAN'); $rc == 0 && split(/\n/, $out) == 10 },
              timeout => 20),
    'us-west back: the whole plan again';

like admin('SHOW VERSION'), qr/^pgnear/, 'the console is up after all that';
is $p->stop, 0, 'pgnear exits cleanly on SIGTERM';

done_testing();
