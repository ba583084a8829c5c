# MIGRATE UP on three regions, transactional steps: UP TO runs every
# pending step up to the version, UP all of them, region by region in
# migration order, each region fully before the next, and answers with the
# tag MIGRATE and a NOTICE per step; IN REGION limits it to one; a region
# whose history would refuse stops the run before anything runs anywhere;
# a failing step stops everything after it (later regions untouched,
# earlier ones recorded) with an error naming region, step, statement and
# the server's error and SQLSTATE; two pgnear instances sent MIGRATE UP at
# the same time run each step exactly once in each region.  No-transaction
# steps: CREATE INDEX CONCURRENTLY runs; a failing second statement leaves
# the first done and the row failed at statement 2; pgnear SIGKILLed while
# a statement runs leaves the row running, reported uncertain once
# restarted, and MIGRATE UP refuses to go on.  RESOLVE settles an uncertain
# step as applied or failed, recording who and when; RETRY goes on from the
# first statement not done, or runs a failed transactional step whole.
# DOWN TO refuses before anything runs when a step has no down file, and
# reverts newest first, regions in reverse migration order.  A
# no-transaction down script that fails part way leaves its row
# reverting: UP refuses, DOWN goes on from the statement that failed, and
# RESOLVE AS reverted settles it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $uw = PgNearTest::Cluster->new(name => 'us-west');
my $eu = PgNearTest::Cluster->new(name => 'eu-west');
my %cluster = ('us-east' => $us, 'us-west' => $uw, 'eu-west' => $eu);
my @order = ('eu-west', 'us-east', 'us-west');

my $auth_dir = PgNearTest::tmpdir(name => 'up-auth');
write_file("$auth_dir/userlist.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
my $dir = PgNearTest::tmpdir(name => 'up-steps');
# Each step leaves a row in runs: a step run twice would show it.
write_file("$dir/0001_runs.sql", "CREATE TABLE runs (step int);\nINSERT INTO runs VALUES (1);\n");
write_file("$dir/0002_accounts.sql",
    "CREATE TABLE accounts (id int PRIMARY KEY);\nINSERT INTO runs VALUES (2);\n");
write_file("$dir/0003_city.sql",
    "ALTER TABLE accounts ADD COLUMN city text;\nINSERT INTO runs VALUES (3);\n");

my %settings = (auth => 'passthrough', server_tls => 'disable',
                auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
                health_check_interval => '1s', health_check_timeout => '5s', migrations_dir => $dir,
                migrations_db => 'movr', migration_order => 'eu-west, us-east');
my $p = PgNearTest::Proxy->new(regions => [$us, $uw, $eu], settings => \%settings);

sub admin_ci { my $px = shift; $px->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret') }
sub admin { psql(admin_ci($p), @_) }
sub admin_full { psql(admin_ci($p), $_[0], verbose => 1) }
sub runs { [split /\n/, $_[0]->psql_admin('SELECT step FROM runs ORDER BY step', dbname => 'movr')] }
# pgnear_schema_history exists in every region from the first MIGRATE UP on:
# one psql per look (schema_history asks twice), for the many looks below;
# schema_history itself where that fails (no table yet, or to report the error).
sub history {
    my ($c) = @_;
    my $out = eval { $c->psql_admin('SELECT version, state, statements_done, statements_total, error,'
                                   . ' error_statement FROM pgnear_schema_history ORDER BY version',
                                     dbname => 'movr') };
    return schema_history($c) unless defined $out;
    return [map { [split /\|/, $_, -1] } split /\n/, $out];
}
sub states { [map { "$_->[0]:$_->[1]" } @{ history($_[0]) }] }
# The NOTICEs that say what was done; progress, statement by statement, apart.
sub all_notes { my @n = $_[0] =~ /NOTICE:\s+(?:00000: )?(.*)/g; \@n }
sub notes { [grep { !/, statement \d+ of \d+ \(line \d+\), [\d.]+ s into the step$/ } @{ all_notes($_[0]) }] }
sub progress { [grep { /, statement \d+ of \d+ \(line \d+\), [\d.]+ s into the step$/ } @{ all_notes($_[0]) }] }

# ------------------------------------------------------------------ UP TO

my ($rc, $out, $err) = admin_full('MIGRATE UP TO 2');
is $rc, 0, 'MIGRATE UP TO 2 succeeds' or diag $err;
is_deeply [map { /^region "([^"]+)": step (\d+) \(\w+\) applied, 2 statements in \d+ ms$/ ? "$1/$2" : $_ }
           @{ notes($err) }],
    [map { ("$_/1", "$_/2") } @order],
    '... steps 1 and 2 in each region, each region fully before the next, said in NOTICEs';
is_deeply [map { /^region "([^"]+)": step (\d+) \(\w+\), statement (\d+) of 2 \(line (\d+)\), [\d.]+ s into the step$/
                 ? "$1/$2/$3/$4" : $_ } @{ progress($err) }],
    [map { my $r = $_; map { ("$r/$_/1/1", "$r/$_/2/2") } 1, 2 } @order],
    '... and a progress NOTICE as each statement starts: region, step, statement n of m, line, time';
for my $r (@order) {
    is_deeply states($cluster{$r}), ['1:applied', '2:applied'], "$r: steps 1 and 2 recorded applied";
    is_deeply runs($cluster{$r}), [1, 2], "$r: each ran once, step 3 not at all";
}

# The command tag, over the wire.
my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
ok $w->startup(user => 'admin', database => 'pgnear', password => 'admin-secret')->{ok},
    'an admin session over the wire';
my $q = $w->query('MIGRATE UP TO 2');
is $q->{tag}, 'MIGRATE', 'nothing left up to 2: the tag is MIGRATE';
like join("\n", map { ref $_ ? $_->{M} // '' : $_ } @{ $q->{notices} }),
    qr/every step up to the version is applied: nothing to run/, '... and a NOTICE says nothing ran';
is_deeply runs($eu), [1, 2], '... and nothing ran';

# ------------------------------------------------------------------ IN REGION

($rc, $out, $err) = admin_full('MIGRATE UP IN REGION "us-east"');
is $rc, 0, 'MIGRATE UP IN REGION us-east' or diag $err;
is_deeply notes($err), [grep { /^region "us-east": step 3 \(city\) applied/ } @{ notes($err) }],
    '... its NOTICEs speak of us-east\'s step 3 only';
like $err, qr/region "us-east": step 3 \(city\) applied/, '... step 3 ran there';
is_deeply runs($us), [1, 2, 3], '... us-east has all three';
is_deeply runs($eu), [1, 2], '... eu-west is untouched';
is_deeply runs($uw), [1, 2], '... us-west is untouched';

# ------------------------------------------------------------------ a failing step

write_file("$dir/0004_broken.sql",
    "INSERT INTO runs VALUES (4);\n\nINSERT INTO accounts VALUES (1 / 0);\n");
write_file("$dir/0005_after.sql", "INSERT INTO runs VALUES (5);\n");
($rc, $out, $err) = admin_full('MIGRATE UP');
isnt $rc, 0, 'MIGRATE UP with a failing step fails';
is sqlstate($err), '22012', '... with the server\'s SQLSTATE';
like $err, qr/step 4 \(broken\) failed in region "eu-west" at statement 2: division by zero/,
    '... naming step, region, statement and the server\'s error';
is_deeply states($eu), ['1:applied', '2:applied', '3:applied', '4:failed'],
    'eu-west: step 3 applied before it, step 4 recorded failed, step 5 not run';
is_deeply runs($eu), [1, 2, 3], '... step 3 ran, step 4 was rolled back';
my ($row4) = grep { $_->[0] == 4 } @{ history($eu) };
is_deeply [@$row4[4, 5]], ['division by zero (22012)', 2], '... its row names the error and statement';
is_deeply states($us), ['1:applied', '2:applied', '3:applied'], 'us-east: untouched';
is_deeply states($uw), ['1:applied', '2:applied'], 'us-west: untouched (not even step 3)';
is_deeply runs($uw), [1, 2], '... no step of it ran';

# The failed row stops the run before anything runs, in any region.
($rc, $out, $err) = admin_full('MIGRATE UP');
is sqlstate($err), '55000', 'MIGRATE UP again refuses: the failed step is in eu-west\'s history';
like $err, qr/step 4 \(broken\) is failed in region "eu-west"/, '... naming it';
like $err, qr/HINT:.*settle the step there first/, '... and saying what to do';
is_deeply states($uw), ['1:applied', '2:applied'], '... us-west still untouched';

# Settled by hand and the file fixed: UP runs the rest everywhere.
$eu->psql_admin('DELETE FROM pgnear_schema_history WHERE version = 4', dbname => 'movr');
write_file("$dir/0004_broken.sql", "INSERT INTO runs VALUES (4);\n");
($rc, $out, $err) = admin_full('MIGRATE UP');
is $rc, 0, 'MIGRATE UP after the fix' or diag $err;
is_deeply [map { /^region "([^"]+)": step (\d+) / ? "$1/$2" : $_ } @{ notes($err) }],
    ['eu-west/4', 'eu-west/5', 'us-east/4', 'us-east/5', 'us-west/3', 'us-west/4', 'us-west/5'],
    '... each region\'s pending steps, in order, region by region';
for my $r (@order) {
    is_deeply runs($cluster{$r}), [1 .. 5], "$r: every step ran once";
    is_deeply states($cluster{$r}), [map { "$_:applied" } 1 .. 5], "$r: all five applied";
}

# ------------------------------------------------------------------ two pgnear racing

my $p2 = PgNearTest::Proxy->new(regions => [$us, $uw, $eu], settings => \%settings);
write_file("$dir/0006_slow.sql", "SELECT pg_sleep(0.5);\nINSERT INTO runs VALUES (6);\n");
write_file("$dir/0007_last.sql", "INSERT INTO runs VALUES (7);\n");
my @kids;
for my $px ($p, $p2) {
    my $file = "$auth_dir/race-" . $px->port;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my ($crc, $cout, $cerr) = psql(admin_ci($px), 'MIGRATE UP', verbose => 1, timeout => 60);
        write_file($file, "$crc\n$cerr");
        exit 0;
    }
    push @kids, [$pid, $file];
}
my @applied;
for my $k (@kids) {
    waitpid($k->[0], 0);
    my ($crc, @cerr) = split /\n/, slurp_file($k->[1]);
    is $crc, 0, 'a racing MIGRATE UP succeeds' or diag join("\n", @cerr);
    push @applied, grep { /step \d+ \(\w+\) applied/ } @cerr;
}
is scalar(@applied), 6, 'between them, the two said each of steps 6 and 7 applied once per region';
for my $r (@order) {
    is_deeply runs($cluster{$r}), [1 .. 7], "$r: steps 6 and 7 ran exactly once";
    is_deeply states($cluster{$r}), [map { "$_:applied" } 1 .. 7], "$r: recorded once each";
}

# ------------------------------------------------------------------ no-transaction steps

is $p2->stop, 0, 'the second pgnear exits cleanly';

# CREATE INDEX CONCURRENTLY cannot run in a transaction block: it runs on its own.
write_file("$dir/0008_index.sql", "-- pgnear: no-transaction\n-- pgnear: lock_timeout = 5s\n"
  . "CREATE INDEX CONCURRENTLY accounts_city ON accounts (city);\nINSERT INTO runs VALUES (8);\n");
($rc, $out, $err) = admin_full('MIGRATE UP');
is $rc, 0, 'MIGRATE UP runs a no-transaction step (CREATE INDEX CONCURRENTLY)' or diag $err;
is_deeply [map { /^region "([^"]+)": step 8 \(index\) applied, 2 statements \(no transaction\)/ ? $1 : $_ }
           @{ notes($err) }], \@order, '... in each region, said so in NOTICEs';
for my $r (@order) {
    is $cluster{$r}->psql_admin("SELECT indisvalid FROM pg_index WHERE indexrelid = 'accounts_city'::regclass",
                                dbname => 'movr'), 't', "$r: the index is built and valid";
    my ($row8) = grep { $_->[0] == 8 } @{ history($cluster{$r}) };
    is_deeply [@$row8[1 .. 5]], ['applied', 2, 2, '', ''], "$r: its row applied, 2 of 2 statements";
}

# A failing second statement: the first stays done, the row says failed at statement 2.
write_file("$dir/0009_half.sql", "-- pgnear: no-transaction\nINSERT INTO runs VALUES (9);\n"
  . "INSERT INTO accounts VALUES (1 / 0);\nINSERT INTO runs VALUES (99);\n");
($rc, $out, $err) = admin_full('MIGRATE UP');
is sqlstate($err), '22012', 'a no-transaction step failing at statement 2: the server\'s SQLSTATE';
like $err, qr/step 9 \(half\) failed in region "eu-west" at statement 2: division by zero/,
    '... naming step, region and statement';
like $err, qr/DETAIL:.*not rolled back/, '... and saying it is not rolled back';
my ($row9) = grep { $_->[0] == 9 } @{ history($eu) };
is_deeply [@$row9[1 .. 5]], ['failed', 1, 3, 'division by zero (22012)', 2],
    'eu-west: failed, 1 of 3 statements done, at statement 2';
is_deeply runs($eu), [1 .. 9], '... statement 1 stays done, statement 3 never ran';
is_deeply runs($us), [1 .. 8], 'us-east: untouched';
($rc, $out, $err) = admin_full('MIGRATE UP');
like $err, qr/step 9 \(half\) is failed in region "eu-west"/, 'MIGRATE UP then refuses, naming it';

# pgnear killed in the middle of a no-transaction step: running, then uncertain.
# Statement 2 sleeps as long as sleep_for says in its region: 8 s in
# eu-west while pgnear is killed in it (the orphaned sleep is waited for
# below), then 0 s, so that the runs of the same step later on (RETRY, UP
# again) do not wait for nothing.
$eu->psql_admin(['DELETE FROM pgnear_schema_history WHERE version = 9', 'DELETE FROM runs WHERE step = 9'],
                dbname => 'movr');
for my $c ($eu, $us, $uw) {
    $c->psql_admin(['CREATE TABLE sleep_for (s float8)',
                    'INSERT INTO sleep_for VALUES (' . ($c == $eu ? 8 : 0) . ')'], dbname => 'movr');
}
write_file("$dir/0009_half.sql", "-- pgnear: no-transaction\nINSERT INTO runs VALUES (9);\n"
  . "SELECT pg_sleep((SELECT s FROM sleep_for));\nINSERT INTO runs VALUES (99);\n");
my $kid = fork // die "fork: $!";
if ($kid == 0) { my @r = psql(admin_ci($p), 'MIGRATE UP', timeout => 30); exit 0 }
ok wait_until(sub { my ($r) = grep { $_->[0] == 9 } @{ history($eu) };
                    $r && $r->[1] eq 'running' && $r->[2] == 1 }, timeout => 10),
    'eu-west: step 9 running, statement 1 done, while statement 2 sleeps';
($rc, $out, $err) = admin_full('SHOW MIGRATIONS');
like $out, qr/^9\|half\|eu-west\|running\|/m, 'SHOW MIGRATIONS meanwhile: running (the run holds the lock)';
$p->stop(signal => 'KILL');
waitpid($kid, 0);
$p->start;
my $wait_done = wait_until(sub { $eu->psql_admin(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'", dbname => 'movr') == 0 }, timeout => 10);
ok $wait_done, 'the lock went with the killed pgnear\'s connection';
($rc, $out, $err) = admin_full('SHOW MIGRATIONS');
like $out, qr/^9\|half\|eu-west\|uncertain\|/m, 'after the restart SHOW MIGRATIONS says uncertain';
($rc, $out, $err) = admin_full('MIGRATE UP');
is sqlstate($err), '55000', 'MIGRATE UP refuses: 55000';
like $err, qr/step 9 \(half\) is uncertain in region "eu-west"/, '... naming step and region';
# The server finishes the orphaned pg_sleep, then cannot answer: its backend goes.
ok wait_until(sub { $eu->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                                  . " AND query LIKE '%pg_sleep(%'", dbname => 'movr') == 0 },
              timeout => 20, interval => 0.2),
    'the orphaned statement 2 ends on the server';
is_deeply runs($eu), [1 .. 9], '... and statement 3 never ran';
$eu->psql_admin('UPDATE sleep_for SET s = 0', dbname => 'movr');
is_deeply runs($us), [1 .. 8], '... nor anything in us-east';

# ------------------------------------------------------------------ RESOLVE and RETRY

($rc, $out, $err) = admin_full('MIGRATE RESOLVE 9 AS applied IN REGION "us-east"');
is sqlstate($err), '55000', 'RESOLVE where the step is pending: 55000';
like $err, qr/step 9 is neither uncertain nor failed in any region where it can be resolved/, '... saying so';

($rc, $out, $err) = admin_full('MIGRATE RETRY 9');
is $rc, 0, 'MIGRATE RETRY 9' or diag $err;
is_deeply notes($err),
    ['region "eu-west": step 9 (half) goes on from statement 2',
     (grep { /^region "eu-west": step 9 \(half\) applied, 3 statements \(no transaction\)/ } @{ notes($err) }),
     'region "us-east": step 9 is pending there: nothing to retry',
     'region "us-west": step 9 is pending there: nothing to retry'],
    '... goes on in eu-west from statement 2, and passes over the regions where it is pending';
is scalar(@{ notes($err) }), 4, '... the step said applied there';
is_deeply runs($eu), [1 .. 9, 99], 'eu-west: statement 1 not run again, statement 3 ran';
($row9) = grep { $_->[0] == 9 } @{ history($eu) };
is_deeply [@$row9[1 .. 5]], ['applied', 3, 3, '', ''], '... its row applied, 3 of 3';
is_deeply runs($us), [1 .. 8], 'us-east: nothing ran';

# A running row written by hand in us-east (its lock free: uncertain), resolved as applied.
my $sum9 = $eu->psql_admin('SELECT checksum FROM pgnear_schema_history WHERE version = 9', dbname => 'movr');
for my $c ($us, $uw) {
    $c->psql_admin("INSERT INTO pgnear_schema_history (version, name, checksum, state, statements_done,"
      . " statements_total, run_by) VALUES (9, 'half', '$sum9', 'running', 0, 3, 'by hand')", dbname => 'movr');
}
like admin('SHOW MIGRATIONS'), qr/^9\|half\|us-east\|uncertain\|/m, 'us-east: step 9 uncertain';
($rc, $out, $err) = admin_full('MIGRATE RESOLVE 9 AS applied IN REGION "us-east"');
is $rc, 0, 'MIGRATE RESOLVE 9 AS applied IN REGION us-east' or diag $err;
is_deeply notes($err), ['region "us-east": step 9 resolved as applied'], '... said in a NOTICE';
($row9) = grep { $_->[0] == 9 } @{ history($us) };
is $row9->[1], 'applied', '... its row says applied';
like $row9->[4], qr/^resolved as applied by pgnear \S+ on \S+ pid \d+, admin admin at \d{4}-\d\d-\d\d /,
    '... and who resolved it, and when';
is_deeply runs($us), [1 .. 8], '... and nothing ran';
is_deeply states($uw), [(map { "$_:applied" } 1 .. 8), '9:running'], 'us-west was left as it was';

($rc, $out, $err) = admin_full('MIGRATE RESOLVE 9 AS failed');
is $rc, 0, 'MIGRATE RESOLVE 9 AS failed (every region)' or diag $err;
is_deeply notes($err), ['region "eu-west": step 9 is applied there: nothing to resolve',
                        'region "us-east": step 9 is applied there: nothing to resolve',
                        'region "us-west": step 9 resolved as failed'],
    '... only where it is uncertain';
is_deeply states($uw), [(map { "$_:applied" } 1 .. 8), '9:failed'], 'us-west: failed';
($rc, $out, $err) = admin_full('MIGRATE UP');
like $err, qr/step 9 \(half\) is failed in region "us-west"/, 'MIGRATE UP refuses, naming it';
($rc, $out, $err) = admin_full('MIGRATE RETRY 9 IN REGION "us-west"');
is $rc, 0, 'MIGRATE RETRY 9 IN REGION us-west' or diag $err;
is_deeply runs($uw), [1 .. 9, 99], '... ran the step from its first statement (none was done)';
is_deeply states($uw), [map { "$_:applied" } 1 .. 9], '... applied';

# RETRY of a failed transactional step runs it whole.
write_file("$dir/0010_tx.sql", "INSERT INTO runs VALUES (10);\nINSERT INTO accounts VALUES (1 / 0);\n");
($rc, $out, $err) = admin_full('MIGRATE UP IN REGION "us-west"');
is sqlstate($err), '22012', 'a transactional step fails in us-west';
write_file("$dir/0010_tx.sql", "INSERT INTO runs VALUES (10);\nINSERT INTO accounts VALUES (10);\n");
($rc, $out, $err) = admin_full('MIGRATE RETRY 10');
is $rc, 0, 'MIGRATE RETRY 10 runs it again, fixed' or diag $err;
is_deeply runs($uw), [1 .. 10, 99], '... whole, once';
is_deeply states($uw), [map { "$_:applied" } 1 .. 10], '... applied';
($rc, $out, $err) = admin_full('MIGRATE UP');
is $rc, 0, 'MIGRATE UP goes on everywhere' or diag $err;
for my $r (@order) {
    is_deeply states($cluster{$r}), [map { "$_:applied" } 1 .. 10], "$r: every step applied";
}

# ------------------------------------------------------------------ DOWN

($rc, $out, $err) = admin_full('MIGRATE DOWN TO 8');
is sqlstate($err), '55000', 'MIGRATE DOWN past a step without a down file: 55000';
like $err, qr/step 9 \(half\) cannot go down in region "eu-west"/, '... naming a step and region';
like $err, qr/DETAIL:.*no down file/, '... saying why';
for my $r (@order) {
    is_deeply states($cluster{$r}), [map { "$_:applied" } 1 .. 10], "$r: nothing ran";
}
write_file("$dir/0010_tx.down.sql", "DELETE FROM runs WHERE step = 10;\nDELETE FROM accounts WHERE id = 10;\n");
write_file("$dir/0009_half.down.sql", "DELETE FROM runs WHERE step IN (9, 99);\n");

($rc, $out, $err) = admin_full('MIGRATE DOWN TO 8 IN REGION "us-west"');
is $rc, 0, 'MIGRATE DOWN TO 8 IN REGION us-west' or diag $err;
is_deeply [map { /^region "([^"]+)": step (\d+) \(\w+\) reverted, \d statements? in \d+ ms$/ ? "$1/$2" : $_ }
           @{ notes($err) }], ['us-west/10', 'us-west/9'], '... steps 10 then 9 reverted, newest first';
is_deeply states($uw), [(map { "$_:applied" } 1 .. 8), '9:reverted', '10:reverted'], '... recorded reverted';
is_deeply runs($uw), [1 .. 8], '... their down scripts ran';
is_deeply runs($us), [1 .. 8, 10], 'us-east untouched';

($rc, $out, $err) = admin_full('MIGRATE DOWN TO 9');
is $rc, 0, 'MIGRATE DOWN TO 9' or diag $err;
is_deeply [map { /^region "([^"]+)": step (\d+) \(\w+\) reverted/ ? "$1/$2" : $_ } @{ notes($err) }],
    ['region "us-west" has nothing to run', 'us-east/10', 'eu-west/10'],
    '... regions in reverse migration order';
is_deeply states($eu), [(map { "$_:applied" } 1 .. 9), '10:reverted'], 'eu-west: step 10 reverted';
is_deeply runs($eu), [1 .. 9, 99], '... by its down script';

($rc, $out, $err) = admin_full('MIGRATE UP IN REGION "us-west"');
is $rc, 0, 'MIGRATE UP runs reverted steps again' or diag $err;
is_deeply runs($uw), [1 .. 10, 99], '... 9 and 10 in us-west';
is_deeply states($uw), [map { "$_:applied" } 1 .. 10], '... applied again';

write_file("$dir/0010_tx.down.sql", "DELETE FROM runs WHERE step = 10;\nSELECT 1 / 0;\n");
($rc, $out, $err) = admin_full('MIGRATE DOWN TO 9 IN REGION "us-west"');
is sqlstate($err), '22012', 'a failing down script: the server\'s SQLSTATE';
like $err, qr/step 10 \(tx\) failed in region "us-west" at statement 2: division by zero/,
    '... naming step, region and statement';
is_deeply states($uw), [map { "$_:applied" } 1 .. 10], '... the row stays applied';
is_deeply runs($uw), [1 .. 10, 99], '... the down script was rolled back';

# ------------------------------------------------------------------ a no-transaction down script

sub indexes {
    join ',', split /\n/, $_[0]->psql_admin("SELECT indexname FROM pg_indexes WHERE tablename = 'accounts'"
                                          . " AND indexname LIKE 'acc\\_%' ORDER BY 1", dbname => 'movr');
}
sub row_of { my ($c, $v) = @_; my ($r) = grep { $_->[0] == $v } @{ history($c) }; $r // [] }

write_file("$dir/0011_idx.sql", "-- pgnear: no-transaction\n"
  . "CREATE INDEX CONCURRENTLY acc_a ON accounts (id);\nCREATE INDEX CONCURRENTLY acc_b ON accounts (city);\n");
write_file("$dir/0011_idx.down.sql", "-- pgnear: no-transaction\n"
  . "DROP INDEX CONCURRENTLY acc_a;\nDROP INDEX CONCURRENTLY acc_bx;\n");
($rc, $out, $err) = admin_full('MIGRATE UP');
is $rc, 0, 'a no-transaction step 11 with a no-transaction down script: applied' or diag $err;
is indexes($_), 'acc_a,acc_b', $_->name . ': both indexes' for $eu, $us, $uw;

($rc, $out, $err) = admin_full('MIGRATE DOWN TO 10');
is sqlstate($err), '42704', 'its down script failing at statement 2: the server\'s SQLSTATE';
like $err, qr/step 11 \(idx\) failed in region "us-west" at statement 2: index "acc_bx" does not exist/,
    '... naming step, region, statement and the error';
like $err, qr/HINT:\s+Its history row says reverting: once the down script is fixed, MIGRATE DOWN goes on from statement 2/,
    '... the hint says how to go on';
is_deeply [@{ row_of($uw, 11) }[1, 2, 3, 5]], ['reverting', 1, 2, 2],
    'us-west: the row says reverting, 1 of 2 statements done, stopped at statement 2';
like row_of($uw, 11)->[4], qr/acc_bx/, '... with the server\'s error';
is indexes($uw), 'acc_b', '... the first statement stays done';
is_deeply [@{ row_of($us, 11) }[1]], ['applied'], 'us-east: not touched';
like psql(admin_ci($p), 'SHOW MIGRATIONS'), qr/^11\|idx\|us-west\|reverting\|/m, 'SHOW MIGRATIONS: reverting';
($rc, $out, $err) = admin_full('MIGRATE UP');
is sqlstate($err), '55000', 'MIGRATE UP refuses a half-reverted step';
like $err, qr/step 11 \(idx\) is half reverted in region "us-west"/, '... naming it';

write_file("$dir/0011_idx.down.sql", "-- pgnear: no-transaction\n"
  . "DROP INDEX CONCURRENTLY acc_a;\nDROP INDEX CONCURRENTLY acc_b;\n");
($rc, $out, $err) = admin_full('MIGRATE DOWN TO 10');
is $rc, 0, 'the down script fixed: MIGRATE DOWN TO 10' or diag $err;
like $err, qr/region "us-west": the down script of step 11 \(idx\) goes on from statement 2/,
    '... goes on from statement 2 in us-west';
is_deeply [map { /^region "([^"]+)": step (\d+) \(\w+\) reverted/ ? "$1/$2" : () } @{ notes($err) }],
    ['us-west/11', 'us-east/11', 'eu-west/11'], '... then the other regions, in reverse order';
for my $c ($eu, $us, $uw) {
    is row_of($c, 11)->[1], 'reverted', $c->name . ': step 11 reverted';
    is indexes($c), '', '... both indexes gone';
}

($rc, $out, $err) = admin_full('MIGRATE UP');
is $rc, 0, 'step 11 again' or diag $err;
write_file("$dir/0011_idx.down.sql", "-- pgnear: no-transaction\n"
  . "DROP INDEX CONCURRENTLY acc_a;\nDROP INDEX CONCURRENTLY acc_bx;\n");
($rc, $out, $err) = admin_full('MIGRATE DOWN TO 10 IN REGION "us-east"');
is row_of($us, 11)->[1], 'reverting', 'its down script stops part way in us-east';
($rc, $out, $err) = admin_full('MIGRATE RESOLVE 11 AS failed');
is sqlstate($err), '55000', 'RESOLVE AS failed of a half-reverted step: refused';
($rc, $out, $err) = admin_full('MIGRATE RETRY 11');
is sqlstate($err), '55000', 'RETRY of it: refused (MIGRATE DOWN goes on)';
($rc, $out, $err) = admin_full('MIGRATE RESOLVE 11 AS reverted');
is $rc, 0, 'MIGRATE RESOLVE 11 AS reverted' or diag $err;
like $err, qr/region "us-east": step 11 resolved as reverted/, '... in us-east';
is row_of($us, 11)->[1], 'reverted', '... the row says reverted';
like row_of($us, 11)->[4], qr/resolved as reverted by pgnear .* at /, '... and who settled it, when';
is row_of($eu, 11)->[1], 'applied', 'eu-west: still applied';

like admin('SHOW VERSION'), qr/^pgnear/, 'the console is up after all that';
is $p->stop, 0, 'pgnear exits cleanly on SIGTERM';

done_testing();
