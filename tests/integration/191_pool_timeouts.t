# Session pooling's timers and the ways a kept server connection ends: the
# states new (logging in), used (reset running) and tested (check query
# running) in SHOW SERVERS and SHOW POOLS; min_pool_size (connections kept
# open, spared by server_idle_timeout, replaced); server_lifetime (closed
# when its client leaves once older, never handed out past it);
# server_idle_timeout (gone from SHOW SERVERS and from the server within the
# timeout and a second); a backend killed on the server while idle (seen by
# pgnear, or caught by the check query after server_check_delay) or dying
# silently behind a relay (caught by the check query, empty or not): the
# next client gets a working fresh connection, never an error; RECONNECT
# [region] (idle connections closed at once, the ones in use when their
# clients leave); the region's PostgreSQL restarted (fast and immediate)
# while a connection idles.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool('psql');

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $auth_dir = tmpdir(name => 'pool-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

sub proxy {
    PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'scram', auth_file => $userlist, admin_users => 'admin', server_tls => 'disable',
                      pool_mode => 'session', workers => 1, @_ });
}

# ---------------------------------------------------------------- helpers

sub admin_ci { my ($p) = @_; $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret') }

sub app_servers { grep { ($_->{region} // '') eq 'us-east' } $_[0]->admin_rows('SHOW SERVERS') }
sub server_by_pid { my ($p, $pid) = @_; (grep { $_->{pid} eq $pid } app_servers($p))[0] // {} }

# A raw-protocol login through $p: (wire, startup result, error).
sub try_login {
    my ($p) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
    my $r = eval { $w->startup(user => 'app', database => 'movr', password => 'app-secret') };
    return ($w, $r // { ok => 0, error => { M => $@ } });
}

sub login {
    my ($p) = @_;
    my ($w, $r) = try_login($p);
    die 'login through pgnear failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n"
      unless $r->{ok};
    return ($w, $r);
}

sub one { my ($w, $sql) = @_; my $q = $w->query($sql); die "$sql: $q->{error}{M}\n" if $q->{error}; $q->{rows}[0][0] }
sub backend_pid { one($_[0], 'SELECT pg_backend_pid()') }

sub on_server {
    my ($pid) = @_;
    return $us->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid") ne '0';
}
sub backend_gone { my ($pid, $t) = @_; wait_until(sub { !on_server($pid) }, timeout => $t // 5) }

sub wait_idle {
    my ($p, $pid) = @_;
    return wait_until(sub { (server_by_pid($p, $pid)->{state} // '') eq 'idle' }, timeout => 5);
}

# A client that leaves its connection idle in the pool: the backend pid.
sub park_one {
    my ($p, $label) = @_;
    my ($w) = login($p);
    my $pid = backend_pid($w);
    $w->terminate;
    ok wait_idle($p, $pid), "$label: the connection is idle in the pool";
    return $pid;
}

# The next client logs in without an error and can query: its backend pid.
sub next_client_works {
    my ($p, $label) = @_;
    my ($w, $r) = try_login($p);
    ok $r->{ok}, "$label: the next client logs in without an error"
        or diag explain $r->{error};
    return undef unless $r->{ok};
    my $q = $w->query('SELECT pg_backend_pid(), 42');
    ok !$q->{error} && $q->{rows}[0][1] eq '42', "$label: and its first query works"
        or diag explain $q->{error};
    $w->terminate;
    return $q->{rows}[0][0];
}

# A login in a child process, so that the test can watch it: returns a
# handle for bg_result, which gives {ok, elapsed, pid} or {C, M, elapsed}.
sub bg_login {
    my ($p) = @_;
    return in_background(sub {
        my %out;
        my $t0 = time;
        my ($w, $r) = try_login($p);
        $out{elapsed} = time - $t0;
        $out{ok} = $r->{ok} ? 1 : 0;
        if ($r->{ok}) {
            my $q = $w->query('SELECT pg_backend_pid()');
            $out{pid} = $q->{error} ? 'error' : $q->{rows}[0][0];
            $w->terminate;
        } else {
            $out{$_} = $r->{error}{$_} // '' for qw(C M);
        }
        return %out;
    });
}


sub pool_row { (grep { ($_->{database} // '') eq 'movr' && ($_->{user} // '') eq 'app' } $_[0]->admin_rows('SHOW POOLS'))[0] // {} }

# ================================================================ states used and tested
{
    # A reset that takes a second: the connection is "used" meanwhile.
    my $p = proxy(server_reset_query => 'SELECT pg_sleep(1)');
    my ($w) = login($p);
    my $pid = backend_pid($w);
    $w->terminate;
    ok wait_until(sub { (server_by_pid($p, $pid)->{state} // '') eq 'used' }, timeout => 0.8, interval => 0.05),
        'used: SHOW SERVERS shows the connection in its reset as used';
    is pool_row($p)->{sv_used}, 1, 'used: SHOW POOLS sv_used 1';
    is server_by_pid($p, $pid)->{client}, '', 'used: no client';
    my ($w2, $r2) = try_login($p);
    ok $r2->{ok}, 'used: a client arriving during the reset logs in' or diag explain $r2->{error};
    my $pid2 = $r2->{ok} ? backend_pid($w2) : 0;
    note "used: the client arriving during the reset got backend $pid2 (the resetting one was $pid)";
    $w2->terminate if $r2->{ok};
    ok wait_idle($p, $pid), 'used: once reset, the connection is idle';
    $p->stop;
}
{
    # A check query that takes a second: the connection is "tested" meanwhile.
    my $p = proxy(server_check_query => 'SELECT pg_sleep(1)', server_check_delay => '1s');
    my $pid = park_one($p, 'tested');
    sleep 1.3;
    my $bg = bg_login($p);
    ok wait_until(sub { (server_by_pid($p, $pid)->{state} // '') eq 'tested' }, timeout => 1, interval => 0.05),
        'tested: SHOW SERVERS shows the connection under its check query as tested';
    is pool_row($p)->{sv_tested}, 1, 'tested: SHOW POOLS sv_tested 1';
    my $r = background_result($bg);
    ok $r->{ok}, 'tested: the client logs in' or diag explain $r;
    is $r->{pid}, $pid, 'tested: on the connection that passed its check';
    cmp_ok $r->{elapsed}, '>=', 0.9, sprintf('tested: after the check query (%.2f s)', $r->{elapsed});
    ok wait_idle($p, $pid), 'tested: idle again after its client';
    # Idle for less than server_check_delay: no check.  Seen on the server
    # (a check would start a query there), not by the clock: a login alone
    # takes most of a second on CI's machine.
    my $last_query = sub {
        $us->psql_admin("SELECT query_start || ' ' || query FROM pg_stat_activity WHERE pid = $pid") };
    my $before = $last_query->();
    my ($w) = login($p);
    is $last_query->(), $before, 'tested: a connection idle for less than server_check_delay is not checked';
    is backend_pid($w), $pid, 'tested: and is handed out';
    $w->terminate;
    $p->stop;
}

{
    # A server login that does not answer: the connection is "new" meanwhile.
    my $relay = PgNearTest::Relay->new(to => $us->port);
    my $p = PgNearTest::Proxy->new(
        regions => [{ name => 'us-east', location => $us->location, hosts => [$relay->hostport] }],
        settings => { auth => 'scram', auth_file => $userlist, admin_users => 'admin', server_tls => 'disable',
                      pool_mode => 'session', workers => 1 });
    $relay->intercept(match => "user\0app\0", action => 'stall');
    my $bg = bg_login($p);
    ok wait_until(sub { grep { $_->{state} eq 'new' && $_->{user} eq 'app' } app_servers($p) }, timeout => 3),
        'new: SHOW SERVERS shows the connection logging in as new' or diag explain [app_servers($p)];
    is pool_row($p)->{sv_login}, 1, 'new: SHOW POOLS sv_login 1';
    kill 'KILL', $bg->{kid};
    waitpid($bg->{kid}, 0);
    $p->stop;
    $relay->stop;
}

# ================================================================ min_pool_size
{
    my $p = proxy(min_pool_size => 2, server_idle_timeout => '2s');
    is scalar(app_servers($p)), 0, 'min_pool_size: nothing opened before a client of the pair logged in';
    my $pid = park_one($p, 'min_pool_size');
    my $two_idle = sub { my @s = app_servers($p); @s == 2 && !grep { $_->{state} ne 'idle' } @s };
    ok wait_until($two_idle, timeout => 5), 'min_pool_size: two connections kept open for app/movr'
        or diag explain [app_servers($p)];
    my @pids = sort map { $_->{pid} } app_servers($p);
    sleep 3;
    is_deeply [sort map { $_->{pid} } app_servers($p)], \@pids,
        'min_pool_size: server_idle_timeout (2s) spares them' or diag explain [app_servers($p)];
    is $us->psql_admin("SELECT pg_terminate_backend($pids[0])"), 't', 'min_pool_size: one is killed on the server';
    ok wait_until(sub { $two_idle->() && !grep { $_->{pid} eq $pids[0] } app_servers($p) }, timeout => 5),
        'min_pool_size: and replaced' or diag explain [app_servers($p)];
    my %kept = map { ($_->{pid} => 1) } app_servers($p);
    my $pid2 = next_client_works($p, 'min_pool_size');
    ok $kept{ $pid2 // '' }, 'min_pool_size: the next client got one of the kept connections';
    $p->stop;
}

# ================================================================ server_lifetime
{
    my $p = proxy(server_lifetime => '2s');
    my $t0 = time;
    my $pid = park_one($p, 'lifetime');
    my ($w) = login($p);
    is backend_pid($w), $pid, 'lifetime: a young connection is reused';
    sleep 2.5 - (time - $t0) if time - $t0 < 2.5;
    $w->terminate;
    ok backend_gone($pid), 'lifetime: older than server_lifetime, it is closed when its client leaves';
    my $pid2 = next_client_works($p, 'lifetime');
    isnt $pid2, $pid, 'lifetime: the next client gets another backend';

    # Idle past its lifetime: never handed out.
    ok wait_idle($p, $pid2), 'lifetime: a second connection idles';
    sleep 2.5;
    my $pid3 = next_client_works($p, 'lifetime, idle past it');
    isnt $pid3, $pid2, 'lifetime: a connection that reached server_lifetime while idle is not handed out';
    ok backend_gone($pid2), 'lifetime: and it is closed';
    $p->stop;
}

# ================================================================ server_idle_timeout
{
    # 3 s rather than 2: the checks at one second are two psql round trips, which a loaded
    # machine can stretch to most of a second.
    my $p = proxy(server_idle_timeout => '3s');
    my ($w) = login($p);
    my $pid = backend_pid($w);
    $w->terminate;
    my $t_left = time;
    ok wait_idle($p, $pid), 'idle timeout: idle in the pool';
    sleep 1.2 - (time - $t_left) if time - $t_left < 1.2;
    my $s = server_by_pid($p, $pid);
    is $s->{state}, 'idle', 'idle timeout: still kept after a second';
    cmp_ok $s->{idle} // -1, '>=', 1, 'idle timeout: SHOW SERVERS counts its idle seconds';
    ok on_server($pid), 'idle timeout: the backend is still on the server after a second';
    my $left = sub { my $t = $_[0] - (time - $t_left); $t > 0.1 ? $t : 0.1 };
    ok wait_until(sub { !%{ server_by_pid($p, $pid) } }, timeout => $left->(4.5)),
        'idle timeout: gone from SHOW SERVERS within 4.5 s of its client leaving';
    ok backend_gone($pid, $left->(4.6)), 'idle timeout: gone from pg_stat_activity within ~4.5 s';
    cmp_ok time - $t_left, '>=', 2.9, 'idle timeout: not before server_idle_timeout';
    my $pid2 = next_client_works($p, 'idle timeout');
    isnt $pid2, $pid, 'idle timeout: the next client gets a new backend';
    $p->stop;
}

# ================================================================ a backend killed while idle
{
    my $p = proxy(server_check_delay => '1s');
    my $pid = park_one($p, 'check delay');
    sleep 1.5;
    is $us->psql_admin("SELECT pg_terminate_backend($pid)"), 't', 'check delay: the idle backend is killed on the server';
    ok backend_gone($pid), 'check delay: it is gone';
    my $pid2 = next_client_works($p, 'check delay');
    isnt $pid2, $pid, 'check delay: on a fresh backend';
    # Killed and the next client right behind, the connection idle longer than server_check_delay.
    $pid = park_one($p, 'check delay, at once');
    sleep 1.5;
    $us->psql_admin("SELECT pg_terminate_backend($pid)");
    $pid2 = next_client_works($p, 'check delay, at once');
    isnt $pid2, $pid, 'check delay, at once: on a fresh backend';
    $p->stop;
}
{
    my $p = proxy();    # server_check_delay 30s: pgnear sees the connection close while it idles
    my $pid = park_one($p, 'killed while idle');
    is $us->psql_admin("SELECT pg_terminate_backend($pid)"), 't', 'killed while idle: the backend is killed';
    ok wait_until(sub { !%{ server_by_pid($p, $pid) } }, timeout => 3),
        'killed while idle: pgnear drops it from SHOW SERVERS';
    my $pid2 = next_client_works($p, 'killed while idle');
    isnt $pid2, $pid, 'killed while idle: on a fresh backend';
    $p->stop;
}

# A connection that died without pgnear seeing it: through a relay that
# drops the server side and keeps pgnear's side open in silence (it resets
# it only when pgnear writes), so only the check query can find out.
for my $check ('', 'SELECT 1') {
    my $label = $check eq '' ? 'silent death, empty check query' : "silent death, check query $check";
    my $relay = PgNearTest::Relay->new(to => $us->port);
    my $p = PgNearTest::Proxy->new(
        regions => [{ name => 'us-east', location => $us->location, hosts => [$relay->hostport] }],
        settings => { auth => 'scram', auth_file => $userlist, admin_users => 'admin', server_tls => 'disable',
                      pool_mode => 'session', workers => 1, server_check_delay => '1s',
                      ($check ne '' ? (server_check_query => $check) : ()) });
    my $pid = park_one($p, $label);
    $relay->sever;
    ok backend_gone($pid), "$label: the backend is gone on the server";
    sleep 1.5;
    is server_by_pid($p, $pid)->{state}, 'idle', "$label: pgnear has not noticed (still idle)";
    my $pid2 = next_client_works($p, $label);
    isnt $pid2, $pid, "$label: on a fresh backend";
    ok !%{ server_by_pid($p, $pid) }, "$label: the dead connection is no longer listed";
    $p->stop;
    $relay->stop;
}

# ================================================================ RECONNECT
{
    my $p = proxy();
    my ($wa) = login($p);
    my ($wb) = login($p);
    my ($pa, $pb) = (backend_pid($wa), backend_pid($wb));
    isnt $pa, $pb, 'RECONNECT: two clients on two backends';
    $wa->terminate;
    ok wait_idle($p, $pa), 'RECONNECT: A\'s connection idles, B\'s is in use';
    my ($rc, $out, $err) = psql(admin_ci($p), 'RECONNECT', verbose => 1);
    is $rc, 0, 'RECONNECT succeeds' or diag $err;
    is $out, 'RECONNECT', 'RECONNECT: its tag';
    ok backend_gone($pa), 'RECONNECT: the idle connection is closed';
    ok on_server($pb), 'RECONNECT: the one in use is not cut';
    is one($wb, 'SELECT 7'), 7, 'RECONNECT: its client goes on';
    my $pc = next_client_works($p, 'RECONNECT');
    isnt $pc, $pa, 'RECONNECT: the next client does not get the closed connection';
    $wb->terminate;
    ok backend_gone($pb), 'RECONNECT: the connection in use during RECONNECT is closed when its client leaves';
    my $pd = next_client_works($p, 'RECONNECT, after B');
    isnt $pd, $pb, 'RECONNECT: B\'s connection is not handed out';
    ok wait_idle($p, $pd), 'RECONNECT: connections made after it are kept again';
    my ($we) = login($p);
    is backend_pid($we), $pd, 'RECONNECT: and reused';
    $we->terminate;

    # RECONNECT naming the region.
    ok wait_idle($p, $pd), 'RECONNECT us-east: a connection idles';
    ($rc, $out, $err) = psql(admin_ci($p), 'RECONNECT us-east', verbose => 1);
    is $rc, 0, 'RECONNECT us-east succeeds' or diag $err;
    ok backend_gone($pd), 'RECONNECT us-east: the idle connection is closed';
    ($rc, $out, $err) = psql(admin_ci($p), 'RECONNECT nowhere', verbose => 1);
    is sqlstate($err), '42704', 'RECONNECT of an unknown region: 42704';

    # ============================================================ PostgreSQL restarted
    my $pid = park_one($p, 'restart');
    $us->restart;
    ok !on_server($pid), 'restart: the old backend is gone';
    my $pid2 = next_client_works($p, 'restart');
    isnt $pid2, $pid, 'restart: on a fresh backend';
    $pid = park_one($p, 'immediate restart');
    $us->restart(mode => 'immediate');
    $pid2 = next_client_works($p, 'immediate restart');
    isnt $pid2, $pid, 'immediate restart: on a fresh backend';
    ok $p->is_running, 'pgnear still running';
}

done_testing;
