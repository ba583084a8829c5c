package PgNearHAProxy;

# HAProxy (the Debian package) in TCP mode, balance roundrobin, in front of
# pgnear instances on 127.0.0.1, for the fleet tests:
#   PgNearHAProxy->new(servers => [[name, port], ...], port => N,
#       check => 'inter 1s' (health checks; undef: none), retries => 0,
#       redispatch => 0)
#   ->port, ->log_contents, ->running, ->stop, ->stats_cmd('show stat'),
#   ->server_stats {name => {status, chkfail, ...}}, ->server_status
#   {name => status}, ->wait_status({name => 'UP'}, timeout => 15),
#   ->log_records (its tcplog lines), ->terminations {state => count}
# retries 0 (the default) lets what a backend does to a connection (a
# refusal, a reset) reach the client unhidden.  It is killed when the test
# ends, however it ends (PgNearTest's registry).

use strict;
use warnings;
use Carp qw(croak);
use IO::Socket::UNIX;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM);
use PgNearTest;

sub new {
    my ($class, %o) = @_;
    my $bin = PgNearTest::require_tool('haproxy');    # dies loudly when missing
    my @servers = @{ $o{servers} // croak 'HAProxy: servers' };
    my $dir = $o{dir} // PgNearTest::tmpdir(name => 'haproxy', mode => 0755);
    my $self = bless { bin => $bin, dir => $dir, port => $o{port} // PgNearTest::free_port(),
                       stats => "$dir/stats.sock", cfg => "$dir/haproxy.cfg", log => "$dir/haproxy.log",
                       owner_pid => $$ }, $class;
    my $check = defined $o{check} ? " check $o{check}" : '';
    my $lines = join '', map { "    server $_->[0] 127.0.0.1:$_->[1]$check\n" } @servers;
    my $retries = $o{retries} // 0;
    my $redispatch = $o{redispatch} ? "    option redispatch\n" : '';
    # timeout client/server: longer than any phase of a test
    PgNearTest::write_file($self->{cfg}, <<"EOF");
global
    maxconn 4000
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
    retries $retries
$redispatch
frontend fe
    bind 127.0.0.1:$self->{port}
    default_backend be

backend be
    balance roundrobin
$lines
EOF
    my ($rc, $out, $err) = PgNearTest::run_cmd([$bin, '-c', '-f', $self->{cfg}], timeout => 30);
    die "HAProxy: haproxy -c rejects $self->{cfg}:\n$out$err" if $rc != 0;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $self->{log} or POSIX::_exit(126);
        open STDERR, '>', "$self->{log}.stderr" or POSIX::_exit(126);
        { no warnings 'exec'; exec { $bin } $bin, '-db', '-f', $self->{cfg}; }
        POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    PgNearTest::_reg_add("pid $pid");
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
    return 1 if waitpid($self->{pid}, WNOHANG) == 0;
    PgNearTest::_reg_del("pid $self->{pid}");
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
    local $?;    # waitpid's status of HAProxy must not become the exit status of a test's END
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
