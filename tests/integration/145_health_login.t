# A health check that reaches a server but cannot log in (server_conninfo
# lacks or has the wrong password) keeps the host up and says why; a host
# that does not answer at all is still down.  Checks run on a kept
# connection and log in afresh only every health_check_login_interval, so
# that a login that breaks later (here: the password changes) is still seen
# within that bound; a kept connection the server ends is replaced without
# taking the host down.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $eu = PgNearTest::Cluster->new(name => 'eu-west');
my $dead = free_port();
my $p = PgNearTest::Proxy->new(
    regions  => [$us, { name => 'eu-west', location => $eu->location, hosts => ["127.0.0.1:$dead", $eu] }],
    settings => { auth => 'passthrough', server_tls => 'disable', health_check_interval => '1s',
                  server_conninfo => 'user=pgnear password=wrong-secret',
                  cities_file => "$ENV{PGNEAR_SRCDIR}/conf/cities.csv" });

ok $p->wait_for_log(qr/host 127\.0\.0\.1:@{[$us->port]} of region us-east is up: it answers, but the health check cannot log in/,
                    timeout => 10), 'a wrong server_conninfo password: the host answers, so it is up, and the log says why';
ok $p->wait_for_log(qr/host 127\.0\.0\.1:$dead of region eu-west is down/, timeout => 10),
    'a port nobody listens on is down';
unlike $p->log_contents, qr/of region us-east is down/, 'us-east was never taken down';

is psql($p->conninfo(options => '-c pgnear.city=Washington'), 'SHOW cluster_name'), 'us-east',
    'sessions still land on the region whose checks cannot log in';
is psql($p->conninfo(options => '-c pgnear.city=Dublin'), 'SHOW cluster_name'), 'eu-west',
    'and on the live host of the region with a dead one';

# The message appears once per change, not at every check.
sleep 3;
my $port = $us->port;
my $n = () = $p->log_contents =~ /127\.0\.0\.1:$port of region us-east is up: .*cannot log in/g;
is $n, 1, 'the "cannot log in" line is logged once per host, not at every check';

# Checks on a kept connection: every 300 ms, a fresh login every 2 s (a check that timed
# out on a loaded machine would log in once more).
$p->stop;
my $q = PgNearTest::Proxy->new(
    regions  => [$us],
    settings => { auth => 'passthrough', server_tls => 'disable', health_check_interval => '300ms',
                  health_check_login_interval => '2s', health_check_timeout => '5s' });
my $check_sql = "SELECT pid || ' ' || (extract(epoch FROM query_start) * 1000)::bigint FROM pg_stat_activity "
              . "WHERE application_name = 'pgnear health check' AND state = 'idle'";
my ($pid, $at);
ok wait_until(sub { ($pid, $at) = split ' ', $us->psql_admin($check_sql); defined $at }, timeout => 10),
   'the check connection stays open between checks';
# Two checks seen on one backend: the second ran without a login.  Sampled
# for a while, as a sample may fall on a fresh login's backend or on a
# check that is running (not idle), the more so on a loaded machine.
my (%starts, $pid2);
my $same = wait_until(sub {
    my ($p1, $t1) = split ' ', $us->psql_admin($check_sql);
    return 0 unless defined $t1;
    $starts{$p1}{$t1} = 1;
    return keys %{ $starts{$p1} } >= 2 ? ($pid2 = $p1) : 0;
}, timeout => 10, interval => 0.1);
ok $same, 'later checks ran on the same backend (' . ($pid2 // 'none') . '), without a login'
  or diag explain \%starts;
my $logins = sub { scalar(() = $us->log_contents =~ /connection authorized: user=pgnear .*application_name=pgnear health check/g) };
my $before = $logins->();
sleep 5;
my $fresh = $logins->() - $before;
ok $fresh >= 2 && $fresh <= 3, "a fresh login every health_check_login_interval (2s): $fresh in 5 s, not one per check";

# A login that breaks is seen within the bound, though the kept connection still works.
$us->psql_admin("ALTER ROLE $PgNearTest::PGNEAR_USER PASSWORD 'changed-secret'");
my $t0 = time;
ok $q->wait_for_log(qr/of region us-east is up: it answers, but the health check cannot log in/, timeout => 10),
   'a changed password is seen by the next fresh login';
cmp_ok time - $t0, '<=', 2 + 1 + 1, '... within health_check_login_interval (2s) and an interval';
$us->psql_admin("ALTER ROLE $PgNearTest::PGNEAR_USER PASSWORD '$PgNearTest::PGNEAR_PASSWORD'");

# The server ends the kept connection: the next check logs in afresh; the host stays up.
ok wait_until(sub { ($pid) = split ' ', $us->psql_admin($check_sql); defined $pid }, timeout => 10),
   'with the password back, the checks keep a connection again';
$us->psql_admin("SELECT pg_terminate_backend($pid)");
ok wait_until(sub { ($pid2) = split ' ', $us->psql_admin($check_sql); defined $pid2 && $pid2 != $pid }, timeout => 10),
   'a check connection the server ended is replaced by a fresh login';
unlike $q->log_contents, qr/is down/, 'and the host never went down meanwhile';

done_testing;
