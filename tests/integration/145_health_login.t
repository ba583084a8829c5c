# A health check that reaches a server but cannot log in (server_conninfo
# lacks or has the wrong password) keeps the host up and says why; a host
# that does not answer at all is still down.
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

done_testing;
