# A client that does not read must not make pgnear buffer the server's
# whole answer: reading from the server stops while the client's output
# is full, memory stays flat, and the stream arrives intact afterwards.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;

sub rss_kb {
    my ($pid) = @_;
    my ($kb) = slurp_file("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)\s+kB/m;
    return $kb;
}

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $p  = PgNearTest::Proxy->new(regions => [$us],
                                settings => { auth => 'passthrough', server_tls => 'disable' });

my $rows = 60000;
my $width = 1000;
my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 60);
ok $w->startup(user => 'app', database => 'movr', password => 'app-secret')->{ok}, 'logged in';

my $before = rss_kb($p->pid);
$w->send_msg('Q', "COPY (SELECT repeat('x', $width) FROM generate_series(1, $rows)) TO STDOUT\0");
sleep 3;    # the server has produced everything by now; the client read nothing
my $stalled = rss_kb($p->pid);
cmp_ok $stalled - $before, '<', 16 * 1024,
    "pgnear holds back instead of buffering ~@{[int($rows * $width / 1048576)]} MB (RSS grew by "
    . ($stalled - $before) . " kB)";
ok kill(0, $p->pid), 'pgnear alive while the client stalls';

# Another client is not held up by the stalled one.
is psql($p->conninfo, 'SELECT 1'), '1', 'other sessions keep working meanwhile';

my ($bytes, $count, $status) = (0, 0, '');
for (1 .. $rows + 100) {
    my ($type, $payload) = $w->read_msg;
    last unless defined $type;
    if ($type eq 'd') { $bytes += length $payload; $count++ }
    if ($type eq 'Z') { $status = $payload; last }
}
is $count, $rows, 'every row arrived';
is $bytes, $rows * ($width + 1), 'every byte arrived';
is $status, 'I', 'ReadyForQuery after the COPY';
is $w->query('SELECT 42')->{rows}[0][0], 42, 'session goes on';
$w->terminate;

done_testing;
