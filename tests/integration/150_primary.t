# Within a region, sessions go to a primary first: a standby listed first
# is passed over while a primary is up, serves (read-only) sessions when it
# is the only host left, and takes the sessions once it is promoted; the
# health checks say when a host changes role.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;

require_tool('psql');

my $a = PgNearTest::Cluster->new(name => 'us-east-a', location => '39.04, -77.49');
my $b = PgNearTest::Cluster->new(name => 'us-east-b', location => '39.04, -77.49');

# A cluster started with standby.signal and nowhere to stream from stays in
# recovery: a hot standby that answers read-only queries.
$a->stop;
PgNearTest::write_file($a->datadir . '/standby.signal', '', mode => 0600, owner => PgNearTest::_pg_os_user());
$a->start;
is $a->psql_admin('SELECT pg_is_in_recovery()'), 't', 'us-east-a runs as a standby';
is $b->psql_admin('SELECT pg_is_in_recovery()'), 'f', 'us-east-b is a primary';

my $p = PgNearTest::Proxy->new(
    regions  => [{ name => 'us-east', location => '39.04, -77.49', hosts => [$a, $b] }],
    settings => { auth => 'passthrough', server_tls => 'disable', health_check_interval => '300ms',
                  health_check_timeout => '1s' });
my $A = $a->port;
my $B = $b->port;

# Where a new session lands, and whether that server is in recovery.
sub where {
    my ($rc, $out, $err) = psql($p->conninfo,
        "SELECT current_setting('cluster_name') || '|' || CASE WHEN pg_is_in_recovery() THEN 't' ELSE 'f' END");
    return $rc == 0 ? $out : "error: $err";
}

ok $p->wait_for_log(qr/host 127\.0\.0\.1:$A of region us-east is up: it is a standby/),
  'the health check says us-east-a is a standby';
is_deeply [map { where() } 1 .. 5], [('us-east-b|f') x 5],
  'us-east-a is listed first, but sessions go to the primary us-east-b';

my $off = $p->log_size;
$b->stop;
ok $p->wait_for_log(qr/host 127\.0\.0\.1:$B of region us-east is down/, offset => $off),
  'the primary stops: its health check fails';
is where(), 'us-east-a|t', 'with no primary up, sessions go to the standby';
{
    my ($rc, $out, $err) = psql($p->conninfo, 'CREATE TABLE written_on_standby (x int)', verbose => 1);
    is sqlstate($err), '25006', '... where writes fail with the server\'s read-only error (25006)';
}

$off = $p->log_size;
{
    my ($rc, $out, $err) = $a->_pg_ctl('promote', '-w', '-t', '60');
    is $rc, 0, 'us-east-a promoted' or diag "$out$err";
}
ok $p->wait_for_log(qr/host 127\.0\.0\.1:$A of region us-east is up: it is a primary now/, offset => $off),
  'the health check sees the promotion';
is where(), 'us-east-a|f', 'sessions go to the new primary';
is psql($p->conninfo, 'CREATE TABLE written_after_promotion (x int)', quiet => 1), '', '... and can write there';

$off = $p->log_size;
$b->start;
ok $p->wait_for_log(qr/host 127\.0\.0\.1:$B of region us-east is up: health checks pass again/, offset => $off),
  'the old primary comes back';
is_deeply [map { where() } 1 .. 3], [('us-east-a|f') x 3],
  'both are primaries now: sessions go to the first listed, us-east-a';
ok $p->is_running, 'pgnear is running';

done_testing;
