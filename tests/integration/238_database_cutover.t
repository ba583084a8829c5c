# Moving a database to another region, second part: the cutover.  The
# MovR database (users, vehicles, 100,000 rides with sequences) moves
# from us-east to eu-west, two separate clusters with wal_level = logical,
# while pgbench (-M prepared) and a MovR-like writer (new rides from the
# rides sequence) write through pgnear:
#   - MOVE DATABASE movr CUTOVER holds the sessions, makes us-east refuse
#     writes, waits for eu-west, sets its sequences, switches, moves every
#     held session (a held client's backend pid changes, its connection
#     does not), and starts replication back: 0 failed transactions, no
#     duplicate key, the same rows on both sides;
#   - REVERT goes back the same way, losing no write made in eu-west;
#   - CUTOVER and REVERT alternate 4 times under load, and note the hold
#     times (PGNEAR_CUTOVER_ROUNDS=10 for the median and worst of 10);
#   - FINISH drops the replication both ways and leaves us-east's copy
#     refusing writes;
#   - each step refused out of turn with 55000, naming the next command;
#   - a CUTOVER refused (55000) while a role with a session on us-east has
#     another SCRAM secret in eu-west, naming the role, the fix as the hint.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IPC::Run ();
use PgNearTest;
use PgNearDbMove qw(logical_pair write_users admin_rows admin_refused);

require_tool('psql');
require_tool('pgbench');
require_tool('pg_dump');

my ($us, $eu, $app_secret) = logical_pair();

my $dir = tmpdir(name => 'cutover', mode => 0755);
write_users($dir, $app_secret);
my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
    settings => { auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                  server_tls => 'disable', workers => $ENV{PGNEAR_TEST_WORKERS} // 2,
                  # 5s: pgbench, two clusters and their replication share two cores here
                  health_check_interval => '1s', health_check_timeout => '5s' },
    extra_ini => "[database movr]\nregions = us-east\n");
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');
my $app_ci = $p->conninfo(dbname => 'movr');

# An admin command: (rows as hashes, error text or undef, everything psql said on stderr).
sub admin { admin_rows($admin_ci, $_[0]) }

sub refused { admin_refused($admin_ci, @_) }

sub move_state { PgNearDbMove::move_state($admin_ci, 'movr') }

# Where a new session through pgnear lands: the server's port.
sub lands_on {
    my ($rc, $out) = psql($app_ci, 'SELECT inet_server_port()');
    return $rc == 0 ? $out : "error";
}

my $sum = q{SELECT count(*) || ':' || coalesce(sum(revenue), 0) || ':' || max(id) FROM rides};
sub same_rides {
    my $a = $us->psql_admin($sum, dbname => 'movr');
    return $a eq $eu->psql_admin($sum, dbname => 'movr') ? $a : undef;
}

ok wait_until(sub { my ($r) = admin('SHOW REGIONS'); 2 == grep { $_->{role} eq 'primary' } @$r }, timeout => 20),
  'the health checks know both primaries';

# ------------------------------------------------------------------ refused before a move exists

refused('MOVE DATABASE movr CUTOVER', '55000', qr/database "movr" is not being moved.*TO REGION/s, 'CUTOVER without a move');
refused('MOVE DATABASE movr FINISH', '55000', qr/database "movr" is not being moved/, 'FINISH without a move');

# ------------------------------------------------------------------ the copy

my ($rc, $out, $err) = run_cmd([require_tool('pgbench'), '-i', '-q', '-s', '1', $app_ci], timeout => 120);
is $rc, 0, 'pgbench -i through pgnear' or diag $err;
$us->psql_admin('ALTER TABLE pgbench_history REPLICA IDENTITY FULL', dbname => 'movr');
my (undef, $merr) = admin('MOVE DATABASE movr TO REGION eu-west');
ok wait_until(sub { move_state() eq 'streaming' }, timeout => 120), 'SHOW MOVES: streaming';
refused('MOVE DATABASE movr REVERT', '55000', qr/cannot be reverted now.*HINT:\s+CUTOVER moves it/s,
        'REVERT before a cutover');
refused('MOVE DATABASE movr FINISH', '55000', qr/cannot be finished now/, 'FINISH before a cutover');
is lands_on(), $us->port, 'a new session lands in us-east';

# A login role with a session on us-east now, whose secret differs in eu-west (the same password,
# another salt): the cutover would end its sessions, so it is refused first, naming the role.
$_->psql_admin(q{CREATE ROLE late LOGIN PASSWORD 'same'}) for $us, $eu;
{
    my $late = IPC::Run::start([require_tool('psql'), '-X', '-q', '-h', $us->socket_dir, '-p', $us->port,
                                '-U', 'late', '-d', 'movr', '-c', 'SELECT pg_sleep(60)'], '>', \my $lo, '2>', \my $le);
    ok wait_until(sub { $us->psql_admin(q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'late'}) eq '1' },
                  timeout => 10), 'a session of role late on us-east';
    my $secret = $us->scram_verifier('late');
    refused('MOVE DATABASE movr CUTOVER', '55000',
            qr/another SCRAM secret in region "eu-west".*: late\..*HINT:.*ALTER ROLE late PASSWORD '\Q$secret\E';/s,
            'CUTOVER with a session whose role has another secret in eu-west');
    is move_state(), 'streaming', '... and the move still streams';
    $eu->psql_admin("ALTER ROLE late PASSWORD '$secret'");
    $us->psql_admin(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'late'});
    $late->finish;
}

# ------------------------------------------------------------------ the load

# The MovR-like writer: a new ride from the sequence, its vehicle's count.
write_file("$dir/ride.sql", <<'SQL');
\set rider random(1, 1000)
\set vehicle random(1, 100)
BEGIN;
INSERT INTO rides (rider, vehicle, city, revenue) VALUES (:rider, :vehicle, 'dublin', :rider % 50);
UPDATE vehicles SET rides = rides + 1 WHERE id = :vehicle;
COMMIT;
SQL
# The load runs until it is ended, not for a set time: a set time had to
# cover the slowest machine's command and was idle load elsewhere.  -T is
# only the bound; SIGALRM ends pgbench's run as -T does (its report and
# exit status as usual), once the writes are seen going on after the
# command.  A pgbench that took SIGALRM otherwise would die without its
# report, and load_ok would fail: nothing passes unseen.
my $LOAD_BOUND = 300;
sub load {
    my @h;
    push @h, IPC::Run::start([require_tool('pgbench'), '-n', '-M', 'prepared', '-c', '4', '-j', '2',
                              '-T', $LOAD_BOUND, $app_ci], '>', \my $o1, '2>', \my $e1);
    push @h, IPC::Run::start([require_tool('pgbench'), '-n', '-c', '2', '-T', $LOAD_BOUND,
                              '-f', "$dir/ride.sql", $app_ci], '>', \my $o2, '2>', \my $e2);
    return sub {
        my $running = grep { $_->pumpable } @h;
        ok $running == 2, 'the load still ran when it was ended';
        $_->signal('ALRM') for grep { $_->pumpable } @h;
        $_->finish for @h;
        return (parse_pgbench($o1 . $e1), parse_pgbench($o2 . $e2), $o1 . $e1 . $o2 . $e2);
    };
}

# Bounded wait (60 s) until both writers commit in $c (the region taking
# movr's writes): new rides there, and new pgbench_history rows.  One psql
# polling in the server: each statement of the loop reads a new snapshot.
sub writes_go_on {
    my ($c) = @_;
    my $ci = PgNearTest::conninfo_string(host => $c->socket_dir, port => $c->port, user => 'postgres',
                                         dbname => 'movr');
    my ($rc, $out, $err) = psql($ci, <<'SQL', timeout => 90);
DO $$
DECLARE r0 bigint; h0 bigint;
BEGIN
    SELECT coalesce(max(id), 0), (SELECT count(*) FROM pgbench_history) INTO r0, h0 FROM rides;
    FOR i IN 1 .. 600 LOOP
        PERFORM pg_sleep(0.1);
        IF (SELECT max(id) FROM rides) > r0 AND (SELECT count(*) FROM pgbench_history) > h0 THEN
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'no new rides and pgbench_history rows in 60 s';
END $$
SQL
    diag $err if $rc != 0;
    return $rc == 0;
}

sub load_ok {
    my ($end, $name) = @_;
    my ($tpcb, $rides, $text) = $end->();
    is(($tpcb->{failed} // 0) + ($rides->{failed} // 0), 0,
       sprintf('%s: 0 failed transactions (pgbench -M prepared %d, rides %d)', $name,
               $tpcb->{processed} // 0, $rides->{processed} // 0)) or diag $text;
    ok(($tpcb->{processed} // 0) > 0 && ($rides->{processed} // 0) > 0, "$name: both did work")
      or diag $text;
    unlike $text, qr/duplicate key|read-only transaction|terminating connection/, "$name: no duplicate key, no read-only error"
      or diag $text;
}

# A client held through the cutover: its connection stays, its backend changes.
my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                    params => [application_name => 'held-client']);
ok $r->{ok}, 'a client logs in to movr';
sub one { my ($sql) = @_; my $q = $w->query($sql); $q->{error} ? "ERROR: $q->{error}{M}" : $q->{rows}[0][0] }
is one('SET application_name = \'held-client-set\''), undef, '... sets a setting';
my $pid0 = one('SELECT pg_backend_pid()');
is one('SELECT inet_server_port()'), $us->port, '... on us-east';
my $max_before = $us->psql_admin('SELECT max(id) FROM rides', dbname => 'movr');

# ------------------------------------------------------------------ CUTOVER

my $end = load();
ok writes_go_on($us), 'both writers commit in us-east before the cutover';
my ($moved, $cerr, $cnotices) = admin('MOVE DATABASE movr CUTOVER');
is $cerr, undef, 'MOVE DATABASE movr CUTOVER under load' or diag $cnotices;
like $cnotices, qr/holding the database's sessions.*refuse writes.*replay the last write.*moving the held sessions.*replication back/s,
  '... a NOTICE per step';
like $cnotices, qr/database "movr" lives in region "eu-west" now: \d+ sessions moved there, 0 ended; the sessions were held (\d+) ms/,
  '... saying where it lives, how many sessions moved and how long they were held';
like $cnotices, qr/REVERT moves it back; FINISH ends the move/, '... and the next commands';
my @not = grep { $_->{result} ne 'moved' } @$moved;
cmp_ok scalar(@$moved), '>=', 7, 'a row per held session (' . scalar(@$moved) . ')';
is scalar(@not), 0, 'every one moved' or diag explain \@not;
is move_state(), 'moved', 'SHOW MOVES: moved';
ok writes_go_on($eu), '... and both writers commit in eu-west after it';
load_ok($end, 'load through the cutover');

is one('SELECT inet_server_port()'), $eu->port, 'the held client is on eu-west now';
isnt one('SELECT pg_backend_pid()'), $pid0, '... its backend changed';
is one('SHOW application_name'), 'held-client-set', '... its setting came with it';
is lands_on(), $eu->port, 'a new session lands in eu-west';
my ($urc, undef, $uerr) = psql($us->conninfo(dbname => 'movr'), q{INSERT INTO users (city, name) VALUES ('boston', 'direct')});
like $uerr, qr/read-only transaction/, 'us-east refuses a write to movr made there directly';

# Writes in eu-west go on from the sequences past us-east's, and stream back.
my $max_eu = $eu->psql_admin('SELECT max(id) FROM rides', dbname => 'movr');
cmp_ok $max_eu, '>', $max_before, "rides written after the cutover take new ids ($max_before -> $max_eu)";
ok wait_until(sub { defined same_rides() }, timeout => 30),
  'rides: the same count, sum and last id on both sides (' . ($us->psql_admin($sum, dbname => 'movr')) . ')';
# pgbench's last commits may follow the last ride's: the replication back brings them after it.
my $history = q{SELECT count(*) FROM pgbench_history};
ok wait_until(sub { $us->psql_admin($history, dbname => 'movr') eq $eu->psql_admin($history, dbname => 'movr') },
              timeout => 30), 'pgbench_history too (' . $eu->psql_admin($history, dbname => 'movr') . ' rows)';

refused('MOVE DATABASE movr CUTOVER', '55000', qr/cannot be cut over now.*is moved.*HINT:\s+REVERT moves it back; FINISH/s,
        'a second CUTOVER');
refused('MOVE DATABASE movr ABORT', '55000', qr/cannot be aborted now.*HINT:.*REVERT/s, 'ABORT after the cutover');

# ------------------------------------------------------------------ REVERT

$end = load();
ok writes_go_on($eu), 'both writers commit in eu-west before the revert';
my ($back, $rerr, $rnotices) = admin('MOVE DATABASE movr REVERT');
is $rerr, undef, 'MOVE DATABASE movr REVERT under load' or diag $rnotices;
like $rnotices, qr/database "movr" lives in region "us-east" now: \d+ sessions moved there, 0 ended/, '... back in us-east';
like $rnotices, qr/CUTOVER moves it again/, '... naming the next command';
is scalar(grep { $_->{result} ne 'moved' } @$back), 0, 'every held session moved back';
is move_state(), 'streaming', 'SHOW MOVES: streaming again';
ok writes_go_on($us), '... and both writers commit in us-east after it';
load_ok($end, 'load through the revert');
is one('SELECT inet_server_port()'), $us->port, 'the held client is on us-east again';
is lands_on(), $us->port, 'a new session lands in us-east';
ok wait_until(sub { defined same_rides() }, timeout => 30), 'no write made in eu-west is lost: the same rides on both sides';
($urc, undef, $uerr) = psql($eu->conninfo(dbname => 'movr'), q{INSERT INTO users (city, name) VALUES ('paris', 'direct')});
like $uerr, qr/read-only transaction/, 'eu-west refuses a write made there directly';

# ------------------------------------------------------------------ cutovers under load

my $ROUNDS = $ENV{PGNEAR_CUTOVER_ROUNDS} // 4;
die "PGNEAR_CUTOVER_ROUNDS must be an even number above 0\n" unless $ROUNDS =~ /^\d+$/ && $ROUNDS > 0 && $ROUNDS % 2 == 0;
my @holds;
$end = load();    # each round: the command, its hold and load seen committing where movr lives then
ok writes_go_on($us), 'both writers commit in us-east before the rounds';
for my $k (1 .. $ROUNDS) {
    my $step = $k % 2 ? 'CUTOVER' : 'REVERT';
    my ($rows, $e, $n) = admin("MOVE DATABASE movr $step");
    is $e, undef, "cutover $k ($step)" or diag $n;
    push @holds, $1 if ($n // '') =~ /the sessions were held (\d+) ms/;
    is scalar(grep { $_->{result} ne 'moved' } @$rows), 0, "... every session moved";
    ok writes_go_on($k % 2 ? $eu : $us), '... and both writers commit in ' . ($k % 2 ? 'eu-west' : 'us-east');
}
load_ok($end, "load through $ROUNDS cutovers");
my @sorted = sort { $a <=> $b } @holds;
is scalar(@holds), $ROUNDS, "$ROUNDS hold times";
note sprintf 'cutover hold (ms): median %s, worst %s, all: %s', $sorted[($ROUNDS - 1) / 2] // '?', $sorted[-1] // '?',
    join(' ', @holds);
is move_state(), 'streaming', 'after an even number: streaming from us-east';
ok wait_until(sub { defined same_rides() }, timeout => 30), 'the same rides on both sides';

# ------------------------------------------------------------------ FINISH

(undef, $cerr) = admin('MOVE DATABASE movr CUTOVER');
is $cerr, undef, 'CUTOVER once more';
my ($f, $ferr, $fnotices) = admin('MOVE DATABASE movr FINISH');
is $ferr, undef, 'MOVE DATABASE movr FINISH';
like $fnotices, qr/is finished: the replication both ways is gone; the copy in region "us-east" is left refusing writes/,
  '... saying what is left';
is move_state(), 'finished', 'SHOW MOVES: finished';
for my $c ($us, $eu) {
    is $c->psql_admin(q{SELECT (SELECT count(*) FROM pg_subscription) || '/' || (SELECT count(*) FROM pg_publication)
                        || '/' || (SELECT count(*) FROM pg_replication_slots)}, dbname => 'movr'), '0/0/0',
      $c->name . ': no subscription, publication or slot left';
}
is lands_on(), $eu->port, 'movr lives in eu-west';
is one('SELECT count(*) > 0 FROM rides'), 't', 'the held client still works';
refused('MOVE DATABASE movr REVERT', '55000', qr/database "movr" is not being moved/, 'REVERT after FINISH');

# ------------------------------------------------------------------ a restart reads where movr lives

$w->terminate;
like $p->log_contents, qr/WARNING database "movr" lives in region eu-west since its move \(MOVE DATABASE, (moved|finished)\), but the configuration file says regions = us-east: the move's record wins/,
  'the file disagrees with the move: a WARNING says which wins and why';
$p->stop(signal => 'KILL');
$p->start;
is lands_on(), $eu->port, 'after kill -9 and a restart, a new session lands in eu-west (the record, not the file)';
like $p->log_contents, qr/database "movr" lives in region eu-west \(its move is finished\)/, '... and the log says why';
my $off = $p->log_size;
is psql($admin_ci, 'RELOAD'), 'RELOAD', 'RELOAD';
ok $p->wait_for_log(qr/WARNING database "movr" lives in region eu-west since its move/, offset => $off, timeout => 10),
  '... tells the disagreement again';
is lands_on(), $eu->port, '... and movr stays in eu-west';
{
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $p->config_path]);
    is $rc, 0, 'pgnear --check: the file is valid' or diag $err;
    like $err, qr/WARNING: database "movr" lives in region eu-west since its move \(MOVE DATABASE, finished\), but the configuration file says regions = us-east: the move's record wins.*write regions = eu-west/,
      '... and it tells the disagreement with the move, read from the regions';
}

done_testing;
