#!/usr/bin/perl
# Instructions pgnear spends per pgbench transaction, counted by callgrind:
# pgnear runs under valgrind --tool=callgrind (one worker) from start to
# SIGTERM while one pgbench session runs a fixed number of transactions
# through it: once --transactions, once twice as many.  The difference over
# the extra transactions is the relay's cost per transaction, free of
# startup, login and exit: callgrind counts user-space instructions, not
# time, so the figure is stable on a shared, noisy machine.
#
#   bench/callgrind_relay.pl [--transactions 2000] [--rounds 3] [--mode simple] [--tls]
#                            [--pool_mode transaction] [--pool_size 2] [--clients 1]
#                            [--top 25] [--keep DIR] [--peer pgbouncer] [--sleep MS]
#                            [--set name=value ...]
#
# --clients N runs N pgbench clients (-j 2 from 2 clients on), each of
# --transactions (and twice as many); the figure is per transaction of any
# client.  With more clients than --pool_size under transaction pooling
# they wait for connections, as a crowd does.
#
# --top N prints, after the rounds, the N functions with the most
# instructions per transaction, inclusive (a caller counts its callees)
# and self, from callgrind_annotate of the last round's two runs, one
# subtracted from the other: where a transaction's instructions go.
# --keep DIR keeps the last round's callgrind outputs (once.out, twice.out)
# and their annotations there, for callgrind_annotate or kcachegrind.
#
# --pool_mode transaction: the session's transactions through a transaction
# pool of 2 connections (auth = scram, so that pgnear logs in for it), each
# transaction's connection given back at its end, named statements followed
# across them (-M prepared).
#
# --sleep MS runs `SELECT pg_sleep(MS / 1000.0)` instead of pgbench's select:
# the server, not the proxy slowed by callgrind, then holds the connections,
# so that with more clients than --pool_size they wait for them as a crowd
# does at full speed (without it, under callgrind, every transaction finds
# its connection idle).
#
# --set name=value adds a setting of pgnear's (repeatable): the cost of a
# feature turned on, against the same run without it (query_timeout=30s).
#
# --peer pgbouncer counts PgBouncer's instructions instead, configured alike:
# the same pool mode and pool size, SCRAM from its auth_file under
# transaction pooling (trust behind it, as pgnear's passthrough, in session
# mode), one process, run as postgres under callgrind and stopped with
# SIGINT; the same subtraction gives its cost per transaction.
#
# Compare two builds by pointing $PGNEAR (or --binary) at each in turn.
# Needs valgrind, pgbench and PostgreSQL 15 (and pgbouncer for --peer).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use Getopt::Long;
use List::Util qw(min max);
use PgNearTest;
use PgNearBouncer;

$| = 1;
my %opt = (transactions => 2000, rounds => 3, mode => 'simple', tls => 0, pool_mode => 'session',
           top => 0, clients => 1, pool_size => 2);
GetOptions(\%opt, 'transactions=i', 'rounds=i', 'mode=s', 'tls!', 'binary=s', 'pool_mode=s', 'top=i', 'keep=s', 'clients=i', 'pool_size=i', 'peer=s', 'sleep=f', 'set=s@')
    or die "bad options\n";
my $bin = $opt{binary} // $ENV{PGNEAR} // "$FindBin::RealBin/../build/pgnear";
die "no pgnear binary at $bin: build first\n" unless -x $bin;
my $valgrind = require_tool('valgrind');
require_tool('pgbench');

my $pg = PgNearTest::Cluster->new(name => 'cg', location => '39.04, -77.49');
$pg->psql_admin("CREATE DATABASE bench OWNER app");
my ($rc, $out, $err) = pgbench(['-i', '-q', '-s', 1], $pg->conninfo(dbname => 'bench'), timeout => 300);
die "pgbench -i failed: $err\n" if $rc;

# The proxy's binary is a wrapper that runs the real one under callgrind (same process ID).
my $dir = $opt{keep} // tmpdir(name => 'callgrind', mode => 0755);
-d $dir or mkdir $dir or die "cannot make $dir: $!\n";
my $wrapper = write_file("$dir/pgnear-callgrind", <<"SH", mode => 0755);
#!/bin/sh
exec $valgrind --tool=callgrind --callgrind-out-file=$dir/callgrind.out.%p $bin "\$@"
SH
my %pooled;
if ($opt{pool_mode} eq 'transaction') {
    my $users = write_file("$dir/userlist.txt", qq{"app" "} . $pg->scram_verifier('app') . qq{"\n});
    %pooled = (pool_mode => 'transaction', pool_size => $opt{pool_size}, auth => 'scram', auth_file => $users);
}
my $proxy = defined $opt{peer} ? pgbouncer_under_callgrind()
    : PgNearTest::Proxy->new(regions => [$pg], binary => $wrapper, args => ['-q'],
    start => 0, start_timeout => 120,
    settings => { server_tls => $opt{tls} ? 'require' : 'disable', workers => 1,
                  # a health check logs in with SCRAM (tens of millions of instructions): not mid-run
                  health_check_interval => '1h', %pooled,
                  map { split /=/, $_, 2 } @{ $opt{set} // [] } });

# PgBouncer configured as pgnear is above, under callgrind in the foreground (not started yet).
sub pgbouncer_under_callgrind {
    die "--peer: only pgbouncer is known\n" unless $opt{peer} eq 'pgbouncer';
    chmod 0777, $dir; # callgrind writes its output there as postgres
    return PgNearBouncer->new(
        name => 'cg-pgbouncer', start => 0, pool_mode => $opt{pool_mode},
        databases => { bench => 'host=127.0.0.1 port=' . $pg->port . ' dbname=bench' },
        users => { app => $pg->scram_verifier('app') },
        settings => { default_pool_size => $opt{pool_size},
                      server_tls_sslmode => $opt{tls} ? 'require' : 'disable' },
        wrap => [$valgrind, '--tool=callgrind', "--callgrind-out-file=$dir/callgrind.out.%p"]);
}

# Instructions (Ir) of one whole pgnear run (start, one pgbench session of n transactions,
# SIGTERM): callgrind writes its totals as the process exits.  The output is kept as $keep.
sub run_transactions {
    my ($n, $keep) = @_;
    unlink glob("$dir/callgrind.out.*");
    $proxy->start;
    my @load = ('-S');
    if (defined $opt{sleep}) {
        write_file("$dir/sleep.sql", sprintf("SELECT pg_sleep(%g);\n", $opt{sleep} / 1000));
        @load = ('-f', "$dir/sleep.sql");
    }
    my ($c, $o, $e) = pgbench(['-n', @load, '-M', $opt{mode}, '-c', $opt{clients},
                               '-j', min($opt{clients}, 2), '-t', $n],
        conninfo_string(host => '127.0.0.1', port => $proxy->port, dbname => 'bench', user => 'app',
                        password => 'app-secret', sslmode => 'disable'),
        timeout => 600);
    die "pgbench failed: $e\n" if $c;
    my $st = $proxy->stop(timeout => 60);
    die "the proxy exited with status $st\n" if $st;
    my ($file) = glob("$dir/callgrind.out.*") or die "no callgrind output\n";
    my $text = PgNearTest::slurp_file($file);
    $text =~ /^(?:summary|totals):\s+(\d+)/m or die "no instruction total in $file\n";
    rename $file, $keep if defined $keep;
    return $1;
}

# Each function's Ir in a callgrind output, inclusive or self: name => Ir.
sub function_ir {
    my ($file, $inclusive) = @_;
    my ($c, $o, $e) = run_cmd([require_tool('callgrind_annotate'), "--inclusive=$inclusive",
                               '--threshold=100', '--auto=no', $file], timeout => 300);
    die "callgrind_annotate failed: $e\n" if $c;
    write_file("$file.$inclusive.txt", $o) if $opt{keep};
    my %ir;
    for (split /\n/, $o) {
        next unless /^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*?)\s+\[.*\]$/; # one line per object
        (my $n = $1) =~ tr/,//d;
        (my $name = $2) =~ s/^.*?:(?=[^:]+$)//; # file:function -> function
        $ir{$name} += $n;
    }
    return \%ir;
}

# The top functions of the difference between the runs of n and 2n transactions, per transaction.
sub print_top {
    my ($once, $twice, $n) = @_;
    for my $inclusive (qw(yes no)) {
        my ($one, $two) = (function_ir($once, $inclusive), function_ir($twice, $inclusive));
        my %per = map { $_ => (($two->{$_} // 0) - ($one->{$_} // 0)) / $n } keys %$two;
        my @top = (sort { $per{$b} <=> $per{$a} } keys %per)[0 .. $opt{top} - 1];
        printf "top %d functions by Ir per transaction, %s:\n", $opt{top},
            $inclusive eq 'yes' ? 'inclusive' : 'self';
        printf "  %8.0f  %s\n", $per{$_}, $_ for grep { defined } @top;
    }
}

my $n = $opt{transactions};
printf "%s: pgbench -S -M %s -c %d, server TLS %s, pool_mode %s, %d and %d transactions a client; Ir per transaction:\n",
    $opt{peer} // 'pgnear', $opt{mode}, $opt{clients}, $opt{tls} ? 'on' : 'off', $opt{pool_mode}, $n, 2 * $n;
my @per;
for my $round (1 .. $opt{rounds}) {
    my $once = run_transactions($n, "$dir/once.out");
    my $twice = run_transactions(2 * $n, "$dir/twice.out");
    push @per, ($twice - $once) / ($n * $opt{clients});
    printf "  round %d: %.0f (%d Ir for %d, %d Ir for %d)\n", $round, $per[-1], $once, $n, $twice,
        2 * $n;
}
my @sorted = sort { $a <=> $b } @per;
printf "median %.0f Ir per transaction (min %.0f, max %.0f)\n", $sorted[$#sorted / 2], min(@per),
    max(@per);
print_top("$dir/once.out", "$dir/twice.out", $n * $opt{clients}) if $opt{top} > 0;
