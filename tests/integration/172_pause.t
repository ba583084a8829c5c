# PAUSE, RESUME and DRAIN in the admin console: PAUSE under pgbench -c 16
# returns only once every session is held and loses no transaction; a
# session in an open transaction makes PAUSE give up after pause_timeout,
# naming it, and traffic flows again; a new session in a paused region
# waits at the same gate; PAUSE racing RESUME ends at once; DRAIN under
# auth = passthrough moves nobody and says why, closes idle sessions with
# 57P01 and the others at their next safe point, while new sessions go to
# the next region.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IO::Select;
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $uw = PgNearTest::Cluster->new(name => 'us-west');
my $auth_dir = PgNearTest::tmpdir(name => 'pause-auth');
write_file("$auth_dir/userlist.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
my $p = PgNearTest::Proxy->new(regions => [$us, $uw],
    settings => { auth => 'passthrough', server_tls => 'disable', admin_users => 'admin',
                  auth_file => "$auth_dir/userlist.txt", pause_timeout => '1500ms' },
    extra_ini => "\n[cities]\nboston = us-east\n");
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');
my $boston = $p->conninfo(dbname => 'movr', options => '-c pgnear.city=Boston');

sub admin_try {
    my ($sql) = @_;
    my ($rc, $out, $err) = psql($admin_ci, $sql, verbose => 1);
    return ($rc, sqlstate($err), $err, $out);
}

sub held_count {
    return scalar grep { (split /\|/)[5] eq 'held' } split /\n/, psql($admin_ci, 'SHOW CLIENTS');
}

# Rows of a SHOW command as hashes by column name (new columns may come at the end).
sub show_rows {
    my ($cmd) = @_;
    my @lines = split /\n/, psql($admin_ci, $cmd, args => ['-P', 'tuples_only=off', '-P', 'footer=off']);
    my @head = split /\|/, (shift(@lines) // ''), -1;
    return map { my %r; @r{@head} = split(/\|/, $_, -1); \%r } @lines;
}

sub wire {
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { options => '-c pgnear.city=Boston' });
    return $r->{ok} ? $w : undef;
}

# Nothing arrives on the connection within $secs.
sub silent_for {
    my ($w, $secs) = @_;
    return !IO::Select->new($w->socket)->can_read($secs);
}

my ($rc, $out, $err) = pgbench(['-i', '-s', '1', '-q'], $boston, timeout => 60);
is $rc, 0, 'pgbench -i through pgnear' or diag $err;

# ------------------------------------------------------------------ PAUSE under load

my $bench_out = "$auth_dir/bench.out";
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    # Long enough to run on after RESUME: each admin query below is a psql of
    # its own, which a loaded machine can take a second to start.
    my ($brc, $bo, $be) = pgbench(['-n', '-c', '16', '-j', '2', '-T', '14', '-S'], $boston, timeout => 90);
    write_file($bench_out, "rc=$brc\n$bo\n$be");
    exit 0;
}
sleep 1.5;
my $t0 = time;
($rc, my $state, $err) = admin_try('PAUSE');
my $took = time - $t0;
is $rc, 0, 'PAUSE under pgbench -c 16 succeeds' or diag $err;
is held_count(), 16, 'when PAUSE returns, every pgbench session is held';
my $commits = sub { $us->psql_admin("SELECT xact_commit FROM pg_stat_database WHERE datname = 'movr'") };
my $before = $commits->();
sleep 0.5;
is $commits->(), $before, 'no transaction runs in movr while paused';
is((grep { $_->{region} eq 'us-east' } show_rows('SHOW REGIONS'))[0]{paused}, 't', 'SHOW REGIONS: us-east is paused');
sleep 0.5;
is psql($admin_ci, 'RESUME'), 'RESUME', 'RESUME';
waitpid($pid, 0);
my $bench = slurp_file($bench_out);
like $bench, qr/^rc=0$/m, 'pgbench ends well';
my $r = parse_pgbench($bench);
is $r->{failed} // 0, 0, '... with no failed transaction';
cmp_ok $r->{processed}, '>', 100, '... and work done before and after the pause';
like $bench, qr/latency average/, 'pgbench reported';
is held_count(), 0, 'nobody is held after RESUME';

# ------------------------------------------------------------------ a transaction keeps PAUSE from closing

my $tx = wire();
ok $tx, 'a session for an open transaction';
$tx->query('BEGIN');
my $other = wire();
ok $other, 'and an idle one';
my ($tx_id) = map { $_->{id} } grep { $_->{in_transaction} eq 't' } show_rows('SHOW CLIENTS');
ok defined $tx_id, 'SHOW CLIENTS: in_transaction shows the open transaction';
$t0 = time;
($rc, $state, $err) = admin_try('PAUSE us-east');
$took = time - $t0;
is $state, '57014', 'PAUSE with a client in a transaction gives up: 57014';
like $err, qr/client \Q$tx_id\E \(.*\) in a transaction/, '... naming the client and that it is in a transaction';
like $err, qr/pause is undone/, '... saying the pause is undone';
cmp_ok $took, '>=', 1.4, '... after pause_timeout';
cmp_ok $took, '<', 5, '... not much later';
is $other->query('SELECT 1')->{rows}[0][0], 1, 'traffic flows again: the idle session answers';
is $tx->query('COMMIT')->{tag}, 'COMMIT', 'the transaction commits';
is((grep { $_->{region} eq 'us-east' } show_rows('SHOW REGIONS'))[0]{paused}, 'f',
   'SHOW REGIONS: us-east is not paused any more');

# An extended-protocol batch without its Sync yet: the server is inside an implicit
# transaction whatever its last ReadyForQuery said, so PAUSE must not count it as held.
{
    my $b = wire();
    $b->send_msg('P', "\0SELECT 7\0\0\0");
    $b->send_msg('B', "\0\0\0\0\0\0\0\0");
    $b->send_msg('E', "\0\0\0\0\0");
    $b->send_msg('H', '');
    my @seen;
    for (1 .. 4) { my ($t) = $b->read_msg; push @seen, $t }
    is join('', @seen), '12DC', 'a batch executed and flushed, no Sync yet';
    my ($brc, $bstate, $berr) = admin_try('PAUSE us-east');
    is $bstate, '57014', 'PAUSE does not take a session with an open batch for idle';
    $b->send_msg('S', '');
    my ($t) = $b->read_msg;
    is $t, 'Z', 'the batch ends with its Sync';
    $b->terminate;
}

# ------------------------------------------------------------------ new sessions wait at the gate

is psql($admin_ci, 'PAUSE us-east'), 'PAUSE', 'PAUSE us-east with every session idle returns at once';
my $late = wire();
ok $late, 'a new session logs in while us-east is paused';
$late->send_msg('Q', "SELECT 42\0");
ok silent_for($late, 0.7), '... but its first query waits';
is held_count(), 3, 'SHOW CLIENTS: it is held with the others';
my $west = wire_region('us-west');
is $west->query('SHOW cluster_name')->{rows}[0][0], 'us-west', 'a session in another region is not paused';
psql($admin_ci, 'RESUME us-east');
my %got;
for (1 .. 20) {
    my ($t, $m) = $late->read_msg;
    last unless defined $t;
    $got{$t} = $m;
    last if $t eq 'Z';
}
like $got{D} // '', qr/42/, 'after RESUME the held query is answered';

sub wire_region {
    my ($region) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                params => { options => "-c pgnear.region=$region" });
    return $w;
}

# ------------------------------------------------------------------ PAUSE racing RESUME

$tx->query('BEGIN');
my $race = "$auth_dir/race.out";
$pid = fork // die "fork: $!";
if ($pid == 0) {
    my ($prc, $po, $pe) = psql($admin_ci, 'PAUSE', verbose => 1);
    write_file($race, "rc=$prc\n$pe");
    exit 0;
}
sleep 0.4;
is psql($admin_ci, 'RESUME'), 'RESUME', 'RESUME while a PAUSE waits';
# From RESUME's answer, not from starting its psql: that login alone takes
# most of a second under ASan on a loaded machine.
$t0 = time;
waitpid($pid, 0);
cmp_ok time - $t0, '<', 1, 'the waiting PAUSE ends at once';
like slurp_file($race), qr/canceled by RESUME/, '... saying RESUME canceled it';
is $tx->query('COMMIT')->{tag}, 'COMMIT', 'the transaction goes on';
is $other->query('SELECT 2')->{rows}[0][0], 2, 'and so does everyone else';

# ------------------------------------------------------------------ a cancel request stops a waiting PAUSE

is psql($admin_ci, "SET pause_timeout = '30s'"), 'SET', 'pause_timeout = 30s for the next PAUSE';
my $busy = wire();
$busy->query('BEGIN');
my $con = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
my $login = $con->startup(user => 'admin', database => 'pgnear', password => 'admin-secret');
ok $login->{ok} && $login->{pid} && length($login->{key} // '') == 4,
    'the console sends BackendKeyData: a process ID and a key';
# A wrong key changes nothing: the PAUSE goes on waiting.
$con->send_query('PAUSE us-east');
sleep 0.3;
PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $login->{pid},
                         key => pack('N', unpack('N', $login->{key}) ^ 1));
ok silent_for($con, 0.5), 'a cancel request with a wrong key does not stop PAUSE (nothing arrives)';
$t0 = time;
PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $login->{pid},
                         key => $login->{key});
my $canceled = $con->read_result;
$took = time - $t0;
is $canceled->{error}{C}, '57014', 'the right key stops the waiting PAUSE: 57014';
like $canceled->{error}{M}, qr/^canceling statement due to user request$/, '... in PostgreSQL\'s words';
like $canceled->{error}{D} // '', qr/client \d+ .* in a transaction/, '... naming who was still busy';
cmp_ok $took, '<', 2, '... at once, long before pause_timeout';
is((grep { $_->{region} eq 'us-east' } show_rows('SHOW REGIONS'))[0]{paused}, 'f', '... and the pause is undone');
is $busy->query('COMMIT')->{tag}, 'COMMIT', 'the busy session goes on';
like $con->query('SHOW VERSION')->{rows}[0][0], qr/^pgnear/, 'the console session goes on';
is psql($admin_ci, 'RELOAD'), 'RELOAD', 'RELOAD: pause_timeout as the file says again';

# ------------------------------------------------------------------ DRAIN

$tx->query('BEGIN');
# Under auth = passthrough no session can move: DRAIN names each, then closes them as before.
my @drained = split /\n/, psql($admin_ci, 'DRAIN us-east');
ok @drained >= 2, 'DRAIN us-east answers a row per session of the region' or diag explain \@drained;
is scalar(grep { /^\d+\|us-east\|\|not moved\|auth = passthrough: pgnear cannot log in for the client\|/ } @drained),
   scalar(@drained), '... each not moved, for auth = passthrough';
my $q = $other->query('SELECT 3');
ok $q->{eof} || ($q->{error} && $q->{error}{C} eq '57P01'), 'an idle session is closed (57P01)';
is psql($boston, 'SHOW cluster_name'), 'us-west', 'new Boston sessions go to the next region';
is $tx->query('SELECT 4')->{rows}[0][0], 4, 'a session in a transaction goes on';
$q = $tx->query('COMMIT');
is $q->{tag}, 'COMMIT', '... commits';
my ($t, $m) = $tx->read_msg;
is $t, 'E', '... then is closed at its safe point';
like $m // '', qr/C57P01.*draining region us-east/s, '... with 57P01 saying why';
like((grep { /^us-east\|/ } split /\n/, psql($admin_ci, 'SHOW REGIONS'))[0], qr/^us-east\|draining\|/,
     'SHOW REGIONS: draining');
is psql($admin_ci, 'ENABLE us-east'), 'ENABLE', 'ENABLE us-east';
is psql($boston, 'SHOW cluster_name'), 'us-east', 'Boston goes home again';
($rc, $state) = admin_try('DRAIN nowhere');
is $state, '42704', 'DRAIN of an unknown region: 42704';

done_testing;
