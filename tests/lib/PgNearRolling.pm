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
#   http_get($port, $path) -> (status, body) from 127.0.0.1:$port, or () when
#       nothing answered
#   PgNearRolling::HAProxy->new(servers => [[name, port], ...], dir => DIR)
#       HAProxy (the Debian package) in TCP mode, balance roundrobin,
#       TCP health checks, option tcplog to its log; retries 0, so that a
#       refused connection to a backend is not hidden from the client.
#       ->port, ->running, ->stop, ->log_contents, ->server_status -> {name => status},
#       ->wait_status({name => 'UP'}, timeout => 15),
#       ->terminations -> {state => count} from the tcplog lines

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

our @EXPORT_OK = qw(spawn reap wait_pid tcp_sockets pgbench_log http_get);

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

sub http_get {
    my ($port, $path) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 5)
      or return ();
    binmode $s;
    print $s "GET $path HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    my $sel = IO::Select->new($s);
    my $text = '';
    my $deadline = Time::HiRes::time() + 10;
    while (Time::HiRes::time() < $deadline) {
        last unless $sel->can_read(1);
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $text .= $buf;
    }
    close $s;
    return () unless $text =~ m{\AHTTP/1\.[01] (\d+)};
    my $status = $1;
    my ($body) = $text =~ /\r?\n\r?\n(.*)\z/s;
    return ($status, $body // '');
}

# ====================================================================== HAProxy

package PgNearRolling::HAProxy;

use strict;
use warnings;
use Carp qw(croak);
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);

sub new {
    my ($class, %o) = @_;
    my $bin = PgNearTest::require_tool('haproxy');    # dies loudly when missing
    my @servers = @{ $o{servers} // croak 'HAProxy: servers' };
    my $dir = $o{dir} // PgNearTest::tmpdir(name => 'haproxy', mode => 0755);
    my $self = bless { bin => $bin, dir => $dir, port => $o{port} // PgNearTest::free_port(),
                       stats => "$dir/stats.sock", cfg => "$dir/haproxy.cfg", log => "$dir/haproxy.log",
                       owner_pid => $$ }, $class;
    my $lines = join '', map { "    server $_->[0] 127.0.0.1:$_->[1] check inter 1s\n" } @servers;
    # timeout client/server: longer than any phase of the test (pgbench -T
    # and the waits after it); retries 0: what a backend does to a
    # connection (refuse, reset) reaches the client unhidden.
    PgNearTest::write_file($self->{cfg}, <<"EOF");
global
    maxconn 2000
    stats socket $self->{stats} mode 600 level admin
    log stdout format raw local0 info

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout check 2s
    retries 0

frontend fe
    bind 127.0.0.1:$self->{port}
    default_backend be

backend be
    balance roundrobin
$lines
EOF
    my ($rc, $out, $err) = PgNearTest::run_cmd([$bin, '-c', '-f', $self->{cfg}], timeout => 30);
    die "HAProxy: haproxy -c rejects $self->{cfg}:\n$out$err" if $rc != 0;
    $self->{pid} = PgNearRolling::spawn([$bin, '-db', '-f', $self->{cfg}], out => $self->{log},
                                        err => "$self->{log}.stderr");
    PgNearTest::wait_until(sub { -S $self->{stats} || !$self->running }, timeout => 15, interval => 0.05);
    die "HAProxy did not start:\n" . $self->log_contents unless $self->running && -S $self->{stats};
    return $self;
}

sub port { $_[0]{port} }
sub log_contents {
    my ($self) = @_;
    return join '', map { -e $_ ? PgNearTest::slurp_file($_) : '' } $self->{log}, "$self->{log}.stderr";
}

sub running {
    my ($self) = @_;
    return 0 unless $self->{pid};
    return 1 unless defined PgNearRolling::reap($self->{pid});
    delete $self->{pid};
    return 0;
}

sub stats_cmd {
    my ($self, $cmd) = @_;
    my $s = IO::Socket::UNIX->new(Peer => $self->{stats}, Type => SOCK_STREAM) or return undef;
    print $s "$cmd\n";
    local $/;
    my $r = <$s>;
    close $s;
    return $r;
}

# {server name => {status, chkfail, chkdown, ...}} of backend be.
sub server_stats {
    my ($self) = @_;
    my $csv = $self->stats_cmd('show stat') // return {};
    my @lines = split /\n/, $csv;
    my $hdr = shift @lines // return {};
    $hdr =~ s/^# //;
    my @cols = split /,/, $hdr;
    my %out;
    for my $l (@lines) {
        my %row;
        @row{@cols} = split /,/, $l, -1;
        next unless ($row{pxname} // '') eq 'be' && ($row{svname} // '') !~ /^(?:BACKEND|FRONTEND)$/;
        $out{ $row{svname} } = \%row;
    }
    return \%out;
}

sub server_status {
    my ($self) = @_;
    my $s = $self->server_stats;
    return { map { $_ => $s->{$_}{status} } keys %$s };
}

sub wait_status {
    my ($self, $want, %o) = @_;
    return PgNearTest::wait_until(sub {
        my $s = $self->server_status;
        !grep { ($s->{$_} // '') !~ /^\Q$want->{$_}\E\b/ } keys %$want;
    }, timeout => $o{timeout} // 15, interval => 0.1);
}

# tcplog: "... fe be/p1 Tw/Tc/Tt BYTES TS actconn/feconn/beconn/srv_conn/retries sq/bq"
sub log_records {
    my ($self) = @_;
    my @r;
    for my $l (split /\n/, $self->log_contents) {
        next unless $l =~ m{ fe be/(\S+) (-?\d+)/(-?\d+)/(\+?-?\d+) (\+?\d+) (\S\S) \d+/\d+/\d+/\d+/(\+?\d+) };
        push @r, { server => $1, tc => $3, bytes => $5, state => $6, retries => $7, line => $l };
    }
    return \@r;
}

sub terminations {
    my ($self) = @_;
    my %t;
    $t{ $_->{state} }++ for @{ $self->log_records };
    return \%t;
}

sub stop {
    my ($self) = @_;
    return unless $self->running;
    kill 'TERM', $self->{pid};
    PgNearTest::wait_until(sub { !$self->running }, timeout => 10, interval => 0.05);
    if ($self->running) { kill 'KILL', $self->{pid}; PgNearTest::wait_until(sub { !$self->running }, timeout => 5) }
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    eval { $self->stop } if $$ == $self->{owner_pid};
}

1;
