# pgnear in front of a real pg_auto_failover formation (a monitor, a
# primary and its synchronous standby, run by pg_autoctl): while pgbench
# writes through pgnear with target_session_attrs=read-write, the monitor
# fails the primary over (pg_autoctl perform failover).  No transaction
# pgbench saw committed is lost; the writes reach the new primary within
# two health-check intervals of it taking writes; none ever reaches a
# standby (no 25006); afterwards read-write sessions land on the new
# primary and read-only ones on the old primary once it follows it; pgnear
# lives on and its log tells the role change.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time);
use POSIX ();
use PgNearTest;
use PgNearAutoFailover;

require_tool('psql');
require_tool('pgbench');

my $T0 = time;
my $INTERVAL = 1;          # pgnear's health_check_interval, in seconds
my $FAILOVER_WAIT = 15;    # pgnear's failover_wait, in seconds

# ------------------------------------------------------------------ the formation

# The monitor checks the nodes every 500 ms instead of 5 s: a new standby
# is declared secondary after its first good check, so this saves seconds.
my $f = PgNearAutoFailover->new(monitor_settings => { 'pgautofailover.health_check_period' => '500ms' });
my $n1 = $f->add_node(name => 'node1');
# pgnear's users and the table the writers fill, on the first node while it
# is alone; the standby gets them with its base backup.
# (the clients' user and database, and pgnear's health-check user, as
# PgNearTest::Proxy configures them)
my ($APP, $APP_PW, $DB) = ($PgNearTest::APP_USER, $PgNearTest::APP_PASSWORD, $PgNearTest::APP_DB);
my ($PGNEAR, $PGNEAR_PW) = ($PgNearTest::PGNEAR_USER, $PgNearTest::PGNEAR_PASSWORD);
$f->psql($n1, ["SET password_encryption = 'scram-sha-256'; "
                 . "CREATE ROLE $APP LOGIN SUPERUSER PASSWORD '$APP_PW'; "
                 . "CREATE ROLE $PGNEAR LOGIN SUPERUSER PASSWORD '$PGNEAR_PW'",
               "CREATE DATABASE $DB OWNER $APP"]);
$f->psql($n1, 'CREATE TABLE writes (id bigserial PRIMARY KEY, round int NOT NULL, client int NOT NULL, '
            . 'port int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())', dbname => $DB);
# pg_autoctl's pg_basebackup asks for a spread checkpoint: one now leaves it nothing to write.
$f->psql($n1, 'CHECKPOINT');
my $n2 = $f->add_node(name => 'node2');
my $roles = $f->wait_roles(timeout => 30);
$f->register_services;
is $roles->{primary}{name}, 'node1', 'pg_auto_failover: node1 is the primary, node2 its secondary';
like $f->psql($n1, 'SHOW synchronous_standby_names'), qr/pgautofailover_standby_2/,
  '... with synchronous replication to node2';
my ($old, $new) = ($n1, $n2);
note sprintf 'formation ready after %.1f s', time - $T0;

# ------------------------------------------------------------------ pgnear

# One region with both nodes as its hosts: a pg_auto_failover formation is
# a highly available pair in one place (synchronous replication wants the
# nodes close), so the operator names one region, and pgnear picks the
# host whose role fits each session; two regions would claim two places
# for what is one database there.
my $p = PgNearTest::Proxy->new(
    regions  => [{ name => 'us-east', location => '39.04, -77.49',
                   hosts => ["127.0.0.1:$n1->{port}", "127.0.0.1:$n2->{port}"] }],
    settings => { auth => 'passthrough', server_tls => 'disable', health_check_interval => "${INTERVAL}s",
                  health_check_timeout => '2s', failover_wait => "${FAILOVER_WAIT}s" });
ok $p->wait_for_log(qr/host 127\.0\.0\.1:$n2->{port} of region us-east is up: it is a standby/, timeout => 15),
  'pgnear: its health check sees node2 as a standby';

# Where a session lands: "port|in recovery", or the error.
sub lands {
    my ($need) = @_;
    my ($rc, $out, $err) = psql($p->conninfo(options => "-c pgnear.target_session_attrs=$need"),
                                'SELECT inet_server_port() || \'|\' || pg_is_in_recovery()', verbose => 1,
                                timeout => $FAILOVER_WAIT + 10);
    return $rc == 0 ? $out : "error: $err";
}
is lands('read-write'), "$old->{port}|false", 'a read-write session lands on the primary, node1';
is lands('read-only'), "$new->{port}|true", 'a read-only session on the standby, node2';

# ------------------------------------------------------------------ writers

# pgbench -c 8 in rounds of a second, each client a new connection per
# transaction (-C), one thread per client (a client that waits in pgnear for
# a primary holds up no other), the transactions of each logged (-l): a
# client whose server goes away aborts, and the next round starts it again.
my $wdir = tmpdir(name => 'writers');
my $script = write_file("$wdir/insert.sql",
    "INSERT INTO writes (round, client, port) VALUES (:round, :client_id, inet_server_port());\n");
my $stop = "$wdir/stop";
my $writer_ci = $p->conninfo(options => '-c pgnear.target_session_attrs=read-write');
my $MAX_ROUNDS = 60;
my $parent = $$;
my $writer = fork // die "fork: $!";
if ($writer == 0) {
    my $t_end = time + 90;
    eval {
        for my $round (1 .. $MAX_ROUNDS) {
            last if -e $stop || getppid() != $parent || time > $t_end;
            my $t = time;
            my ($rc, $out, $err) = pgbench(['-n', '-C', '-c', 8, '-j', 8, '-T', 1, '-f', $script,
                                            '-D', "round=$round", '-l', "--log-prefix=$wdir/r$round"],
                                           $writer_ci, timeout => 40);
            # .out and .err first: a round counts as done once its .result is there
            write_file("$wdir/r$round.out", $out);
            write_file("$wdir/r$round.err", $err);
            write_file("$wdir/r$round.result", sprintf("%d %.3f %.3f\n", $rc, $t, time));
        }
        1;
    } or print STDERR "# writers: $@";
    POSIX::_exit(0);
}
sub rounds_done { my @r = glob("$wdir/r*.result"); scalar @r }
sub stop_writers {
    return unless $writer;
    write_file($stop, '');
    my $ok = wait_until(sub { waitpid($writer, POSIX::WNOHANG()) == $writer }, timeout => 45, interval => 0.1);
    unless ($ok) { kill 'KILL', $writer; waitpid($writer, 0) }
    undef $writer;
    return $ok;
}
END { stop_writers() if $$ == $parent }

ok wait_until(sub { rounds_done() >= 2 }, timeout => 20), 'pgbench writes through pgnear';

# ------------------------------------------------------------------ failover

my $off = $p->log_size;
my $keeper_off = length $f->log_contents($old);
my $t_failover = time;
my ($fo, $fo_out, $fo_err) = $f->autoctl_start('perform', 'failover', '--formation', 'default',
                                               '--group', 0, '--wait', 60);
# When node2 takes writes: promoted (pg_is_in_recovery() = f) and its
# sessions no longer read-only: pg_auto_failover promotes the standby with
# default_transaction_read_only = on and turns it off once the old primary
# is demoted (wait_primary), and pgnear, which reads both in its health
# checks, rightly sends no writer there meanwhile.  Each poll is a new
# connection, as a new session would see it.
my ($t_promoted, $t_writable);
wait_until(sub {
    my ($rc, $out) = $f->psql($new, "SELECT pg_is_in_recovery() || '|' || current_setting('default_transaction_read_only')");
    return 0 if $rc != 0;
    $t_promoted //= time if $out =~ /^false\|/;
    $t_writable = time if $out eq 'false|off';
    return $t_writable;
}, timeout => 60, interval => 0.02);
ok $t_writable, 'node2 takes writes' or die 'node2 never took writes: ' . $f->state_line . "\n";
unless (eval { $fo->finish; 1 }) { diag "pg_autoctl perform failover: $@"; $fo->kill_kill }
is $fo->full_result(0), 0, 'pg_autoctl perform failover succeeds' or diag "$$fo_out$$fo_err";
my $t_done = time;
$roles = $f->wait_roles(timeout => 30, primary => $new);
my $t_settled = time;
is $roles->{secondary}[0]{name}, 'node1', 'the formation settles: node2 primary, node1 its secondary';
note sprintf 'failover command -> node2 promoted: %.2f s, -> node2 takes writes: %.2f s, '
           . '-> command done: %.2f s, -> formation settled: %.2f s',
             ($t_promoted // $t_writable) - $t_failover, $t_writable - $t_failover,
             $t_done - $t_failover, $t_settled - $t_failover;

# Two more full rounds after the formation settled, then the writers stop.
my $rounds_settled = rounds_done();
ok wait_until(sub { rounds_done() >= $rounds_settled + 2 }, timeout => 30), 'the writers go on';
ok stop_writers(), 'the writers stop';

# ------------------------------------------------------------------ what was written

my (%logged, @commits, $err_text, %rc);
for my $r (1 .. rounds_done()) {
    for my $log (glob("$wdir/r$r.*")) {
        next unless $log =~ m{/r$r\.\d+(?:\.\d+)?$};
        open my $fh, '<', $log or die "$log: $!";
        while (<$fh>) {
            # client_id transaction_no time script_no time_epoch time_us [...]
            my ($client, $tx, $us, $script_no, $epoch, $frac) = split;
            next unless defined $frac && $us =~ /^\d+$/;
            $logged{"$r/$client"}++;
            push @commits, $epoch + $frac / 1e6;
        }
    }
    $err_text .= slurp_file("$wdir/r$r.err");
    my ($rc) = split ' ', slurp_file("$wdir/r$r.result");
    $rc{$rc}++;
}
my $logged = 0;
$logged += $_ for values %logged;
cmp_ok $logged, '>', 0, 'pgbench logged committed transactions';
note sprintf '%d rounds (exit status: %s), %d transactions committed', rounds_done(),
             join(', ', map { "$_ x$rc{$_}" } sort keys %rc), $logged;

my %rows = map { my ($k, $n) = split /\|/; ($k => $n) }
           split /\n/, $f->psql($new, "SELECT round || '/' || client || '|' || count(*) FROM writes GROUP BY round, client",
                                 dbname => $DB);
my @lost = grep { ($rows{$_} // 0) < $logged{$_} } sort keys %logged;
my $lost_text = join "\n", map { "round/client $_: logged $logged{$_}, rows " . ($rows{$_} // 0) } @lost;
# This check stands on synchronous replication (check 2): node1 acknowledges
# a commit only once node2 has it.  pg_auto_failover turns it off on a
# primary whose standby it finds unhealthy (wait_primary), which releases
# the commits waiting there: one node1 acknowledged after that, pgbench saw
# committed, and node2 never had, was lost by the formation before pgnear
# could do anything.  Only then is a loss not pgnear's to answer for; the
# evidence is node1's keeper saying it turned it off after the command.
my ($sync_off) = grep { /Disabling synchronous replication/ }
                 split /\n/, substr($f->log_contents($old), $keeper_off);
SKIP: {
    if (@lost && $sync_off) {
        diag "$lost_text\nnode1's keeper turned synchronous replication off during the failover: "
           . "$sync_off\n" . $f->failover_story;
        skip 'commits lost after pg_auto_failover turned synchronous replication off on node1 '
           . '(the formation\'s loss, not pgnear\'s; see the diagnostics)', 1;
    }
    is_deeply \@lost, [], 'no committed transaction lost: node2 has, per round and client, '
                        . 'at least the rows pgbench saw committed'
      or diag $lost_text, "\n", $f->failover_story;
}

my ($before, $after) = split /\|/, $f->psql($new,
    "SELECT count(*) FILTER (WHERE port = $old->{port}) || '|' || count(*) FILTER (WHERE port = $new->{port}) "
  . 'FROM writes', dbname => $DB);
cmp_ok $before, '>', 0, 'writes went to node1 before the failover';
cmp_ok $after, '>', 0, '... and to node2 after it';

my $first_new = $f->psql($new, "SELECT extract(epoch FROM min(at)) FROM writes WHERE port = $new->{port}",
                         dbname => $DB);
note sprintf 'failover command -> first write on node2: %.2f s (%.2f s after node2 took writes)',
             $first_new - $t_failover, $first_new - $t_writable;
cmp_ok $first_new - $t_writable, '<=', 2 * $INTERVAL,
  'the writes reach node2 within 2 x health_check_interval of it taking writes';
{
    my @c = sort { $a <=> $b } grep { $_ >= $t_failover - 1 } @commits;
    my ($gap, $at) = (0, $t_failover);
    for my $i (1 .. $#c) { ($gap, $at) = ($c[$i] - $c[$i - 1], $c[$i - 1]) if $c[$i] - $c[$i - 1] > $gap }
    note sprintf 'longest time without a commit: %.2f s, from %.2f s after the failover command', $gap, $at - $t_failover;
}

unlike $err_text, qr/read-only transaction|25006/, 'no write reached a standby (no 25006 in pgbench\'s errors)';
my @aborts = $err_text =~ /client \d+ (?:script \d+ )?aborted[^\n]*/g;
note scalar(@aborts) . " client aborts; first: " . ($aborts[0] // 'none');

# ------------------------------------------------------------------ after

is lands('read-write'), "$new->{port}|false", 'a read-write session now lands on node2';
my $ro;
ok wait_until(sub { ($ro = lands('read-only')) eq "$old->{port}|true" }, timeout => 15),
  'a read-only session on node1, following node2' or diag $ro;
ok $p->wait_for_log(qr/host 127\.0\.0\.1:$new->{port} of region us-east is up: it is a primary now/, offset => $off),
  'pgnear\'s log: node2 is a primary now';
ok $p->wait_for_log(qr/host 127\.0\.0\.1:$old->{port} of region us-east is up: it is a standby/, offset => $off),
  '... and node1 a standby';
ok $p->is_running, 'pgnear runs';

$f->stop;
note sprintf 'wall time %.1f s', time - $T0;
done_testing;
