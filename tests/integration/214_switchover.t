# A switchover under write load: a primary in us-east, a streaming standby
# in eu-west made with pg_basebackup -R, and pgnear in front of both
# (health_check_interval = 1s, failover_wait = 15s).  Eight pgbench clients
# write through pgnear with pgnear.target_session_attrs=read-write, a new
# session per transaction (-C), in short rounds (-T 1) restarted as clients
# abort, each transaction logged (-l); in the middle the primary is stopped
# (pg_ctl stop -m fast) and, half a second later, the standby promoted.
# Then:
#   (a) no committed transaction is lost: per round and client, the new
#       primary holds at least as many rows as pgbench logged as committed
#       (and at most one more, only for a client that aborted mid-write);
#   (b) writes reach the new primary within 2 x health_check_interval of
#       the promotion's end (pg_is_in_recovery() = f on the standby), and
#       none succeeds while no primary is up;
#   (c) no write ever lands on a standby: no 25006 / "read-only
#       transaction" from pgbench, nor in the standby's server log, and
#       each row was written on a server while it was the primary;
#   (d) pgnear is still running, routes writers to eu-west, and its log
#       shows us-east down and eu-west "a primary now".
# The time from the stop to the first write after it is printed (diag) for
# the release note.  PGNEAR_TEST_WORKERS=2 runs it with two workers.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use PgNearTest;

require_tool($_) for qw(psql pgbench pg_ctl pg_basebackup);
require DBD::Pg;    # the promotion's end is watched over one connection (fails loudly if missing)

my $INTERVAL   = 1;     # health_check_interval, seconds: the spec's bound is 2 x this
my $CLIENTS    = 8;
my $MAX_ROUNDS = 30;    # the pgbench driver's bounds: rounds ...
my $MAX_DRIVE  = 45;    # ... and seconds
my $ROUND_TIMEOUT = 40; # one round: -T 1, plus a setup connection that may wait failover_wait

my $t_begin = time;

# ------------------------------------------------------------------ servers and pgnear

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin('CREATE TABLE switch_writes (round int NOT NULL, client_id int NOT NULL, '
              . 'written_on text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())',
                dbname => 'movr');
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
ok $eu->is_in_recovery, 'eu-west is a streaming standby of us-east';

my $p = PgNearTest::Proxy->new(
    regions  => [$us, $eu],
    settings => { auth => 'passthrough', server_tls => 'disable',
                  health_check_interval => "${INTERVAL}s", failover_wait => '15s' });
my ($us_port, $eu_port) = ($us->port, $eu->port);
ok $p->wait_for_log(qr/host 127\.0\.0\.1:$eu_port of region eu-west is up: it is a standby/, timeout => 20),
  'pgnear knows eu-west is a standby';

# A writer's conninfo: read-write, and a connect_timeout longer than failover_wait.
my $WRITER = $p->conninfo(options => '-c pgnear.target_session_attrs=read-write', connect_timeout => 30);
is scalar psql($WRITER, "SELECT current_setting('cluster_name') || '|' || pg_is_in_recovery()"),
  'us-east|false', 'a read-write session goes to us-east';

# ------------------------------------------------------------------ the pgbench driver

my $dir = PgNearTest::tmpdir(name => 'switchover', mode => 0755);
my $script = "$dir/insert.sql";
write_file($script, "INSERT INTO switch_writes (round, client_id, written_on) "
                  . "VALUES (:round, :client_id, current_setting('cluster_name'));\n");

# A child process runs pgbench rounds back to back until $dir/stop appears,
# for at most $MAX_ROUNDS rounds and $MAX_DRIVE seconds: r<N>.done says
# "exit-code start end", r<N>.out / .err hold its output, pgb-r<N>.* its
# per-transaction logs.
sub start_driver {
    my $parent = $$;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    return $pid if $pid;
    my $ok = eval {
        my $deadline = time + $MAX_DRIVE;
        for my $r (1 .. $MAX_ROUNDS) {
            last if -e "$dir/stop" || time > $deadline || getppid() != $parent;
            my $t0 = time;
            my ($rc, $out, $err) = pgbench(
                ['-n', '-C', '-c', $CLIENTS, '-j', $CLIENTS, '-T', 1, '-f', $script, '-D', "round=$r",
                 '-l', "--log-prefix=$dir/pgb-r$r"], $WRITER, timeout => $ROUND_TIMEOUT);
            my $t1 = time;
            write_file("$dir/r$r.out", $out);
            write_file("$dir/r$r.err", $err);
            write_file("$dir/r$r.tmp", sprintf("%d %.6f %.6f\n", $rc, $t0, $t1));
            rename "$dir/r$r.tmp", "$dir/r$r.done" or die "rename: $!";
        }
        1;
    };
    write_file("$dir/driver.error", $@) unless $ok;
    POSIX::_exit($ok ? 0 : 1);
}

# The rounds finished so far: [{round, rc, start, end}], in order.
sub rounds_done {
    my @r;
    for my $f (glob "$dir/r*.done") {
        my ($n) = $f =~ /r(\d+)\.done$/ or next;
        my ($rc, $t0, $t1) = split ' ', slurp_file($f);
        push @r, { round => $n, rc => $rc, start => $t0, end => $t1 };
    }
    return [sort { $a->{round} <=> $b->{round} } @r];
}

# Watches the standby directly, over its socket, for the promotion's end.
my $watch = dbi_connect(conninfo_string(host => $eu->socket_dir, port => $eu_port, user => 'postgres',
                                        dbname => 'postgres'), AutoInactiveDestroy => 1)
  or BAIL_OUT("cannot connect to eu-west directly: " . DBI->errstr);

my $driver = start_driver();
END { kill 'TERM', $driver if $driver && $$ == $PgNearTest::OWNER_PID && kill 0, $driver }

ok wait_until(sub { @{ rounds_done() } >= 2 }, timeout => 30, interval => 0.05),
  'two rounds of pgbench ran through pgnear before the switchover';
# Into the third round, at a moment that varies from run to run, so that runs
# see the promotion at different points of pgnear's health-check cycle.
my $into = 0.2 + rand(0.8);
note sprintf 'stopping us-east %.2f s after the second round', $into;
sleep $into;

# ------------------------------------------------------------------ the switchover

my $log_off = $p->log_size;

my $t_stop0 = time;
$us->stop(mode => 'fast');
my $t_stop1 = time;
ok !$us->is_running, 'us-east stopped (pg_ctl stop -m fast)';
sleep 0.5;

my $t_promote0 = time;
my $promoter = fork;
die "fork: $!" unless defined $promoter;
if ($promoter == 0) {
    my $ok = eval { $eu->promote; 1 };
    print STDERR "# promote: $@" unless $ok;
    POSIX::_exit($ok ? 0 : 1);
}
my $t_promoted;
wait_until(sub {
    my ($rec) = $watch->selectrow_array('SELECT pg_is_in_recovery()');
    return 0 unless defined $rec && !$rec;
    $t_promoted = time;
}, timeout => 60, interval => 0.005);
waitpid($promoter, 0);
is $? >> 8, 0, 'pg_ctl promote on eu-west succeeded';
ok defined $t_promoted, 'eu-west answers pg_is_in_recovery() = f';
$t_promoted //= time;
$watch->disconnect;

# Two whole rounds after the promotion, then the driver stops.
ok wait_until(sub { (grep { $_->{start} > $t_promoted } @{ rounds_done() }) >= 2 }, timeout => 40,
              interval => 0.05), 'two more rounds ran after the promotion';
write_file("$dir/stop", '');
my $driver_status;
ok wait_until(sub {
    return 0 unless waitpid($driver, POSIX::WNOHANG()) == $driver;
    $driver_status = $?;
    return 1;
}, 
              timeout => $ROUND_TIMEOUT + 5, interval => 0.05), 'the pgbench driver finished';
is $driver_status, 0, 'the driver ran without error'
  or diag -e "$dir/driver.error" ? slurp_file("$dir/driver.error") : 'no driver.error';
undef $driver;

# ------------------------------------------------------------------ what pgbench did

my @rounds = @{ rounds_done() };
my (%committed, %aborted, $failed_lines, @commit_times, @stderr_all, @miscounted, @timed_out);
for my $r (@rounds) {
    my $n = $r->{round};
    push @timed_out, $n if $r->{rc} == -1;
    my $err = slurp_file("$dir/r$n.err");
    push @stderr_all, $err;
    $aborted{"$n/$1"} = 1 while $err =~ /\bclient (\d+) (?:script \d+ )?aborted/g;
    my $lines = 0;
    for my $f (glob "$dir/pgb-r$n.*") {
        open my $fh, '<', $f or die "$f: $!";
        while (my $l = <$fh>) {
            my ($client, undef, $lat, undef, $sec, $usec) = split ' ', $l;
            $lines++;
            if (defined $usec && $lat =~ /^\d+$/) {
                $committed{"$n/$client"}++;
                push @commit_times, $sec + $usec / 1e6;
            } else {
                $failed_lines++;
            }
        }
    }
    my $processed = parse_pgbench(slurp_file("$dir/r$n.out"))->{processed};
    push @miscounted, "round $n: logged $lines, reported " . ($processed // 'nothing')
      if defined $processed ? $processed != $lines : $lines != 0;
    $r->{aborts} = () = $err =~ /\bclient \d+ (?:script \d+ )?aborted/g;
    $r->{committed} = $lines;
}
note sprintf 'round %2d: exit %d, %4d committed, %d aborted, %.2f-%.2f s', $_->{round}, $_->{rc},
  $_->{committed}, $_->{aborts}, $_->{start} - $t_stop0, $_->{end} - $t_stop0 for @rounds;

is_deeply \@timed_out, [], 'every pgbench round ended by itself (none killed: its logs are whole)';
is_deeply \@miscounted, [], "pgbench's per-transaction logs account for every transaction it reported";
is $failed_lines // 0, 0, 'no transaction logged as failed';
{
    my @before = grep { $_->{end} < $t_stop0 } @rounds;
    ok @before >= 2 && !grep({ $_->{rc} != 0 || $_->{committed} == 0 } @before),
      'the rounds before the stop wrote and exited 0'
      or diag explain \@before;
    my @after = grep { $_->{start} > $t_promoted } @rounds;
    ok @after >= 2 && !grep({ $_->{rc} != 0 || $_->{committed} == 0 } @after),
      'the rounds after the promotion wrote and exited 0: no client aborted'
      or diag explain \@after;
}

# ------------------------------------------------------------------ (c) never on a standby

my $all_err = join "\n", @stderr_all;
unlike $all_err, qr/25006|read-only transaction/, 'pgbench never got 25006 (read-only transaction)';
unlike $eu->log_contents, qr/read-only transaction/, "nor did eu-west's server log an attempt to write";

# ------------------------------------------------------------------ (a) nothing committed is lost

my %rows = map { my ($r, $c, $n) = split /\|/; ("$r/$c" => $n) } split /\n/,
  $eu->psql_admin('SELECT round, client_id, count(*) FROM switch_writes GROUP BY 1, 2', dbname => 'movr');
my (@lost, @extra);
my %keys = (%committed, %rows);
for my $k (sort keys %keys) {
    my ($c, $n) = ($committed{$k} // 0, $rows{$k} // 0);
    push @lost, "round/client $k: $c committed, $n rows" if $n < $c;
    push @extra, "round/client $k: $c committed, $n rows" if $n > $c + ($aborted{$k} ? 1 : 0);
}
my $total_committed = 0;
$total_committed += $_ for values %committed;
my $total_rows = 0;
$total_rows += $_ for values %rows;
cmp_ok $total_committed, '>', 0, "pgbench committed $total_committed transactions in " . @rounds . ' rounds';
is_deeply \@lost, [], "every committed transaction is on the new primary ($total_rows rows)"
  or diag explain \@lost;
is_deeply \@extra, [], '... and no row that pgbench did not send: one more at most, for a client that aborted'
  or diag explain \@extra;

my %where = map { my ($w, $n, $lo, $hi) = split /\|/; ($w => [$n, $lo, $hi]) } split /\n/,
  $eu->psql_admin('SELECT written_on, count(*), extract(epoch FROM min(at)), extract(epoch FROM max(at)) '
                . 'FROM switch_writes GROUP BY 1', dbname => 'movr');
is_deeply [sort keys %where], ['eu-west', 'us-east'], 'rows were written on us-east, then on eu-west';
ok $where{'us-east'} && $where{'us-east'}[2] <= $t_stop1 + 0.05,
  "us-east's rows were all written before it stopped";
ok $where{'eu-west'} && $where{'eu-west'}[1] >= $t_promote0 - 0.05,
  "eu-west's rows were all written after its promotion began";

# ------------------------------------------------------------------ (b) how soon

my @gap = grep { $_ > $t_stop1 && $_ < $t_promote0 } @commit_times;
is scalar @gap, 0, 'no write succeeded while no primary was up';
my ($t_first) = sort { $a <=> $b } grep { $_ > $t_stop1 } @commit_times;
ok defined $t_first, 'writes succeeded after the switchover';
$t_first //= 'inf';
my $after_promotion = $t_first - $t_promoted;
diag sprintf 'switchover: %.3f s from the primary stop to the first write after it '
           . '(stop took %.3f s, promotion ended %.3f s after the stop, first write %.3f s after that)',
  $t_first - $t_stop0, $t_stop1 - $t_stop0, $t_promoted - $t_stop0, $after_promotion;
cmp_ok $after_promotion, '<=', 2 * $INTERVAL,
  "writes reach the new primary within 2 x health_check_interval ($INTERVAL s) of the promotion";

# ------------------------------------------------------------------ (d) pgnear

ok $p->is_running, 'pgnear is still running';
my $since = substr($p->log_contents, $log_off);
like $since, qr/host 127\.0\.0\.1:$us_port of region us-east is down/, 'its log: us-east is down';
like $since, qr/host 127\.0\.0\.1:$eu_port of region eu-west is up: it is a primary now/,
  'its log: eu-west is a primary now';
like $since, qr/route: region eu-west now has a host that is read-write/,
  '... and sessions that waited for a primary (failover_wait) went on to it';
unlike $all_err, qr/08001|no server that is read-write is available/,
  'no pgbench session ran out of failover_wait';
is scalar psql($WRITER, "SELECT current_setting('cluster_name') || '|' || pg_is_in_recovery()"),
  'eu-west|false', 'a read-write session now goes to eu-west';

note sprintf 'wall time %.1f s', time - $t_begin;
done_testing;
