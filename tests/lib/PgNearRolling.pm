package PgNearRolling;

# Helpers for tests/integration/222_rolling_restart.t: a fleet of pgnear
# instances behind HAProxy, restarted one at a time under pgbench.
#
#   spawn(\@argv, out => FILE, err => FILE, cwd => DIR, env => {K => V}, register => 1)
#       -> pid: the command in the background, stdout/stderr to files; with
#          register (the default) the harness's guardian kills it if the
#          test is killed (register($pid) does that for a pid forked
#          elsewhere).  reap($pid) -> exit code (128+N: signal N) or
#          undef while it runs; wait_pid($pid, timeout => 10) -> the same,
#          after a bounded wait.
#   tcp_sockets($pid, $port, 'listen' | 'established') -> how many TCP
#       sockets process $pid holds whose local port is $port in that state
#       (from /proc: no probe connection that pgnear would log).
#   pgbench_log($prefix) -> { committed => N, failed => N, by_client => {id => N},
#       ends => [epoch seconds of each committed transaction's end],
#       files => [...] } from pgbench -l --log-prefix=$prefix (one file per
#       thread: PREFIX.PID, PREFIX.PID.1, ...)
# (HAProxy in front of them: PgNearHAProxy.pm.)

use strict;
use warnings;

use Carp qw(croak);
use IO::Select;
use IO::Socket::IP;
use IO::Socket::UNIX;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM);
use Time::HiRes ();
use Exporter qw(import);
use PgNearTest ();

our @EXPORT_OK = qw(spawn reap wait_pid tcp_sockets pgbench_log);

my %EXIT;          # pid => exit code, once reaped
my %REGISTERED;    # pids in the harness's registry

sub spawn {
    my ($cmd, %o) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $o{out} // '/dev/null' or POSIX::_exit(126);
        open STDERR, '>', $o{err} // '/dev/null' or POSIX::_exit(126);
        if (defined $o{cwd}) { chdir $o{cwd} or POSIX::_exit(126) }
        for my $k (keys %{ $o{env} // {} }) { $ENV{$k} = $o{env}{$k} }
        { no warnings 'exec'; exec { $cmd->[0] } @$cmd; }
        print STDERR "spawn: exec $cmd->[0] failed: $!\n";
        POSIX::_exit(127);
    }
    if ($o{register} // 1) {
        PgNearTest::_reg_add("pid $pid");
        $REGISTERED{$pid} = 1;
    }
    return $pid;
}

# A process forked elsewhere, killed by the guardian if the test is; reap() unregisters it.
sub register {
    my ($pid) = @_;
    PgNearTest::_reg_add("pid $pid");
    $REGISTERED{$pid} = 1;
}

sub reap {
    my ($pid) = @_;
    return $EXIT{$pid} if exists $EXIT{$pid};
    my $r = waitpid($pid, WNOHANG);
    return undef if $r == 0;
    my $st = $?;
    PgNearTest::_reg_del("pid $pid") if delete $REGISTERED{$pid};
    return $EXIT{$pid} = $r != $pid ? -1
                       : POSIX::WIFEXITED($st) ? POSIX::WEXITSTATUS($st)
                       : 128 + POSIX::WTERMSIG($st);
}

sub wait_pid {
    my ($pid, %o) = @_;
    PgNearTest::wait_until(sub { defined reap($pid) }, timeout => $o{timeout} // 10, interval => 0.05);
    return reap($pid);
}

my %STATE = (listen => '0A', established => '01');
sub tcp_sockets {
    my ($pid, $port, $state) = @_;
    my $st = $STATE{$state} // croak "tcp_sockets: state listen or established";
    my %ino;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $f or next;
        <$fh>;
        while (<$fh>) {
            my @f = split;
            next unless @f > 9 && $f[3] eq $st && $f[1] =~ /:([0-9A-F]{4})$/ && hex($1) == $port;
            $ino{ $f[9] } = 1;
        }
    }
    return 0 unless %ino;
    opendir my $dh, "/proc/$pid/fd" or return 0;
    my $n = 0;
    for my $fd (readdir $dh) {
        my $l = readlink("/proc/$pid/fd/$fd") // next;
        $n++ if $l =~ /^socket:\[(\d+)\]$/ && $ino{$1};
    }
    return $n;
}

# Lines: client_id transaction_no time script_no time_epoch time_us [lag] [retries];
# time is "failed" for a failed transaction (pgbench 15).
sub pgbench_log {
    my ($prefix) = @_;
    my %r = (committed => 0, failed => 0, other => 0, by_client => {}, ends => [], files => []);
    for my $f (sort glob("$prefix.*")) {
        next unless $f =~ /\Q$prefix\E\.\d+(?:\.\d+)?$/;
        push @{ $r{files} }, $f;
        open my $fh, '<', $f or die "pgbench_log: $f: $!";
        while (my $l = <$fh>) {
            my @f = split ' ', $l;
            if (@f >= 6 && $f[2] =~ /^\d+$/) {
                $r{committed}++;
                $r{by_client}{ $f[0] }++;
                push @{ $r{ends} }, $f[4] + $f[5] / 1e6;
            } elsif (@f >= 3 && $f[2] eq 'failed') {
                $r{failed}++;
            } else {
                $r{other}++;
            }
        }
    }
    return \%r;
}


1;
