# A client gone inside a transaction under pool_mode = transaction (killed,
# its socket closed without a Terminate) keeps no one waiting and costs no
# reconnect: its server connection gets a cancel of what runs there, then a
# ROLLBACK, and goes back to the pool (server_rollback_timeout).  With
# pool_size = 1 and two workers: a client that held a row lock (psql killed
# with SIGKILL in a pg_sleep, a raw client whose socket closes while idle in
# its transaction, another while its query runs) — the next client takes
# the lock at once, on the same server process (pg_backend_pid()), and the
# dead client's write is not there.  A client that vanishes with half a
# message on the wire leaves a server waiting for the rest: that connection
# is closed, and nothing of the message ran.  With server_rollback_timeout =
# 0 the connection is closed, as before.  Plain and TLS to the server.  And
# the count of server logins (pg_stat_database.sessions) under a loop of
# clients killed inside a transaction: none with the rollback.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
my $psql = require_tool('psql');

my $ca = PgNearTest::CA->new;
my $us = PgNearTest::Cluster->new(name => 'us-east', ca => $ca);
my $auth_dir = tmpdir(name => 'vanish-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});
$us->psql_admin('CREATE TABLE vanish (id int PRIMARY KEY, n int); INSERT INTO vanish VALUES (1, 0);'
              . ' GRANT ALL ON vanish TO app', dbname => 'movr');

sub proxy {
    my (%o) = @_;
    return PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'scram', auth_file => $userlist, admin_users => 'admin',
                      server_tls => 'disable', server_tls_ca_file => $ca->cert, pool_mode => 'transaction',
                      pool_size => 1, workers => 2, query_wait_timeout => '20s', %o });
}

sub login {
    my ($p) = @_;
    return $p->wire_login(user => 'app', database => 'movr', password => 'app-secret');
}

sub one {
    my ($w, $sql) = @_;
    my $q = $w->query($sql);
    return $q->{error} ? "$q->{error}{C} $q->{error}{M}" : $q->{rows}[0][0];
}

sub value { $us->psql_admin('SELECT n FROM vanish WHERE id = 1', dbname => 'movr') }

# Server logins of user app so far (pg_stat_database counts every session begun).
sub sessions { $us->psql_admin(q{SELECT sessions FROM pg_stat_database WHERE datname = 'movr'}) }

sub stat_value {
    my ($p, $name) = @_;
    my ($row) = grep { $_->{stat} eq $name } $p->admin_rows('SHOW STATS');
    return $row ? $row->{value} : undef;
}

sub app_backends {
    $us->psql_admin(q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND datname = 'movr'});
}

# Whether a server process of app is gone (the connection closed) or idle outside a transaction.
sub backend_state {
    my ($pid) = @_;
    return $us->psql_admin("SELECT coalesce((SELECT state FROM pg_stat_activity WHERE pid = $pid), 'gone')");
}

# The next client: takes the row's lock (3 s at most: the dead client's would hold it 30 s),
# and says which server process it runs on and what it read.
sub next_client {
    my ($p) = @_;
    my $t0 = time;
    my $w = login($p);
    one($w, 'BEGIN');
    one($w, q{SET LOCAL lock_timeout = '3s'});
    my $n = one($w, 'UPDATE vanish SET n = n + 1 WHERE id = 1 RETURNING n');
    my $pid = one($w, 'SELECT pg_backend_pid()');
    one($w, 'ROLLBACK');
    $w->terminate;
    return { n => $n, pid => $pid, elapsed => time - $t0 };
}

# The same with psql (whose startup parameters differ: pgnear gives it a connection of psql's).
sub next_psql {
    my ($p) = @_;
    my $ci = "host=127.0.0.1 port=" . $p->port . " dbname=movr user=app password=app-secret sslmode=disable";
    my $t0 = time;
    my $out = PgNearTest::psql($ci, ['BEGIN', q{SET LOCAL lock_timeout = '3s'},
        'UPDATE vanish SET n = n + 1 WHERE id = 1 RETURNING n', 'SELECT pg_backend_pid()', 'ROLLBACK'], quiet => 1);
    my ($n, $pid) = split /\n/, $out;
    return { n => $n, pid => $pid, elapsed => time - $t0 };
}

# A raw client in a transaction with the row locked and written; its server process.
sub locker {
    my ($p) = @_;
    my $w = login($p);
    one($w, 'BEGIN');
    one($w, 'UPDATE vanish SET n = 1000 WHERE id = 1');
    return ($w, one($w, 'SELECT pg_backend_pid()'));
}

# The dead client's server process pid is kept: idle (rolled back, not closed), and the next
# clients take the lock at once, one of them on pid (each worker has its own connection: a
# client may land on either).  The last of those clients' results.
sub reused {
    my ($p, $pid, $t, $what, $next) = @_;
    $next //= \&next_client;
    ok wait_until(sub { backend_state($pid) eq 'idle' }, timeout => 10),
      "$t: $what: its server connection is rolled back, not closed";
    my ($r, $on_it);
    for (1 .. 12) {
        $r = $next->($p);
        last if $r->{n} ne '1' || $r->{elapsed} >= 5;
        $on_it = 1, last if $r->{pid} eq $pid;
    }
    is $r->{n}, 1, "$t: $what: its write is not there, the lock taken";
    cmp_ok $r->{elapsed}, '<', 5, sprintf("$t: $what: at once (%.1f s)", $r->{elapsed});
    ok $on_it, "$t: $what: a next client runs on its server process";
}

# A raw message cut short: the bytes before the cut, then the socket closed.
sub cut_short {
    my ($w, $msg, $keep) = @_;
    $w->send_raw(substr($msg, 0, $keep));
    sleep 0.2;
    $w->hangup;
}

sub check_rollback {
    my ($tls) = @_;
    my $p = proxy(server_tls => $tls);
    my $t = "server_tls = $tls";

    # Idle in its transaction, the socket closed.
    my ($w, $pid) = locker($p);
    $w->hangup;
    reused($p, $pid, $t, 'a client gone idle in its transaction');

    # While its query runs: canceled, rolled back.
    ($w, $pid) = locker($p);
    $w->send_query('SELECT pg_sleep(30)');
    ok $us->wait_sleeping($pid), "$t: a client's query runs";
    $w->hangup;
    reused($p, $pid, $t, 'a client gone while its query ran (canceled)');

    # Half a Query: pgnear holds a Query until it has it whole, so the server saw none of it.
    ($w, $pid) = locker($p);
    my $sql = "UPDATE vanish SET n = 3000 WHERE id = 1; --\0";
    cut_short($w, 'Q' . pack('N', 4 + length $sql) . $sql, 20);
    reused($p, $pid, $t, 'a client gone with half a Query that pgnear held');

    # psql killed with SIGKILL in its transaction, while pg_sleep runs (last: its connection, of
    # psql's startup parameters, would take the slot of a raw client's).
    my $ci = "host=127.0.0.1 port=" . $p->port . " dbname=movr user=app password=app-secret sslmode=disable";
    my $kid = fork // die "fork: $!";
    if ($kid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec {$psql} $psql, '-X', '-q', '-d', $ci, '-c', 'BEGIN', '-c', 'UPDATE vanish SET n = 2000 WHERE id = 1',
          '-c', 'SELECT pg_sleep(30)'
          or POSIX::_exit(127);
    }
    my $busy = wait_until(sub {
        $us->psql_admin(q{SELECT pid FROM pg_stat_activity WHERE usename = 'app' AND query LIKE '%pg_sleep(30)%'
                          AND state = 'active' AND pid <> pg_backend_pid()}) =~ /^(\d+)$/m ? $1 : 0
    }, timeout => 20);
    ok $busy, "$t: psql runs pg_sleep inside its transaction";
    kill 'KILL', $kid;
    waitpid($kid, 0);
    reused($p, $busy, $t, 'psql killed with SIGKILL', \&next_psql);
    $p->stop;

    # Half a Bind on the wire (no statement followed: max_prepared_statements = 0 passes it on as it
    # comes): the server waits for the rest, which cannot come; that connection is closed.
    $p = proxy(server_tls => $tls, max_prepared_statements => 0);
    ($w, $pid) = locker($p);
    my $parse = "\0UPDATE vanish SET n = length(\$1) WHERE id = 1\0" . pack('n', 0);
    my $param = 'x' x 600_000;
    my $bind = "\0\0" . pack('n n N', 0, 1, length $param) . $param . pack('n', 0);
    $w->send_msg('P', $parse);
    cut_short($w, 'B' . pack('N', 4 + length $bind) . $bind, 300_000);
    ok wait_until(sub { backend_state($pid) eq 'gone' }, timeout => 10),
      "$t: a client gone with half a Bind sent on: its server connection is closed";
    my $r = next_client($p);
    is $r->{n}, 1, "$t: ... nothing of it ran, nor its transaction's write";
    isnt $r->{pid}, $pid, "$t: ... the next client has another server process";
    $p->stop;
}

# pgnear --check says what becomes of a vanished client's connection, and refuses a negative timeout.
{
    my $cfg = PgNearTest::Proxy->new(regions => [$us], start => 0,
        settings => { auth => 'scram', auth_file => $userlist, pool_mode => 'transaction' });
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $cfg->config_path]);
    is $rc, 0, '--check, defaults: exit 0' or diag $err;
    like $out, qr/^pooling: server_rollback_timeout 5 s: the server connection of a client gone inside a transaction is canceled, rolled back and kept, or closed past that$/m,
      '--check, defaults: a vanished client\'s connection is rolled back within 5 s' or diag $out;
    $cfg->update_config(settings => { server_rollback_timeout => 0 });
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $cfg->config_path]);
    like $out, qr/^pooling: server_rollback_timeout 0: the server connection of a client gone inside a transaction is closed$/m,
      '--check, server_rollback_timeout = 0: closed' or diag $out;
    $cfg->update_config(settings => { server_rollback_timeout => -1 });
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $cfg->config_path]);
    is $rc, 1, '--check refuses server_rollback_timeout = -1';
    like $err, qr/server_rollback_timeout/, '... naming it';
}

check_rollback($_) for qw(disable require);

# server_rollback_timeout = 0: closed, as before.
{
    my $p = proxy(server_rollback_timeout => 0);
    my ($w, $pid) = locker($p);
    $w->hangup;
    ok wait_until(sub { backend_state($pid) eq 'gone' }, timeout => 10),
      'server_rollback_timeout = 0: the connection of a client gone inside a transaction is closed';
    my $r = next_client($p);
    is $r->{n}, 1, '... its write is not there';
    isnt $r->{pid}, $pid, '... the next client has another server process';
    $p->stop;
}

# A statement that swallows the cancel outlives server_rollback_timeout: the connection is closed.
{
    my $p = proxy(server_rollback_timeout => '1s');
    my ($w, $pid) = locker($p);
    my $off = $p->log_size;
    # Every cancel swallowed, not only the first: PostgreSQL's postmaster signals a cancel
    # request's backend twice (its pid, then its process group), and on a busy machine the
    # backend may take the first signal before the second is sent, so a handler that sleeps
    # once would be canceled by the second.
    $w->send_query(q{DO $$BEGIN LOOP BEGIN PERFORM pg_sleep(30); EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END$$});
    # In pg_sleep itself, inside the block that catches the cancel: the statement merely
    # begun (wait_sleeping's test) would take the cancel before its handler is in place.
    ok wait_until(sub {
        $us->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND wait_event = 'PgSleep'") eq '1'
    }, timeout => 5, interval => 0.02), 'a client runs a statement that swallows a cancel';
    my $t0 = time;
    $w->hangup;
    ok $p->wait_for_log(qr/server connection \d+ .*closed: not rolled back within server_rollback_timeout/,
                        offset => $off, timeout => 10),
      'server_rollback_timeout passed: the connection is closed';
    cmp_ok time - $t0, '<', 5, sprintf('... soon after the timeout (%.1f s)', time - $t0);
    unlike $p->log_contents, qr/rolled back after its client left; kept/, '... not kept';
    $us->psql_admin("SELECT pg_terminate_backend($pid)");
    $p->stop;
}

# The logins saved: 20 clients gone inside their transaction, one after the other.
for my $timeout (qw(5s 0)) {
    my $p = proxy(server_rollback_timeout => $timeout);
    # each worker's connection made (a client lands on either)
    wait_until(sub { next_client($p); app_backends() == 2 }, timeout => 20);
    my $before = sessions();
    my %pids;
    for (1 .. 20) {
        my ($w, $pid) = locker($p);
        $pids{$pid} = 1;
        $w->hangup;
    }
    next_client($p);
    # pg_stat_database counts a session as its backend first reports: let that settle.
    wait_until(sub { sessions() - $before >= 20 }, timeout => 3);
    my $logins = sessions() - $before;
    my $rolled = stat_value($p, 'servers_rolled_back');
    note "server_rollback_timeout = $timeout: $logins server logins for 20 clients gone inside a transaction";
    if ($timeout eq '0') {
        is scalar(keys %pids), 20, 'server_rollback_timeout = 0: each vanished client\'s successor on a new server process';
        is $rolled, 0, '... none rolled back (server_connections_rolled_back)';
    } else {
        is $logins, 0, "server_rollback_timeout = $timeout: no server login for 20 vanished clients";
        cmp_ok scalar(keys %pids), '<=', 2, '... their transactions ran on the workers\' two server processes';
        is $rolled, 20, '... each rolled back and kept (server_connections_rolled_back)';
    }
    $p->stop;
}

done_testing;
