#!/usr/bin/perl
# Closing many sessions at once: N clients log in through pgnear and sit
# idle, a control session runs SELECT 1 every 5 ms, then the process
# holding the N clients is killed (their sockets all close together).
# Prints the control session's slowest SELECT 1 in the 4 s after the kill,
# through pgnear and directly, interleaved, with pgnear's CPU time and the
# time its threads spent runnable but waiting for a CPU (schedstat).
#
#   bench/close_storm.pl [--sessions 2000] [--rounds 2]
#
# Needs a built ./build/pgnear (or $PGNEAR); the open-files limit must
# allow 2 x sessions descriptors.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use Getopt::Long;
use Time::HiRes qw(time sleep);
use DBI;
use DBD::Pg;
use PgNearTest;

$| = 1;
my %opt = (sessions => 2000, rounds => 2);
GetOptions(\%opt, 'sessions=i', 'rounds=i') or die "bad options\n";
$ENV{PGNEAR} //= "$FindBin::RealBin/../build/pgnear";
die "no pgnear binary at $ENV{PGNEAR}: build first\n" unless -x $ENV{PGNEAR};

my $n = $opt{sessions};
my $pg = PgNearTest::Cluster->new(name => 'storm', location => '39.04, -77.49', conf => { max_connections => $n + 50 });
my $p = PgNearTest::Proxy->new(regions => [$pg], args => ['-q'],
    settings => { auth => 'passthrough', server_tls => 'disable', max_client_conn => $n + 100 });

# Seconds on a CPU and runnable-but-waiting, summed over pgnear's threads.
sub schedstat {
    my ($run, $wait) = PgNearTest::proc_schedstat($p->pid);
    return ($run / 1e9, $wait / 1e9);
}

# The slowest SELECT 1 of the control session for secs seconds.
sub slowest {
    my ($ctl, $secs) = @_;
    my ($max, $t0) = (0, time);
    while (time - $t0 < $secs) {
        my $t = time;
        $ctl->selectrow_array('SELECT 1');
        $max = time - $t if time - $t > $max;
        sleep 0.005;
    }
    return $max;
}

sub storm {
    my ($via) = @_;
    my $port = $via eq 'pgnear' ? $p->port : $pg->port;
    my $dsn = "dbi:Pg:host=127.0.0.1;port=$port;dbname=movr;sslmode=disable";
    pipe(my $r, my $w) or die "pipe: $!\n";
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        close $r;
        my @h = map { DBI->connect($dsn, 'app', 'app-secret', { RaiseError => 1 }) } 1 .. $n;
        syswrite $w, "ready\n";
        sleep 600;
        exit 0;
    }
    close $w;
    <$r> // die "the clients did not log in\n";
    my $ctl = DBI->connect($dsn, 'app', 'app-secret', { RaiseError => 1 });
    my $before = slowest($ctl, 1);
    my @s0 = schedstat();
    kill 'KILL', $pid;
    my $after = slowest($ctl, 4);
    waitpid $pid, 0;
    my @s1 = schedstat();
    $ctl->disconnect;
    sleep 2;
    return { before => $before, after => $after, cpu => $s1[0] - $s0[0], wait => $s1[1] - $s0[1] };
}

my %worst;
for my $round (1 .. $opt{rounds}) {
    for my $via ('pgnear', 'direct') {
        my $r = storm($via);
        printf "round %d %-7s slowest SELECT 1: %.3f s before, %.3f s after %d sessions closed;"
          . " pgnear %.3f s CPU, %.3f s waiting for a CPU\n",
          $round, $via, $r->{before}, $r->{after}, $n, $r->{cpu}, $r->{wait};
        $worst{$via} = $r->{after} if $r->{after} > ($worst{$via} // 0);
    }
}
printf "worst after the closes: pgnear %.3f s, direct %.3f s (ratio %.2f)\n",
  $worst{pgnear}, $worst{direct}, $worst{pgnear} / $worst{direct};
