# A rolling restart of a fleet under load loses no transaction and no
# session.  Three pgnear instances (fixed ports, the same settings) in
# front of one PostgreSQL 15 cluster (us-east), behind HAProxy (the Debian
# package; TCP mode, balance roundrobin, TCP health checks, retries 0 so
# that a refused connection reaches the client unhidden).
#   - load through HAProxy for the whole restart: pgbench -c 16 -j 4 with
#     persistent sessions (no -C), each transaction BEGIN; INSERT a row
#     tagged :client_id; SELECT; END, 200 ms apart per client, until the
#     test says stop (a row that each transaction reads: pgbench's own -T
#     would end it on a clock that a slow machine's restart outlasts; once
#     told, each client runs what is left of its -t without pausing), and
#     beside it back-to-back rounds of
#     pgbench -C -c 4 -T 1 (a new connection per transaction), each round
#     tagging its rows with its number; per-transaction logs (-l) count
#     what committed;
#   - one instance at a time: a second pgnear with the same configuration
#     file and port (PgNearTest::Proxy->new(port => N), which waits until
#     the new process itself holds a listening socket on N) starts beside
#     the old one (SO_REUSEPORT), logs that it listens, holds the metrics
#     port too, and takes logins from HAProxy while the old one still
#     listens; then SIGUSR2 to the old one, which logs it and stops
#     listening.  The SIGUSR2 comes while connections wait in the old
#     one's queue (it is stopped with SIGSTOP while 32 connections
#     are opened to the port, signalled, continued): every one of them
#     logs in and answers, some served by the old one.  A connection to
#     the port then works (the new one serves it) and the next instance
#     follows.  The old processes keep running while pgbench's sessions
#     last (they still hold them), well past their shutdown_timeout (5 s),
#     and each exits by itself, status 0, once its last pgbench session has ended;
#   - no failed transaction and no aborted client, in the persistent run
#     and in every -C round; committed transactions (the logs) equal the
#     rows in the table, per client and per round; every persistent client
#     committed transactions after the last SIGUSR2 (its session, on an old
#     process, went on working); HAProxy saw no connection fail and no
#     server DOWN;
#   - the new processes answer over TCP, through HAProxy, over the Unix
#     socket (whose file the old process, on exit, left to the new one)
#     and on /metrics;
#   - shutdown_timeout = 2s, two more pgnear each with a successor started
#     beside it: the SIGTERM'd one closes a session that outlives it
#     (57P01) after the timeout; the SIGUSR2'd one does not: its session
#     still works 3 s past the timeout, then ends cleanly and pgnear exits;
#     the successors serve the ports meanwhile.
# Run time about 30 s, with or without PGNEAR_TEST_WORKERS and under the
# sanitizer build.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use List::Util qw(sum max min);
use POSIX ();
use Time::Local qw(timegm);
use Time::HiRes qw(time sleep);
use PgNearTest;
use PgNearRolling qw(spawn reap wait_pid tcp_sockets pgbench_log);
use PgNearHAProxy;

$SIG{PIPE} = 'IGNORE';

my $T0 = time;
my $PGBENCH = require_tool('pgbench');    # each dies loudly when missing
require_tool('psql');
require_tool('haproxy');
die "222_rolling_restart: /proc/net/tcp is not readable; the test counts sockets with it\n"
  unless -r '/proc/net/tcp';

my $A_CLIENTS   = 16;
my $A_PAUSE_MS  = 200;   # the persistent run's pause between a client's transactions, until told to stop
my $A_COUNT     = 600;   # its transactions per client (-t): 120 s of them at that pace, far longer than the test needs
my $C_MAX_ROUNDS = 30;   # -C rounds: at most this many, and none after 60 s
my $QUEUED      = 32;    # connections opened to a port while its old pgnear is stopped, at each SIGUSR2
my @NAMES = qw(p1 p2 p3);

my $dir     = tmpdir(name => 'rolling', mode => 0755);
my $sockdir = tmpdir(name => 'sock', mode => 0755);

# ------------------------------------------------------------------ the cluster

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin([
    'CREATE TABLE rolling_a (id bigserial PRIMARY KEY, client int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())',
    'CREATE INDEX ON rolling_a (client)',
    'CREATE TABLE rolling_c (id bigserial PRIMARY KEY, round int NOT NULL, client int NOT NULL)',
    'CREATE TABLE rolling_stop (stop int NOT NULL)',
    'INSERT INTO rolling_stop VALUES (0)',
    'CREATE INDEX ON rolling_c (round)',
    'GRANT ALL ON rolling_a, rolling_c, rolling_stop TO app',
    'GRANT ALL ON SEQUENCE rolling_a_id_seq, rolling_c_id_seq TO app',
], dbname => 'movr');

# ------------------------------------------------------------------ the fleet

my @ports  = map { free_port(ipv6 => 1) } 0 .. 2;
my @mports = map { free_port() } 0 .. 2;
# One Unix socket directory for old and new: the new pgnear binds the same
# path anew, and the old one must not remove it on exit.
# shutdown_timeout: shorter than pgbench's sessions outlive the SIGUSR2,
# which must not cut them.
my $FLEET_SHUTDOWN_TIMEOUT = 5;
my %COMMON = (auth => 'passthrough', server_tls => 'disable', unix_socket_dir => $sockdir,
              shutdown_timeout => "${FLEET_SHUTDOWN_TIMEOUT}s");

sub instance {
    my ($i) = @_;
    return PgNearTest::Proxy->new(port => $ports[$i], regions => [$us],
                                  settings => { %COMMON, metrics_addr => "127.0.0.1:$mports[$i]" });
}

my @old = map { instance($_) } 0 .. 2;
for my $i (0 .. 2) {
    ok $old[$i]->wait_for_log(qr/listening on 127\.0\.0\.1 port $ports[$i]\b/),
        "$NAMES[$i]: pgnear (pid " . $old[$i]->pid . ") listens on port $ports[$i]";
}

# The shutdown_timeout case: two more pgnear, not behind HAProxy, each
# replaced later by a new one on its port.
my %SHORT = (auth => 'passthrough', server_tls => 'disable', shutdown_timeout => '2s',
             unix_socket_dir => $sockdir);
my $p_term = PgNearTest::Proxy->new(regions => [$us], settings => {%SHORT});
my $p_usr2 = PgNearTest::Proxy->new(regions => [$us], settings => {%SHORT});

my $hap = PgNearHAProxy->new(servers => [map { [$NAMES[$_], $ports[$_]] } 0 .. 2], check => 'inter 1s');
ok $hap->wait_status({ map { $_ => 'UP' } @NAMES }, timeout => 15), 'HAProxy sees the three pgnear UP'
  or BAIL_OUT('HAProxy: ' . explain($hap->server_status) . "\n" . $hap->log_contents);

my $hconn = conninfo_string(host => '127.0.0.1', port => $hap->port, dbname => 'movr', user => 'app',
                            password => 'app-secret', sslmode => 'disable', connect_timeout => 10);
{
    my @seen = map { scalar psql($hconn, 'SELECT 1') } 1 .. 3;
    is "@seen", '1 1 1', 'three sessions through HAProxy work';
}

# ------------------------------------------------------------------ load

# :stopped starts at 0 (-D) and, like every pgbench variable, lasts from
# one of the client's transactions to the next.
write_file("$dir/a.sql", <<"EOF");
\\if :stopped
\\else
\\sleep $A_PAUSE_MS ms
\\endif
BEGIN;
INSERT INTO rolling_a (client) VALUES (:client_id);
SELECT count(*) FROM rolling_a WHERE client = :client_id;
SELECT stop AS stopped FROM rolling_stop \\gset
END;
EOF
write_file("$dir/c.sql", <<'EOF');
BEGIN;
INSERT INTO rolling_c (round, client) VALUES (:round, :client_id);
SELECT count(*) FROM rolling_c WHERE round = :round;
END;
EOF

my $t_a_start = time;
my $a_pid = spawn([$PGBENCH, '-n', '-c', $A_CLIENTS, '-j', 4, '-t', $A_COUNT, '-D', 'stopped=0', '-f', "$dir/a.sql",
                   '-l', "--log-prefix=$dir/a", $hconn],
                  out => "$dir/a.out", err => "$dir/a.err", cwd => $dir);

# pgbench opens its sessions first: all of them on the old processes.
my @held;
my $all_in = wait_until(sub {
    @held = map { tcp_sockets($old[$_]->pid, $ports[$_], 'established') } 0 .. 2;
    sum(@held) >= $A_CLIENTS;
}, timeout => 20, interval => 0.1);
ok $all_in, "pgbench's $A_CLIENTS sessions are open on the old processes (@held)"
  or diag(slurp_file("$dir/a.err"));
ok !grep({ $_ == 0 } @held), 'each old process holds some of them';
ok !defined reap($a_pid), 'pgbench (persistent) runs';

# -C rounds, back to back, in a child process until told to stop.
my $c_stop = "$dir/c.stop";
my $c_pid = fork;
die "fork: $!" unless defined $c_pid;
if ($c_pid == 0) {
    my $deadline = time + 60;
    for my $r (1 .. $C_MAX_ROUNDS) {
        last if -e $c_stop || time > $deadline;
        my $t1 = time;
        my $pid = spawn([$PGBENCH, '-n', '-C', '-c', 4, '-j', 2, '-T', 1, '-f', "$dir/c.sql",
                         '-D', "round=$r", '-l', "--log-prefix=$dir/c$r", $hconn],
                        out => "$dir/c$r.out", err => "$dir/c$r.err", cwd => $dir, register => 0);
        my $rc = wait_pid($pid, timeout => 20);
        unless (defined $rc) { kill 'KILL', $pid; wait_pid($pid, timeout => 5); $rc = -1 }
        write_file("$dir/c$r.result", sprintf("%d %.6f %.6f\n", $rc, $t1, time));
    }
    POSIX::_exit(0);
}
PgNearRolling::register($c_pid);
END { kill 'KILL', $c_pid if $c_pid && $$ == $PgNearTest::OWNER_PID && !defined reap($c_pid) }
sleep 1;    # the -C rounds are under way before the first restart

# ------------------------------------------------------------------ the rolling restart

my (@new, @sig_at, @new_at);
my $t_restart_begin = time;
for my $i (0 .. 2) {
    my ($old, $port, $name) = ($old[$i], $ports[$i], $NAMES[$i]);
    my $old_pid = $old->pid;
    my $sock = "$sockdir/.s.PGSQL.$port";
    $new_at[$i] = time;
    my $new = instance($i);    # waits until the new process holds a listening socket on $port
    $new[$i] = $new;
    my $new_pid = $new->pid;
    ok $new->wait_for_log(qr/listening on 127\.0\.0\.1 port $port\b/),
        "$name: the new pgnear (pid $new_pid) logs that it listens on port $port";
    is $new->config_text, $old->config_text, "$name: with the old one's configuration, word for word";
    ok tcp_sockets($old_pid, $port, 'listen') && tcp_sockets($new_pid, $port, 'listen'),
        "$name: old (pid $old_pid) and new (pid $new_pid) both listen on port $port";
    ok tcp_sockets($old_pid, $mports[$i], 'listen') && tcp_sockets($new_pid, $mports[$i], 'listen'),
        "$name: both listen on the metrics port $mports[$i]";
    ok $new->wait_for_log(qr/listening on Unix socket "\Q$sock\E"/) && -S $sock,
        "$name: the new one binds the Unix socket $sock anew";
    ok $new->wait_for_log(qr/login from 127\.0\.0\.1:\d+: user=app database=movr/, timeout => 10),
        "$name: the new one takes logins from HAProxy while the old one still listens";
    sleep 1;    # both take the -C rounds' connections for a while

    # SIGUSR2 while connections wait in the old one's queue: it is stopped
    # (SIGSTOP) for the moment it takes to open $QUEUED connections to the
    # port (the kernel completes them and spreads them over both processes'
    # sockets), gets SIGUSR2, and goes on (SIGCONT).  (libevent runs the
    # listener's callback, which accepts all that waits, before the
    # signal's: this checks that queued clients are served, not which path
    # serves them; the moment listener_take_backlog covers, between the
    # drain's start and the sockets' close, is too short to aim at.)
    my $off = $old->log_size;
    my @queued;
    kill 'STOP', $old_pid or die "kill STOP $old_pid: $!";
    my $stopped = time;
    for my $k (1 .. $QUEUED) {
        push @queued, eval { PgNearTest::Wire->connect(host => '127.0.0.1', port => $port, timeout => 10) }
                      // "connect: $@";
    }
    $sig_at[$i] = time;
    kill 'USR2', $old_pid or die "kill USR2 $old_pid: $!";
    kill 'CONT', $old_pid or die "kill CONT $old_pid: $!";
    note sprintf '%s: the old one was stopped for %.1f ms', $name, 1000 * (time - $stopped);
    ok $old->wait_for_log(qr/received SIGUSR2/, offset => $off), "$name: the old one logs the SIGUSR2";
    ok wait_until(sub { !tcp_sockets($old_pid, $port, 'listen') }, timeout => 10, interval => 0.02),
        "$name: the old one stops listening";
    my ($served, @lost) = (0);
    for my $k (0 .. $#queued) {
        my $w = $queued[$k];
        unless (ref $w) { push @lost, "connection $k: $w"; next }
        my $r = eval { $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                                   params => [application_name => "rolling-queued-$i-$k"]) };
        my $q = $r && $r->{ok} ? eval { $w->query('SELECT 1') } : undef;
        if ($q && !$q->{error} && ($q->{rows}[0][0] // '') eq '1') { $served++ }
        else {
            push @lost, "connection $k: " . ($@ ? $@ =~ s/\n+\z//r : $r && $r->{error} ? "$r->{error}{C} $r->{error}{M}"
                                                  : $q && $q->{error} ? "$q->{error}{C} $q->{error}{M}" : 'closed');
        }
        eval { $w->terminate };
    }
    is $served, $QUEUED, "$name: the $QUEUED connections opened around the SIGUSR2 all log in and answer"
      or diag join "\n", @lost;
    my $on_old = () = substr($old->log_contents, $off) =~ /application_name=rolling-queued-$i-\d+/g;
    cmp_ok $on_old, '>', 0, "$name: $on_old of them were the old one's, served after its SIGUSR2";

    # The new one serves: the only process still listening on the port.
    my $probe = "rolling-probe-$i";
    my ($rc, $out, $err) = psql($new->conninfo(application_name => $probe), 'SELECT 1');
    is "$rc $out", '0 1', "$name: a connection to port $port works" or diag $err;
    ok $new->wait_for_log(qr/login from \S+: user=app database=movr application_name=\Q$probe\E\b/, timeout => 5),
        "$name: the new one served it";
    ok $old->is_running, "$name: the old one still runs (its sessions last)";
    cmp_ok tcp_sockets($old_pid, $port, 'established'), '>', 0, "$name: and still holds pgbench's sessions";
    sleep 0.5;
}
my $t_restart_end = time;
note sprintf 'rolling restart of three instances took %.1f s', $t_restart_end - $t_restart_begin;
ok !defined reap($a_pid), 'pgbench (persistent) still runs after the last restart'
  or diag 'pgbench ended before the restart did: raise $A_COUNT';
for my $i (0 .. 2) {
    ok $old[$i]->is_running, "$NAMES[$i]: the old process still runs after the whole restart";
}

# ------------------------------------------------------------------ SIGTERM vs SIGUSR2 with shutdown_timeout = 2s

# (Meanwhile pgbench goes on: the old processes serve their sessions.)
sub login {
    my ($p) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 10);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    die 'login through pgnear failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n"
      unless $r->{ok};
    return $w;
}
sub one { my ($w) = @_; my $q = eval { $w->query('SELECT 1') }; return $q && !$q->{error} && !$q->{eof} ? $q->{rows}[0][0] : undef }

{
    my $wt = login($p_term);
    my $wu = login($p_usr2);
    # Each gets its successor beside it, as in the rolling restart.
    my ($r_term, $r_usr2) = map { PgNearTest::Proxy->new(port => $_->port, regions => [$us], settings => {%SHORT}) }
                            $p_term, $p_usr2;
    my ($off_t, $off_u) = ($p_term->log_size, $p_usr2->log_size);
    my $t0 = time;
    $p_term->signal('TERM');
    $p_usr2->signal('USR2');
    ok $p_term->wait_for_log(qr/received SIGTERM/, offset => $off_t), 'shutdown_timeout 2s: SIGTERM logged';
    ok $p_usr2->wait_for_log(qr/received SIGUSR2/, offset => $off_u), 'shutdown_timeout 2s: SIGUSR2 logged';
    sleep max(0, $t0 + 1 - time);
    is one($wt), 1, 'SIGTERM: 1 s in, the session still works';
    is one($wu), 1, 'SIGUSR2: 1 s in, the session still works';
    for my $pair ([$p_term, $r_term], [$p_usr2, $r_usr2]) {
        my ($p, $r) = @$pair;
        ok wait_until(sub { !tcp_sockets($p->pid, $p->port, 'listen') }, timeout => 5, interval => 0.02),
            'the signalled pgnear (pid ' . $p->pid . ') no longer listens on port ' . $p->port;
        my ($rc, $out, $err) = psql($r->conninfo, 'SELECT 1');
        is "$rc $out", '0 1', 'a new connection to port ' . $r->port . ' works: the successor (pid ' . $r->pid . ') serves it'
          or diag $err;
    }

    # SIGTERM: closed at shutdown_timeout.  When is read from pgnear's own log (the signal's line
    # and the timeout's): the test reads the session only after the checks above, which took
    # over 3 s on a loaded machine (CI), so the time of that read says nothing.
    $wt->{timeout} = 8;
    my @m = eval { $wt->read_msg };
    my $what = $@ ? "error: $@" : !@m ? 'eof' : $m[0] eq 'E' ? 'E ' . PgNearTest::Wire::parse_fields($m[1])->{C} : "message $m[0]";
    ok $what eq 'E 57P01' || $what eq 'eof', "SIGTERM: the session is closed ($what)";
    my $term_log = substr($p_term->log_contents, $off_t);
    my ($t_signal, $t_closed) = (logged_at($term_log, qr/received SIGTERM/),
                                 logged_at($term_log, qr/shutdown timeout reached; closing 1 remaining session/));
    my $closed_after = defined $t_signal && defined $t_closed ? $t_closed - $t_signal : -1;
    cmp_ok $closed_after, '>=', 1.9, sprintf('SIGTERM: not before shutdown_timeout (%.2f s, by its log)', $closed_after);
    cmp_ok $closed_after, '<', 4,   'SIGTERM: soon after it';
    my $st = $p_term->wait_for_exit(timeout => 10);
    ok defined $st, 'SIGTERM: pgnear exits (status ' . ($st // 'none') . ')';
    like substr($p_term->log_contents, $off_t), qr/shutdown timeout reached; closing 1 remaining sessions?\b.*57P01/s,
        'SIGTERM: its log says the timeout closed the session (57P01)';

    # SIGUSR2: not closed; still works 3 s past the timeout.
    sleep max(0, $t0 + 2 + 3 - time);
    ok $p_usr2->is_running, 'SIGUSR2: pgnear still runs 3 s past shutdown_timeout';
    is one($wu), 1, 'SIGUSR2: the session still works 3 s past shutdown_timeout';
    unlike substr($p_usr2->log_contents, $off_u), qr/shutdown timeout reached|57P01/,
        'SIGUSR2: its log has no timeout and no 57P01';
    $wu->terminate;
    my $t_end = time;
    my $su = $p_usr2->wait_for_exit(timeout => 10);
    is $su, 0, sprintf('SIGUSR2: once the session ended, pgnear exits with status 0 (%.2f s later)', time - $t_end);
    like $p_usr2->log_contents, qr/all sessions ended; shutting down/, 'SIGUSR2: it says all sessions ended';
    for my $r ($r_term, $r_usr2) {
        my ($rc, $out, $err) = psql(conninfo_string(host => $sockdir, port => $r->port, dbname => 'movr',
                                                    user => 'app', password => 'app-secret'), 'SELECT 1');
        is "$rc $out", '0 1', 'the successor on port ' . $r->port . ' answers over the Unix socket its predecessor left alone'
          or diag $err;
        $r->stop(signal => 'USR2', timeout => 10);
        is $r->exit_status, 0, 'the successor, with no session, exits on SIGUSR2 with status 0';
    }
}

# ------------------------------------------------------------------ the end of the load

write_file($c_stop, '');
my $c_done = wait_pid($c_pid, timeout => 30);
is $c_done, 0, 'the -C rounds stopped';

# pgbench ends; the old processes exit by themselves once its sessions have.
ok !defined reap($a_pid), 'pgbench (persistent) still runs when told to stop';
my $t_stop = time;
$us->psql_admin('UPDATE rolling_stop SET stop = 1', dbname => 'movr');
my ($a_rc, $t_a_end, %exit_at);
wait_until(sub {
    if (!defined $a_rc && defined($a_rc = reap($a_pid))) { $t_a_end = time }
    for my $i (0 .. 2) { $exit_at{$i} //= time unless $old[$i]->is_running }
    defined $a_rc && keys %exit_at == 3;
}, timeout => 60, interval => 0.02);
is $a_rc, 0, 'pgbench (persistent) exits 0';
$t_a_end //= time;
my $a_log = pgbench_log("$dir/a");
my $a_last = max(@{ $a_log->{ends} }) // 0;
my @lived;
for my $i (0 .. 2) {
    my $name = $NAMES[$i];
    ok defined $exit_at{$i}, "$name: the old process exited by itself once its sessions ended";
    is $old[$i]->exit_status, 0, "$name: with status 0";
    my $log = $old[$i]->log_contents;
    like $log, qr/received SIGUSR2: no new connections; waiting for sessions to end/, "$name: its log has the SIGUSR2 line";
    like $log, qr/all sessions ended; shutting down/, "$name: and says all sessions ended";
    if (defined $exit_at{$i}) {
        push @lived, $exit_at{$i} - $sig_at[$i];
        cmp_ok $lived[-1], '>', $FLEET_SHUTDOWN_TIMEOUT + 2,
            sprintf('%s: it lived %.1f s after SIGUSR2, well past shutdown_timeout (%d s)', $name, $lived[-1], $FLEET_SHUTDOWN_TIMEOUT);
        # Not before its sessions could end: pgbench's clients keep theirs
        # until told to stop.  (Not "after pgbench's last transaction": a
        # client of this instance may finish well before one of another.)
        cmp_ok $exit_at{$i}, '>', $t_stop,
            sprintf("%s: not before pgbench was told to stop (%+.2f s after; pgbench's last transaction %+.2f s)",
                    $name, $exit_at{$i} - $t_stop, $exit_at{$i} - $a_last);
        cmp_ok $exit_at{$i} - $t_a_end, '<', 10,
            sprintf('%s: soon after pgbench ended (%+.2f s)', $name, $exit_at{$i} - $t_a_end);
    }
}
note sprintf 'old processes lived after SIGUSR2: %s s', join(', ', map { sprintf '%.1f', $_ } @lived);

# ------------------------------------------------------------------ the persistent run

{
    my $out = slurp_file("$dir/a.out");
    my $err = slurp_file("$dir/a.err");
    my $r = parse_pgbench($out);
    my $log = $a_log;
    is $r->{failed}, 0, 'pgbench (persistent): no failed transaction';
    unlike $err, qr/aborted/, 'pgbench (persistent): no aborted client' or diag $err;
    cmp_ok $r->{processed} // 0, '>', 0, "pgbench (persistent): $r->{processed} transactions";
    is scalar @{ $log->{files} }, 4, 'pgbench (persistent): a log per thread';
    is $log->{committed}, $r->{processed}, 'its logs count as many committed transactions as it reports';
    is $log->{failed} + $log->{other}, 0, 'and no failed or unreadable line';
    my %rows = map { split /\|/ } split /\n/, $us->psql_admin('SELECT client, count(*) FROM rolling_a GROUP BY client', dbname => 'movr');
    is sum(values %rows) // 0, $log->{committed}, 'as many rows in the table as committed transactions';
    is_deeply \%rows, $log->{by_client}, 'per client too';
    is scalar(keys %{ $log->{by_client} }), $A_CLIENTS, "all $A_CLIENTS clients committed";
    # Every client's session was on an old process; each went on after the last SIGUSR2.
    my %late;
    for my $f (@{ $log->{files} }) {
        for my $l (split /\n/, slurp_file($f)) {
            my @f = split ' ', $l;
            $late{ $f[0] }++ if $f[2] =~ /^\d+$/ && $f[4] + $f[5] / 1e6 > $sig_at[2] + 0.1;
        }
    }
    is scalar(keys %late), $A_CLIENTS, 'every persistent session committed after the last SIGUSR2 (on its old process)';
    my $during = grep { $_ >= $t_restart_begin && $_ <= $t_restart_end } @{ $log->{ends} };
    note sprintf 'pgbench (persistent): %d transactions, %d of them during the restart (%.1f s), %.0f tps',
        $r->{processed}, $during, $t_restart_end - $t_restart_begin, $r->{tps} // 0;
    cmp_ok $during, '>', 0, "pgbench (persistent) committed $during transactions during the restart";
}

# ------------------------------------------------------------------ the -C rounds

# The epoch time of the first line of $log that matches $re, by its timestamp; undef if none.
sub logged_at {
    my ($log, $re) = @_;
    for my $l (split /\n/, $log) {
        next unless $l =~ $re;
        return log_line_time($l);
    }
    return undef;
}

sub log_line_time {
    my ($l) = @_;
    return undef unless $l =~ /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d(?:\.\d+)?) UTC /;
    return timegm(int($6), $5, $4, $3, $2 - 1, $1) + ($6 - int($6));
}

# Lines of every pgnear log (and HAProxy's unclean connections) between
# epoch times $from and $to that tell of a closed, refused or failed
# connection: what to look at when a round failed.
sub moment_lines {
    my ($from, $to) = @_;
    my @out;
    for my $p (grep { defined } @old, @new) {
        for my $l (split /\n/, $p->log_contents) {
            my $t = log_line_time($l);
            next unless defined $t && $t >= $from && $t <= $to;
            push @out, 'pid ' . ($p->pid // 'exited') . ": $l"
              if $l =~ /closing connection|ERROR|FATAL|WARNING|accept|reset|refus|SIGUSR2/;
        }
    }
    push @out, map { "haproxy: $_->{line}" } grep { $_->{state} ne '--' } @{ $hap->log_records };
    @out = @out[0 .. 59] if @out > 60;
    return join("\n", @out) . "\n";
}


{
    my (@rounds, $failures, $c_during);
    my %rows = map { split /\|/ } split /\n/, $us->psql_admin('SELECT round, count(*) FROM rolling_c GROUP BY round', dbname => 'movr');
    for my $r (1 .. $C_MAX_ROUNDS) {
        last unless -e "$dir/c$r.result";
        my ($rc, $t1, $t2) = split ' ', slurp_file("$dir/c$r.result");
        my $out = slurp_file("$dir/c$r.out");
        my $err = slurp_file("$dir/c$r.err");
        my $p = parse_pgbench($out);
        my $log = pgbench_log("$dir/c$r");
        my $aborted = () = $err =~ /client \d+ aborted/g;
        my $failed = ($p->{failed} // 0) + $aborted + $log->{failed};
        my @switches = grep { $sig_at[$_] >= $t1 && $sig_at[$_] <= $t2 } 0 .. 2;
        my $starts   = grep { $new_at[$_] >= $t1 && $new_at[$_] <= $t2 } 0 .. 2;
        push @rounds, { r => $r, rc => $rc, t1 => $t1, t2 => $t2, failed => $failed, committed => $log->{committed},
                        rows => $rows{$r} // 0, switches => \@switches, starts => $starts, err => $err };
        $failures += $failed;
        $c_during += grep { $_ >= $t_restart_begin && $_ <= $t_restart_end } @{ $log->{ends} };
    }
    cmp_ok scalar @rounds, '>=', 3, scalar(@rounds) . ' rounds of pgbench -C ran';
    for my $x (@rounds) {
        my $tag = "-C round $x->{r}" . (@{ $x->{switches} } ? ' (SIGUSR2 to ' . join(',', map { $NAMES[$_] } @{ $x->{switches} }) . ' during it)' : '')
                . ($x->{starts} ? " ($x->{starts} new pgnear started during it)" : '');
        note "$tag: $x->{committed} committed, $x->{failed} failed";
        ok $x->{rc} == 0 && $x->{failed} == 0, "$tag: no failure, pgbench exits 0"
          or diag "exit $x->{rc}, $x->{failed} failures:\n$x->{err}\n"
                . "pgnear's and HAProxy's log lines of the moment:\n" . moment_lines($x->{t1} - 0.5, $x->{t2} + 0.5);
        is $x->{rows}, $x->{committed}, "$tag: its rows equal its committed transactions ($x->{committed})";
    }
    my $covered = grep { my $s = $_; grep { grep { $_ == $s } @{ $_->{switches} } } @rounds } 0 .. 2;
    note "SIGUSR2s that fell inside a -C round: $covered of 3";
    note sprintf '-C rounds: %d committed during the restart, %d failures in all', $c_during // 0, $failures // 0;
}

# ------------------------------------------------------------------ HAProxy

{
    my $recs = $hap->log_records;
    my $t = $hap->terminations;
    note 'HAProxy termination states: ' . join(', ', map { "$_ $t->{$_}" } sort keys %$t);
    cmp_ok scalar @$recs, '>', 100, scalar(@$recs) . ' connections in HAProxy\'s log';
    my @bad = grep { $_->{state} =~ /^S/ || $_->{tc} < 0 } @$recs;
    is scalar @bad, 0, 'HAProxy: no connection to a pgnear failed or was cut by it'
      or diag join "\n", map { $_->{line} } @bad[0 .. min($#bad, 20)];
    unlike $hap->log_contents, qr/is DOWN/, 'HAProxy never saw a pgnear DOWN';
    my $s = $hap->server_stats;
    is join(' ', map { $s->{$_}{status} } @NAMES), 'UP UP UP', 'HAProxy: all three UP at the end';
    note 'HAProxy failed health checks: ' . join(', ', map { "$_ $s->{$_}{chkfail}" } @NAMES);
}

# ------------------------------------------------------------------ the new processes answer

for my $i (0 .. 2) {
    my ($new, $port, $name) = ($new[$i], $ports[$i], $NAMES[$i]);
    ok $new->is_running, "$name: the new pgnear runs";
    my ($rc, $out, $err) = psql($new->conninfo, 'SELECT 1');
    is "$rc $out", '0 1', "$name: answers over TCP" or diag $err;
    ok -S "$sockdir/.s.PGSQL.$port", "$name: the Unix socket file is still there after the old process exited";
    ok !-e "$sockdir/.s.PGNEAR.$port.draining", "$name: and the old one's cancel socket (.draining) went with it";
    ($rc, $out, $err) = psql(conninfo_string(host => $sockdir, port => $port, dbname => 'movr', user => 'app',
                                             password => 'app-secret'), 'SELECT 1');
    is "$rc $out", '0 1', "$name: answers over the Unix socket" or diag $err;
    my ($status, $body) = http_get($mports[$i], '/metrics');
    is $status, 200, "$name: serves /metrics";
    like $body // '', qr/^pgnear_/m, "$name: with pgnear's series";
}
{
    my @r = map { scalar psql($hconn, 'SELECT 1') } 1 .. 6;
    is "@r", '1 1 1 1 1 1', 'six sessions through HAProxy work after the restart';
}
for my $i (0 .. 2) {
    unlike $new[$i]->log_contents, qr/ UTC (?:ERROR|FATAL) /, "$NAMES[$i]: no ERROR in the new pgnear's log";
}

$hap->stop;
note sprintf 'run time %.1f s', time - $T0;
done_testing;
