#!/usr/bin/perl
# A crowd of active clients over a small transaction pool: pgbench's TPC-B
# (sort of), by default with named prepared statements (-M prepared, or
# --mode simple|extended), from N clients
# through pgnear with pool_mode = transaction and pool_size P, against a
# PostgreSQL whose max_connections (100) is far below N.  Prints pgbench's
# summary (transactions, failures, latency, tps) and the most backends of
# the pool's user that pg_stat_activity showed, sampled every 0.5 s.
#
#   bench/crowd_prepared.pl [--clients 1000] [--pool-size 20] [--workers 2]
#                           [--seconds 30] [--scale 10] [--mode prepared]
#
# The shell's open-files limit must allow the clients and pgnear's sockets
# (ulimit -n). Needs a built ./build/pgnear (or $PGNEAR) and pgbench.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use Getopt::Long;
use POSIX ();
use Time::HiRes qw(sleep);
use PgNearTest;

$| = 1;
my %opt = (clients => 1000, 'pool-size' => 20, workers => 2, seconds => 30, scale => 10,
           mode => 'prepared');
GetOptions(\%opt, 'clients=i', 'pool-size=i', 'workers=i', 'seconds=i', 'scale=i', 'mode=s')
  or die "bad options\n";
die "--mode: simple, extended or prepared\n" unless $opt{mode} =~ /^(simple|extended|prepared)$/;
$ENV{PGNEAR} //= "$FindBin::RealBin/../build/pgnear";
die "no pgnear binary at $ENV{PGNEAR}: build first\n" unless -x $ENV{PGNEAR};
require_tool('pgbench');

my $us = PgNearTest::Cluster->new(name => 'us-east', conf => { max_connections => 100 });
my $userlist = tmpdir(name => 'crowd-auth') . '/userlist.txt';
write_file($userlist, qq{"app" "} . $us->scram_verifier('app') . qq{"\n});
my $p = PgNearTest::Proxy->new(
    regions  => [$us],
    args     => ['-q'],
    settings => { auth => 'scram', auth_file => $userlist, server_tls => 'disable',
                  pool_mode => 'transaction', workers => $opt{workers},
                  pool_size => $opt{'pool-size'} });
my ($rc, $out, $err) = pgbench(['-i', '-s', $opt{scale}, '-q'], $us->conninfo, timeout => 600);
die "pgbench -i failed ($rc): $err\n" if $rc != 0;

pipe(my $from_child, my $to_parent) or die "pipe: $!\n";
my $pid = fork // die "fork: $!\n";
if ($pid == 0) {
    close $from_child;
    my @args = ('-n', '-M', $opt{mode}, '-c', $opt{clients}, '-j', 2, '-T', $opt{seconds});
    my ($brc, $bout, $berr) = pgbench(\@args, $p->conninfo, timeout => $opt{seconds} + 300);
    print {$to_parent} "pgbench exit status $brc\n$bout\n", substr($berr, 0, 2000);
    close $to_parent;
    POSIX::_exit(0);
}
close $to_parent;
my $most = 0;
while (waitpid($pid, POSIX::WNOHANG()) == 0) {
    my $n = $us->psql_admin(q{SELECT count(*) FROM pg_stat_activity
                              WHERE usename = 'app' AND backend_type = 'client backend'});
    $most = $n if $n =~ /^\d+$/ && $n > $most;
    sleep 0.5;
}
print while <$from_child>;
printf "most backends of the pool's user: %d (pool_size %d, %d workers, %d clients)\n", $most,
  $opt{'pool-size'}, $opt{workers}, $opt{clients};
$p->stop;
