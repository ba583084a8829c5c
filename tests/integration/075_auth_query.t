# auth = scram with auth_query: pgnear looks the verifier up on the chosen
# region's server, on connections of its own that it keeps and reuses (a
# login costs one query, not one more connection), notices kept connections
# the server closed, tries the region's other hosts when one is down, and
# reports a broken auth_query without leaking the reason to the client.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool('psql');

my $WORKERS = $ENV{PGNEAR_TEST_WORKERS} || 1;
my $AUTH_QUERY = 'SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1';
my $APPNAME = 'pgnear auth_query';

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin("SET password_encryption = 'scram-sha-256'; CREATE ROLE carol LOGIN PASSWORD 'carol-pw'");

my $p = PgNearTest::Proxy->new(regions => [$us],
    settings => { auth => 'scram', auth_query => $AUTH_QUERY, server_tls => 'disable' });

# Connections pgnear opened to look verifiers up, from the server's own log.
sub lookups_opened {
    my @n = $us->log_contents =~ /connection authorized: user=pgnear database=movr application_name=\Q$APPNAME\E/g;
    return scalar @n;
}
sub idle_lookups {
    return $us->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE application_name = '$APPNAME'");
}
# 'user|cluster_name' through pgnear, or 'error SQLSTATE'.
sub login {
    my (%o) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 20);
    my $r = $w->startup(user => $o{user} // 'app', database => 'movr', password => $o{password} // 'app-secret');
    my $out = $r->{ok} ? join('|', @{ $w->query("SELECT current_user, current_setting('cluster_name')")->{rows}[0] })
            : $r->{error} ? "error $r->{error}{C}" : 'eof';
    $w->terminate;
    return $out;
}

# ------------------------------------------------------------ logins

is login(), 'app|us-east', 'auth_query: app logs in through pgnear';
is login(user => 'carol', password => 'carol-pw'), 'carol|us-east', 'a second role, looked up the same way';
is login(password => 'wrong'), 'error 28P01', 'a wrong password: 28P01';
is login(user => 'nobody', password => 'x'), 'error 28P01', 'an unknown role: 28P01, like a wrong password';
like $p->log_contents, qr/user "nobody" not found by auth_query/, '... and the log says which it was';

# ------------------------------------------------------------ kept connections

my $before = lookups_opened();
my @ok = grep { $_ eq 'app|us-east' } map { login() } 1 .. 20;
is scalar @ok, 20, '20 more logins, one after the other';
my $opened = lookups_opened() - $before;
cmp_ok $opened, '<=', $WORKERS, "... open at most one lookup connection per worker ($opened for $WORKERS)";
cmp_ok idle_lookups(), '>=', 1, "... which stays open, idle, as '$APPNAME' in pg_stat_activity";
cmp_ok lookups_opened(), '<=', 4 + 2 * $WORKERS, 'all lookups so far used a handful of connections, not one per login';

# A burst: each worker opens at most 4 lookup connections per host and
# database, and the other logins wait for one of them.
{
    # Without kept connections every lookup of the burst needs a new one,
    # which takes milliseconds: far longer than the logins take to arrive.
    $us->psql_admin("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '$APPNAME'");
    PgNearTest::wait_until(sub { idle_lookups() == 0 }, timeout => 10);
    my $off = $p->log_size;
    my $opened_before = lookups_opened();
    my @pids;
    for my $i (1 .. 24) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) { POSIX::_exit(login() eq 'app|us-east' ? 0 : 1) }
        push @pids, $pid;
    }
    my $failed = 0;
    for my $pid (@pids) {
        my $t = time;
        while (waitpid($pid, WNOHANG) == 0) {
            if (time - $t > 60) { kill 'KILL', $pid; waitpid($pid, 0); $failed++; last }
            sleep 0.02;
        }
        $failed++ if $?;
    }
    is $failed, 0, '24 logins at once all succeed';
    my $opened = lookups_opened() - $opened_before;
    cmp_ok idle_lookups(), '<=', 4 * $WORKERS, 'at most 4 lookup connections per worker are open afterwards';
    cmp_ok $opened, '<=', 4 * $WORKERS, "... and no more were opened during the burst ($opened)";
    like substr($p->log_contents, $off), qr/auth_query: waiting for one of the 4 connections to 127\.0\.0\.1:/,
      '... the other logins waited for one';
}

# ------------------------------------------------------------ the server closes them

{
    my $off = $p->log_size;
    my $killed = $us->psql_admin("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '$APPNAME'");
    cmp_ok $killed, '>=', 1, "pg_terminate_backend on the kept connections ($killed)";
    ok $p->wait_for_log(qr/auth_query connection to .* closed by the server while idle/, offset => $off),
      'pgnear notices while they are idle';
    is login(), 'app|us-east', 'the next login works';
}

{
    my $off = $p->log_size;
    is login(), 'app|us-east', 'a login before the restart keeps a connection';
    # An immediate stop gives pgnear no FATAL to read while idle: the
    # connection is found dead when the next lookup tries it.
    $us->stop(mode => 'immediate');
    $us->start;
    is login(), 'app|us-east', 'after the server restarted, a login still works';
    unlike substr($p->log_contents, $off), qr/auth_query failed/, '... and no lookup failed on the way';
}

# ------------------------------------------------------------ hosts

{
    my $dead = PgNearTest::free_port();
    my $p2 = PgNearTest::Proxy->new(
        regions => [{ name => 'us-east', hosts => ["127.0.0.1:$dead", $us] }],
        settings => { auth => 'scram', auth_query => $AUTH_QUERY, server_tls => 'disable',
                      health_check_interval => 0 });    # no checks: the dead host looks up
    my ($rc, $out, $err) = psql($p2->conninfo, 'SHOW cluster_name', verbose => 1);
    is $out, 'us-east', 'first host of the region unreachable: the lookup (and the session) use the next' or diag $err;
    like $p2->log_contents, qr/auth_query on 127\.0\.0\.1:$dead of region us-east failed/,
      '... and the log says which host failed';
    $p2->stop;
}

# ------------------------------------------------------------ a kept connection silently lost

{
    # The relay loses every connection it carries without a word to pgnear
    # (a NAT or firewall forgetting them): pgnear, idle, cannot notice; the
    # lookup on the dead connection fails and is retried on a fresh one.
    # The subject is the lookup connection: the session's server connection
    # is not kept here (pool_mode = none).  A kept server connection lost
    # the same way is 191_pool_timeouts.t's (server_check_query finds it).
    my $relay = PgNearTest::Relay->new(to => $us->port);
    my $rport = $relay->port;
    my $p3 = PgNearTest::Proxy->new(
        regions => [{ name => 'us-east', location => $us->location, hosts => ["127.0.0.1:$rport"] }],
        settings => { auth => 'scram', auth_query => $AUTH_QUERY, server_tls => 'disable',
                      health_check_interval => 0, workers => 1, pool_mode => 'none' });
    my $login3 = sub {
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p3->port, timeout => 20);
        my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
        my $out = $r->{ok} ? $w->query('SHOW cluster_name')->{rows}[0][0] : 'error ' . ($r->{error}{C} // 'eof');
        $w->terminate;
        return $out;
    };
    is $login3->(), 'us-east', 'through a relay: a login keeps its lookup connection';
    my $off = $p3->log_size;
    $relay->sever;
    sleep 0.5;
    is $login3->(), 'us-east', 'the relay lost it silently: the next login still works';
    like substr($p3->log_contents, $off), qr/auth_query: kept connection to 127\.0\.0\.1:$rport was lost .*reconnecting/,
      '... the lookup found the kept connection dead and reconnected';
    unlike substr($p3->log_contents, $off), qr/auth_query failed/, '... without failing the login';
    $p3->stop;
    $relay->stop;
}

# ------------------------------------------------------------ a broken auth_query

{
    my $off = $p->log_size;
    $p->update_config(settings => { auth_query => 'SELECT usename, passwd FROM no_such_table WHERE usename = $1' });
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded/, offset => $off), 'reload with an auth_query that fails';
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 20);
    my $e = $w->startup(user => 'app', database => 'movr', password => 'app-secret')->{error} // {};
    is $e->{C}, '08001', 'the client gets 08001';
    is $e->{M}, "could not look up the user's secret", '... could not look up the secret';
    is $e->{H}, "The reason is in pgnear's log.", '... with a hint to the log';
    unlike join(' ', values %$e), qr/no_such_table/, '... and nothing of the server\'s error';
    like substr($p->log_contents, $off), qr/auth_query failed: .*no_such_table/, 'the log has the reason';
    is $us->psql_admin('SELECT 1'), 1, 'the server is fine';

    $p->update_config(settings => { auth_query => $AUTH_QUERY });
    $off = $p->log_size;
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded/, offset => $off), 'reload with the right auth_query';
    is login(), 'app|us-east', 'logins work again';
}

ok $p->is_running, 'pgnear is still running';
done_testing;
