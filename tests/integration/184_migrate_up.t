# MIGRATE UP on three regions, transactional steps: UP TO runs every
# pending step up to the version, UP all of them, region by region in
# migration order, each region fully before the next, and answers with the
# tag MIGRATE and a NOTICE per step; IN REGION limits it to one; a region
# whose history would refuse stops the run before anything runs anywhere;
# a failing step stops everything after it (later regions untouched,
# earlier ones recorded) with an error naming region, step, statement and
# the server's error and SQLSTATE; two pgnear instances sent MIGRATE UP at
# the same time run each step exactly once in each region.
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
                health_check_interval => '200ms', migrations_dir => $dir,
                migrations_db => 'movr', migration_order => 'eu-west, us-east');
my $p = PgNearTest::Proxy->new(regions => [$us, $uw, $eu], settings => \%settings);

sub admin_ci { my $px = shift; $px->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret') }
sub admin { psql(admin_ci($p), @_) }
sub admin_full { psql(admin_ci($p), $_[0], verbose => 1) }
sub runs { [split /\n/, $_[0]->psql_admin('SELECT step FROM runs ORDER BY step', dbname => 'movr')] }
sub history {
    my ($c) = @_;
    return [] if $c->psql_admin("SELECT to_regclass('pgnear_schema_history') IS NOT NULL",
                                dbname => 'movr') ne 't';
    return [map { [split /\|/, $_, -1] } split /\n/, $c->psql_admin(
        'SELECT version, state, statements_done, statements_total, error, error_statement'
      . ' FROM pgnear_schema_history ORDER BY version', dbname => 'movr')];
}
sub states { [map { "$_->[0]:$_->[1]" } @{ history($_[0]) }] }
sub notes { my @n = $_[0] =~ /NOTICE:\s+(?:00000: )?(.*)/g; \@n }

# ------------------------------------------------------------------ UP TO

my ($rc, $out, $err) = admin_full('MIGRATE UP TO 2');
is $rc, 0, 'MIGRATE UP TO 2 succeeds' or diag $err;
is_deeply [map { /^region "([^"]+)": step (\d+) \(\w+\) applied, 2 statements in \d+ ms$/ ? "$1/$2" : $_ }
           @{ notes($err) }],
    [map { ("$_/1", "$_/2") } @order],
    '... steps 1 and 2 in each region, each region fully before the next, said in NOTICEs';
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

like admin('SHOW VERSION'), qr/^pgnear/, 'the console is up after all that';
is $p2->stop, 0, 'the second pgnear exits cleanly';
is $p->stop, 0, 'pgnear exits cleanly on SIGTERM';

done_testing();
