#!/usr/bin/perl
# Instructions pgnear spends per transaction through its WebSocket port
# against its TCP port, counted by callgrind, by bench/callgrind_relay.pl's
# method: pgnear runs under valgrind --tool=callgrind (one worker,
# auth = passthrough) from start to SIGTERM while one bench/ws_bench
# connection runs a fixed number of simple Query transactions through it:
# once --transactions, once twice as many.  The difference over the extra
# transactions is the relay's cost per transaction, free of startup, login
# and exit; callgrind counts user-space instructions, so the figure is
# stable on a shared, noisy machine.
#
#   bench/callgrind_ws.pl [--transactions 2000] [--rounds 3] [--paths tcp,ws,tls,wss] [--big]
#                         [--upload BYTES] [--keep DIR]
#
# --keep copies each path's callgrind output files into DIR (PATH-N.out, N
# the transactions of that run), for callgrind_annotate: what the extra
# transactions cost, function by function, is the difference of two files.
#
# --big runs SELECT repeat('x', 1000000) (1 MB a row; give fewer
# transactions, e.g. 500) instead of SELECT 1; its count moves with how
# much each read finds (the timing of the server's writes), so it is not as
# repeatable as SELECT 1's.  --upload BYTES sends a query of that size
# (SELECT length('xxx...')): the client-to-server direction.  tls is the TCP port with PostgreSQL's own TLS
# (an SSLRequest first), what wss is to be compared with.  Compare two builds by
# pointing $PGNEAR (or --binary) at each in turn.  Needs valgrind,
# PostgreSQL 15 and bench/ws_bench (`make bench/ws_bench` in the build
# directory, or $WS_BENCH).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use Getopt::Long;
use List::Util qw(min max);
use PgNearTest;

$| = 1;
my %opt = (transactions => 2000, rounds => 3, paths => 'tcp,ws', big => 0);
GetOptions(\%opt, 'transactions=i', 'rounds=i', 'paths=s', 'big!', 'binary=s', 'keep=s', 'upload=i') or die "bad options\n";
my $root = "$FindBin::RealBin/..";
my $bin = $opt{binary} // $ENV{PGNEAR} // "$root/build/pgnear";
die "no pgnear binary at $bin: build first\n" unless -x $bin;
my $client = $ENV{WS_BENCH} // "$root/build/bench/ws_bench";
die "no load client at $client: run `make bench/ws_bench` in the build directory\n"
    unless -x $client;
my $valgrind = require_tool('valgrind');
my @paths = split /,/, $opt{paths};
die "--paths takes tcp, ws, tls and wss\n" if grep { !/^(tcp|ws|tls|wss)$/ } @paths;
die "--keep $opt{keep}: not a directory\n" if defined $opt{keep} && !-d $opt{keep};

my $pg = PgNearTest::Cluster->new(name => 'cgws', location => '39.04, -77.49',
    hba => ['local all all trust',
            'host all app 127.0.0.1/32 password', 'host all app ::1/128 password',
            'host all all 127.0.0.1/32 scram-sha-256', 'host all all ::1/128 scram-sha-256']);

# The proxy's binary is a wrapper that runs the real one under callgrind (same process ID).
my $dir = tmpdir(name => 'callgrind-ws', mode => 0755);
my $wrapper = write_file("$dir/pgnear-callgrind", <<"SH", mode => 0755);
#!/bin/sh
exec $valgrind --tool=callgrind --callgrind-out-file=$dir/callgrind.out.%p $bin "\$@"
SH
my %tls;
if (grep { /^(tls|wss)$/ } @paths) {
    my $cert = PgNearTest::CA->new->issue(name => 'pgnear-wss', cn => 'localhost', owner => undef,
                                          san => ['DNS:localhost', 'IP:127.0.0.1']);
    %tls = (client_tls => 'allow', client_tls_cert_file => $cert->{cert},
            client_tls_key_file => $cert->{key});
}
my $ws_port = PgNearTest::free_port();
my %settings = (auth => 'passthrough', server_tls => 'disable', workers => 1,
                websocket_port => $ws_port,
                # a health check logs in (SCRAM: tens of millions of instructions): not mid-run
                health_check_interval => '1h');

# Instructions (Ir) of one whole pgnear run (start, one ws_bench connection of n
# transactions over path, SIGTERM): callgrind writes its totals as the process exits.
sub run_transactions {
    my ($path, $n) = @_;
    unlink glob("$dir/callgrind.out.*");
    my $proxy = PgNearTest::Proxy->new(regions => [$pg], binary => $wrapper, args => ['-q'],
        start_timeout => 120,
        settings => { %settings, ($path eq 'tls' ? %tls : ()),
                      ($path eq 'wss' ? (%tls, websocket_tls => 'on') : ()) });
    my @target = $path =~ /^(tcp|tls)$/ ? ("--$path", '127.0.0.1:' . $proxy->port)
               : ("--$path", "127.0.0.1:$ws_port/");
    my ($c, $o, $e) = run_cmd([$client, @target, '-c', 1, '-t', $n, ($opt{big} ? '--big' : ()),
                               ($opt{upload} ? ('--upload', $opt{upload}) : ()),
                               '-U', $PgNearTest::APP_USER, '-d', $PgNearTest::APP_DB],
                              timeout => 600, env => { PGPASSWORD => $PgNearTest::APP_PASSWORD });
    die "ws_bench failed over $path (exit $c):\n$o$e" if $c;
    my $st = $proxy->stop(timeout => 60);
    die "pgnear exited with status $st\n" if $st;
    my ($file) = glob("$dir/callgrind.out.*") or die "no callgrind output\n";
    my $text = PgNearTest::slurp_file($file);
    write_file("$opt{keep}/$path-$n.out", $text) if defined $opt{keep};
    $text =~ /^(?:summary|totals):\s+(\d+)/m or die "no instruction total in $file\n";
    return $1;
}

my $n = $opt{transactions};
printf "ws_bench -c 1, %s, %d and %d transactions, pgnear auth passthrough; Ir per transaction:\n",
    $opt{big} ? "SELECT repeat('x', 1000000)"
    : $opt{upload} ? "a query of $opt{upload} bytes" : 'SELECT 1', $n, 2 * $n;
my %per;
for my $round (1 .. $opt{rounds}) {
    for my $path (@paths) {
        my $once = run_transactions($path, $n);
        my $twice = run_transactions($path, 2 * $n);
        push @{ $per{$path} }, ($twice - $once) / $n;
        printf "  round %d %-3s: %.0f (%d Ir for %d, %d Ir for %d)\n", $round, $path,
            $per{$path}[-1], $once, $n, $twice, 2 * $n;
    }
}
my %median;
for my $path (@paths) {
    my @sorted = sort { $a <=> $b } @{ $per{$path} };
    $median{$path} = $sorted[$#sorted / 2];
    printf "%-3s median %.0f Ir per transaction (min %.0f, max %.0f)\n", $path, $median{$path},
        min(@sorted), max(@sorted);
}
# Each WebSocket path against the TCP path with the same encryption, and TLS against none.
for ([ws => 'tcp'], [tls => 'tcp'], [wss => 'tls'], [wss => 'tcp']) {
    my ($p, $q) = @$_;
    printf "%s / %s: %.2f\n", $p, $q, $median{$p} / $median{$q} if $median{$p} && $median{$q};
}
