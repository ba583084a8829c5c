# MIGRATE NEXT on three regions, transactional steps only: the lowest
# pending step runs in each region where it is pending, in migration
# order, its history row committed with its SQL (checksum, statements,
# run_by); IN REGION limits it to one; a second session holding the
# migration lock makes it wait (polled) and go on once the lock is free,
# or fail with 55P03 naming the region when it is not (pause steps:
# 188_migrate_pause.t); a failing statement rolls its
# step back, is recorded as failed with the statement's number, names
# region, step, statement and the server's SQLSTATE, and leaves later
# regions untouched.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';

my $helper = migrations_helper();

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $uw = PgNearTest::Cluster->new(name => 'us-west');
my $eu = PgNearTest::Cluster->new(name => 'eu-west');
my %cluster = ('us-east' => $us, 'us-west' => $uw, 'eu-west' => $eu);

my $auth_dir = PgNearTest::tmpdir(name => 'next-auth');
write_file("$auth_dir/userlist.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
my $dir = PgNearTest::tmpdir(name => 'next-steps');
write_file("$dir/0001_accounts.sql",
    "-- pgnear: lock_timeout = 5s\nCREATE TABLE accounts (id int PRIMARY KEY);\n"
  . "INSERT INTO accounts VALUES (1), (2);\n");
write_file("$dir/0002_more.sql", "ALTER TABLE accounts ADD COLUMN city text;\n");

my $p = PgNearTest::Proxy->new(regions => [$us, $uw, $eu],
    settings => { auth => 'passthrough', server_tls => 'disable',
                  auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
                  health_check_interval => '1s', health_check_timeout => '5s', migrations_dir => $dir,
                  migrations_db => 'movr', migration_order => 'eu-west, us-east' });

sub admin_ci { $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret', @_) }
sub admin { psql(admin_ci(), @_) }
sub admin_full { psql(admin_ci(), $_[0], verbose => 1) }
sub steps_of {
    my ($rc, $out) = run_cmd([$helper, 'steps', $dir]);
    die "print_migrations failed" if $rc != 0;
    return { map { my @f = split /\|/; ($f[0] => [@f[1 .. 3]]) } split /\n/, $out };
}
sub history {
    my ($c) = @_;
    my $exists = $c->psql_admin("SELECT to_regclass('pgnear_schema_history') IS NOT NULL", dbname => 'movr');
    return [] if $exists ne 't';
    return [map { [split /\|/, $_, -1] } split /\n/, $c->psql_admin(
        'SELECT version, state, checksum, statements_done, statements_total, run_by, error,'
      . ' error_statement, finished_at IS NOT NULL FROM pgnear_schema_history ORDER BY version',
        dbname => 'movr')];
}
my $steps = steps_of();

# ------------------------------------------------------------------ step 1 everywhere

my ($rc, $out, $err) = admin_full('MIGRATE NEXT');
is $rc, 0, 'MIGRATE NEXT succeeds' or diag $err;
my @notes = grep { !/ into the step$/ } $err =~ /NOTICE:\s+(?:00000: )?(region .*)/g;
is_deeply [map { /^region "([^"]+)": step 1 \(accounts\) applied, 2 statements in \d+ ms$/ ? $1 : $_ } @notes],
    ['eu-west', 'us-east', 'us-west'], '... step 1 applied in each region, in migration order, said in NOTICEs';
for my $r (sort keys %cluster) {
    is $cluster{$r}->psql_admin('SELECT count(*) FROM accounts', dbname => 'movr'), 2, "$r: the step's SQL ran";
    my $h = history($cluster{$r});
    is_deeply [map { [@$_[0 .. 4, 6, 7, 8]] } @$h], [[1, 'applied', $steps->{1}[1], 2, 2, '', '', 't']],
        "$r: its history row, applied, with the file's checksum";
    like $h->[0][5], qr/^pgnear \S+ on \S+ pid \d+, admin admin$/, "$r: run_by says which pgnear";
}
my %show = map { my @f = split /\|/, $_, -1; ("$f[0]/$f[2]" => \@f) } split /\n/, admin('SHOW MIGRATIONS');
is_deeply [map { @{ $show{"1/$_"} }[3, 4] } sort keys %cluster], [('applied', 't') x 3],
    'SHOW MIGRATIONS: step 1 applied, checksum ok, everywhere';

# ------------------------------------------------------------------ IN REGION

($rc, $out, $err) = admin_full('MIGRATE NEXT IN REGION "us-west"');
is $rc, 0, 'MIGRATE NEXT IN REGION us-west' or diag $err;
like $err, qr/region "us-west": step 2 \(more\) applied/, '... ran step 2 there';
is scalar(@{ history($uw) }), 2, '... us-west has two rows';
is scalar(@{ history($eu) }), 1, '... eu-west still one';
is scalar(@{ history($us) }), 1, '... us-east still one';

# ------------------------------------------------------------------ the lock

# Another session holds the migration lock in us-east: eu-west runs, us-east waits, then goes on.
my $holder = PgNearTest::Wire->connect(host => '127.0.0.1', port => $us->port);
ok $holder->startup(user => $PgNearTest::APP_USER, database => 'movr',
                    password => $PgNearTest::APP_PASSWORD)->{ok}, 'a session straight to us-east';
is $holder->query('SELECT pg_advisory_lock(7236842019847731201)')->{rows}[0][0], '', '... takes the migration lock';
my $outfile = "$auth_dir/next.out";
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    my ($crc, $cout, $cerr) = psql(admin_ci(), 'MIGRATE NEXT', verbose => 1);
    write_file($outfile, "$crc\n$cerr");
    exit 0;
}
ok wait_until(sub { @{ history($eu) } == 2 }, timeout => 10), 'eu-west ran step 2 meanwhile';
sleep 1;
is scalar(@{ history($us) }), 1, 'us-east waits for the lock: nothing ran there';
my $t0 = time;
$holder->query('SELECT pg_advisory_unlock_all()');
waitpid($pid, 0);
my ($crc, @cerr) = split /\n/, slurp_file($outfile);
is $crc, 0, 'MIGRATE NEXT went on once the lock was released';
cmp_ok time - $t0, '<', 3, '... soon after (the lock is polled)';
like join("\n", @cerr), qr/region "us-east": step 2 \(more\) applied/, '... and ran step 2 in us-east';
is scalar(@{ history($us) }), 2, '... recorded there';
like join("\n", @cerr), qr/region "us-west" has nothing to run/, '... us-west was already there';

# A lock never released: 55P03 naming the region, after the wait.
write_file("$dir/0003_rows.sql", "INSERT INTO accounts VALUES (3);\n");
$holder->query('SELECT pg_advisory_lock(7236842019847731201)');
$t0 = time;
($rc, $out, $err) = admin_full('MIGRATE NEXT IN REGION "us-east"');
isnt $rc, 0, 'MIGRATE NEXT with the lock held throughout fails';
is sqlstate($err), '55P03', '... with 55P03';
like $err, qr/could not take the migration lock of region "us-east"/, '... naming the region';
my $holder_pid = $us->psql_admin('SELECT pid FROM pg_locks WHERE locktype = \'advisory\' AND granted',
                                 dbname => 'movr');
like $err, qr/DETAIL:.*held by "[^"]*" \(server process $holder_pid, from 127\.0\.0\.1, connected since \d{4}-/,
    '... and saying who holds the lock: its server process and address';
cmp_ok time - $t0, '>=', 9, '... after waiting for it';
is scalar(@{ history($us) }), 2, '... and ran nothing';
$holder->terminate;
unlink "$dir/0003_rows.sql";

# ------------------------------------------------------------------ refusals and failures

write_file("$dir/0003_broken.sql",
    "CREATE TABLE broken (id int);\n\nINSERT INTO broken VALUES (1 / 0);\n");
($rc, $out, $err) = admin_full('MIGRATE NEXT');
isnt $rc, 0, 'a failing step fails MIGRATE NEXT';
is sqlstate($err), '22012', '... with the server\'s SQLSTATE';
like $err, qr/step 3 \(broken\) failed in region "eu-west" at statement 2: division by zero/,
    '... naming step, region, statement and the server\'s error';
like $err, qr/DETAIL:.*Statement 2 of 2 \(\S+0003_broken\.sql line 3\)/, '... the detail gives file and line';
is $eu->psql_admin("SELECT to_regclass('broken') IS NULL", dbname => 'movr'), 't',
    'eu-west: the step was rolled back (no table)';
my ($row3) = grep { $_->[0] == 3 } @{ history($eu) };
is_deeply [@$row3[1, 3, 4, 6, 7]], ['failed', 0, 2, 'division by zero (22012)', 2],
    'eu-west: its history says failed, at statement 2, with the error';
is scalar(@{ history($us) }), 2, 'us-east was not touched';
is $us->psql_admin("SELECT to_regclass('broken') IS NULL", dbname => 'movr'), 't', '... no table there';
($rc, $out, $err) = admin_full('MIGRATE NEXT');
is sqlstate($err), '55000', 'MIGRATE NEXT again refuses: the failed step is in the history';
like $err, qr/step 3 \(broken\) is failed in region "eu-west"/, '... naming it';

like admin('SHOW VERSION'), qr/^pgnear/, 'the console is up after all that';
is $p->stop, 0, 'pgnear exits cleanly on SIGTERM';

done_testing();
