package PgNearBouncer;

# PgBouncer (the Debian package) beside pgnear in the benchmarks, configured
# in one place:
#   PgNearBouncer->new(databases => {name => 'host=... port=... dbname=...'},
#       users => {name => SCRAM verifier}, pool_mode => 'session',
#       settings => {key => value, ...} (more of its [pgbouncer] section),
#       name => 'pgbouncer' (its directory's), start => 1,
#       wrap => [command ...] (run in the foreground under it, e.g. valgrind))
#   ->port, ->pid, ->dir, ->start, ->stop
# It listens on 127.0.0.1 only, no Unix socket, and logs clients in with
# SCRAM from its auth_file.  PgBouncer refuses to run as root: it runs as
# postgres (setpriv keeps the open-files limit, runuser would not), its
# files belong to postgres.  A daemon writes its pid file; a wrapped one is
# this process's child, stopped with SIGINT (its safe shutdown, so that
# the wrapper writes what it measured).  Whatever is running when the
# process ends is stopped.

use strict;
use warnings;
use Carp qw(croak);
use IO::Socket::INET;
use PgNearTest;

my @running;

sub new {
    my ($class, %o) = @_;
    my $bin = PgNearTest::require_tool('pgbouncer'); # dies loudly when missing
    my $dir = PgNearTest::tmpdir(name => $o{name} // 'pgbouncer', mode => 0755, owner => 'postgres');
    my $self = bless { bin => $bin, dir => $dir, port => PgNearTest::free_port(),
                       wrap => $o{wrap}, owner_pid => $$ }, $class;
    my %users = %{ $o{users} // croak 'PgNearBouncer: users' };
    PgNearTest::write_file("$dir/userlist.txt", join('', map { qq{"$_" "$users{$_}"\n} } sort keys %users),
        mode => 0600, owner => 'postgres');
    my %dbs = %{ $o{databases} // croak 'PgNearBouncer: databases' };
    my %set = (listen_addr => '127.0.0.1', listen_port => $self->{port}, unix_socket_dir => '',
               auth_type => 'scram-sha-256', auth_file => "$dir/userlist.txt",
               pool_mode => $o{pool_mode} // 'session', logfile => "$dir/pgbouncer.log",
               ($self->{wrap} ? () : (pidfile => "$dir/pgbouncer.pid")), %{ $o{settings} // {} });
    PgNearTest::write_file("$dir/pgbouncer.ini",
        "[databases]\n" . join('', map { "$_ = $dbs{$_}\n" } sort keys %dbs)
      . "[pgbouncer]\n" . join('', map { "$_ = $set{$_}\n" } sort keys %set),
        mode => 0644, owner => 'postgres');
    $self->start if $o{start} // 1;
    return $self;
}

sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }
sub dir  { $_[0]{dir} }

sub start {
    my ($self) = @_;
    my @as_postgres = ('setpriv', '--reuid=postgres', '--regid=postgres', '--init-groups');
    if ($self->{wrap}) {
        my $pid = fork // die "fork: $!\n";
        if ($pid == 0) {
            exec @as_postgres, @{ $self->{wrap} }, $self->{bin}, "$self->{dir}/pgbouncer.ini";
            die "exec: $!\n";
        }
        $self->{pid} = $pid;
    } else {
        system(@as_postgres, $self->{bin}, '-d', "$self->{dir}/pgbouncer.ini") == 0
            or die "pgbouncer failed to start\n";
        PgNearTest::wait_until(sub { -s "$self->{dir}/pgbouncer.pid" }, timeout => 10)
            or die "pgbouncer wrote no pid file\n";
        chomp($self->{pid} = PgNearTest::slurp_file("$self->{dir}/pgbouncer.pid"));
    }
    PgNearTest::wait_until(sub { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port}) },
        timeout => 120) or die "pgbouncer does not listen on port $self->{port}\n";
    push @running, $self;
    return $self;
}

# Stops it; returns a wrapped one's exit status (0 for a daemon).
sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return 0;
    @running = grep { $_ != $self } @running;
    if ($self->{wrap}) {
        kill 'INT', $pid;
        waitpid $pid, 0;
        return $? >> 8;
    }
    kill 'TERM', $pid;
    PgNearTest::wait_until(sub { !kill 0, $pid }, timeout => 10);
    return 0;
}

END {
    local $?;
    $_->stop for grep { $_->{owner_pid} == $$ } @running;
}

1;
