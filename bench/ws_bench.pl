#!/usr/bin/perl
# The relay through a WebSocket against the relay through TCP: one
# PostgreSQL 15 server, one pgnear (auth = passthrough, so that both paths
# do the same login work, and workers = 1) with websocket_port, and a second
# one whose websocket_port speaks wss and whose TCP port takes PostgreSQL's
# own TLS (client_tls = allow); the same load client (bench/ws_bench, one
# thread per connection) runs each load directly against PostgreSQL,
# through pgnear's TCP port and its WebSocket port, and (--wss, the
# default) with TLS: over TCP after an SSLRequest, and over wss;
# interleaved round by round, and this prints medians and ratios: each
# WebSocket path against the TCP path with the same encryption.
#
#   bench/ws_bench.pl [--seconds 5] [--rounds 5] [--only small-1,small-8,big-2,upload-2] [--no-wss]
#                     [--workers 1] [--pool_mode session]
#
# Besides tps, mean latency and MB/s (the PostgreSQL stream, both ways, as
# the client counts it), it prints the CPU time pgnear's process spent per
# transaction (user + system, from /proc; clock ticks of 10 ms over the
# whole run): the kernel's work for the relay's system calls included,
# which callgrind (bench/callgrind_ws.pl) leaves out, and less sensitive
# than tps to how the three programs share two cores.
#
# Loads: small-1 and small-8 run SELECT 1 over 1 and 8 connections; big-2
# runs SELECT repeat('x', 1000000) (1 MB a row) over 2 connections; upload-2
# sends a query of 1 MB (SELECT length('xxx...')) over 2 connections.
# PostgreSQL asks for a cleartext password (pg_hba "password" for app on
# loopback), which pgnear relays; ws_bench answers it on every path.
#
# Needs a built ./build/pgnear (or $PGNEAR) and bench/ws_bench
# (`make bench/ws_bench` in the build directory; or $WS_BENCH).  Quote the
# ratios, not the tps: the machines are shared and noisy.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use Getopt::Long;
use POSIX ();
use PgNearTest;

$| = 1;

my %opt = (seconds => 5, rounds => 5, only => '', wss => 1, workers => 1, pool_mode => 'session');
GetOptions(\%opt, 'seconds=f', 'rounds=i', 'only=s', 'wss!', 'workers=i', 'pool_mode=s')
    or die "bad options\n";
my $root = "$FindBin::RealBin/..";
$ENV{PGNEAR} //= -x "$root/build/pgnear" ? "$root/build/pgnear" : "$root/pgnear";
die "no pgnear binary at $ENV{PGNEAR}: build first\n" unless -x $ENV{PGNEAR};
my $client = $ENV{WS_BENCH} // (-x "$root/build/bench/ws_bench" ? "$root/build/bench/ws_bench"
                                                                  : "$root/bench/ws_bench");
die "no load client at $client: run `make bench/ws_bench` in the build directory\n"
    unless -x $client;

my $pg = PgNearTest::Cluster->new(name => 'wsbench', location => '39.04, -77.49',
    hba => ['local all all trust',
            'host all app 127.0.0.1/32 password', 'host all app ::1/128 password',
            'host all all 127.0.0.1/32 scram-sha-256', 'host all all ::1/128 scram-sha-256']);

my %settings = (auth => 'passthrough', server_tls => 'disable', workers => $opt{workers},
                max_client_conn => 1000, pool_mode => $opt{pool_mode},
                # a health check's login in the middle of a run is noise
                health_check_interval => '1h');
my $ws_port = PgNearTest::free_port();
my $pgnear = PgNearTest::Proxy->new(regions => [$pg], args => ['-q'],
    settings => { %settings, websocket_port => $ws_port });
my ($wss, $wss_port);
if ($opt{wss}) {
    my $ca = PgNearTest::CA->new;
    my $cert = $ca->issue(name => 'pgnear-wss', cn => 'localhost', owner => undef,
                          san => ['DNS:localhost', 'IP:127.0.0.1']);
    $wss_port = PgNearTest::free_port();
    $wss = PgNearTest::Proxy->new(regions => [$pg], args => ['-q'],
        settings => { %settings, websocket_port => $wss_port, websocket_tls => 'on',
                      client_tls => 'allow',
                      client_tls_cert_file => $cert->{cert}, client_tls_key_file => $cert->{key} });
}

my %targets = (
    direct       => ['--tcp', '127.0.0.1:' . $pg->port],
    'pgnear-tcp' => ['--tcp', '127.0.0.1:' . $pgnear->port],
    'pgnear-ws'  => ['--ws', "127.0.0.1:$ws_port/"],
    ($wss ? ('pgnear-tls' => ['--tls', '127.0.0.1:' . $wss->port],
             'pgnear-wss' => ['--wss', "127.0.0.1:$wss_port/"]) : ()),
);
my %proxy_of = ('pgnear-tcp' => $pgnear, 'pgnear-ws' => $pgnear,
                ($wss ? ('pgnear-tls' => $wss, 'pgnear-wss' => $wss) : ()));
my @order = grep { $targets{$_} } qw(direct pgnear-tcp pgnear-ws pgnear-tls pgnear-wss);
# What each path through pgnear is compared with: the same encryption, without the WebSocket.
my %versus = ('pgnear-ws' => 'pgnear-tcp', 'pgnear-tls' => 'pgnear-tcp', 'pgnear-wss' => 'pgnear-tls');

my @loads = (
    { name => 'small-1', args => ['-c', 1] },
    { name => 'small-8', args => ['-c', 8] },
    { name => 'big-2',   args => ['-c', 2, '--big'] },
    { name => 'upload-2', args => ['-c', 2, '--upload', 1000000] },
);
if ($opt{only} ne '') {
    my %want = map { $_ => 1 } split /,/, $opt{only};
    @loads = grep { $want{ $_->{name} } } @loads;
    die "--only matches no load (small-1, small-8, big-2, upload-2)\n" unless @loads;
}

# User + system CPU seconds of a running process so far.
sub cpu_seconds {
    my ($pid) = @_;
    my ($user, $sys) = PgNearTest::proc_cpu_ticks($pid) or die "process $pid is gone\n";
    return ($user + $sys) / POSIX::sysconf(POSIX::_SC_CLK_TCK());
}

# One run of the client: its RESULT line as a hash (with cpu_us, pgnear's CPU
# microseconds per transaction, for the paths through pgnear); any failure ends the bench.
sub run_one {
    my ($load, $target) = @_;
    my $proxy = $proxy_of{$target};
    my $cpu_before = $proxy ? cpu_seconds($proxy->pid) : 0;
    my @cmd = ($client, @{ $targets{$target} }, @{ $load->{args} }, '-T', $opt{seconds},
               '-U', $PgNearTest::APP_USER, '-d', $PgNearTest::APP_DB, '--label', $target);
    my ($c, $o, $e) = run_cmd(\@cmd, timeout => $opt{seconds} * 4 + 60,
                              env => { PGPASSWORD => $PgNearTest::APP_PASSWORD });
    my ($line) = $o =~ /^RESULT (.*)$/m;
    die "ws_bench failed on $target ($load->{name}, exit $c):\n$o$e" if $c || !defined $line;
    my %r = map { split /=/, $_, 2 } split ' ', $line;
    die "ws_bench: no transactions on $target ($load->{name})\n" unless $r{transactions};
    $r{cpu_us} = $proxy ? (cpu_seconds($proxy->pid) - $cpu_before) / $r{transactions} * 1e6 : 0;
    return \%r;
}

sub median {
    my @s = sort { $a <=> $b } @_;
    return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

printf "ws_bench %s s per run, %d rounds, interleaved %s; pgnear workers %d, auth passthrough, "
     . "pool_mode %s\n", $opt{seconds}, $opt{rounds}, join(' ', @order), $opt{workers},
     $opt{pool_mode};
for my $load (@loads) {
    my %res;
    for my $round (1 .. $opt{rounds}) {
        push @{ $res{$_} }, run_one($load, $_) for @order;
        printf "  %s round %d: %s\n", $load->{name}, $round,
            join(', ', map { sprintf '%s %.0f', $_, $res{$_}[-1]{tps} } @order);
    }
    my %tps = map { my $t = $_; $t => median(map { $_->{tps} } @{ $res{$t} }) } @order;
    my %lat = map { my $t = $_; $t => median(map { $_->{latency_ms} } @{ $res{$t} }) } @order;
    my %bps = map { my $t = $_; $t => median(map { $_->{bytes_per_s} } @{ $res{$t} }) } @order;
    my %cpu = map { my $t = $_; $t => median(map { $_->{cpu_us} } @{ $res{$t} }) } @order;
    print "$load->{name} (@{ $load->{args} }), medians:\n";
    printf "  %-11s %10s %11s %9s %8s   %-22s %11s  %s\n", 'path', 'tps', 'latency ms', 'MB/s',
        '/direct', 'versus', 'pgnear CPU', 'versus';
    for my $t (@order) {
        my $v = $versus{$t};
        printf "  %-11s %10.0f %11.4f %9.2f %8.3f   %-22s %11s  %s\n", $t, $tps{$t}, $lat{$t},
            $bps{$t} / 1e6, $tps{$t} / $tps{direct},
            $v ? sprintf('%.3f x %s', $tps{$t} / $tps{$v}, $v) : '',
            $proxy_of{$t} ? sprintf('%.1f us/tx', $cpu{$t}) : '',
            $v ? sprintf('%.3f x', $cpu{$t} / $cpu{$v}) : '';
    }
    # Ratios round by round show how far one round moves.
    for my $t (grep { /-wss?$/ } @order) {
        printf "  per round %s/%s: %s\n", $t, $versus{$t}, join(' ', map {
            sprintf '%.3f', $res{$t}[$_]{tps} / $res{ $versus{$t} }[$_]{tps} } 0 .. $opt{rounds} - 1);
    }
}
print "ratios: median tps over the median tps of direct, and over the median of the path it is "
    . "compared with (same encryption, no WebSocket); pgnear CPU: medians of pgnear's user + "
    . "system time per transaction, and their ratio\n";
