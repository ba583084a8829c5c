package PgNearPatroni;

# A Patroni cluster for the integration tests: one etcd (3.4, its v2 API
# on, for Patroni's etcd driver) and members of one PostgreSQL cluster,
# each a `patroni` process with its own REST API and PostgreSQL port on
# 127.0.0.1, all run as the OS user that runs PostgreSQL (postgres when
# the tests run as root; setpriv, which keeps the open-files limit, where
# runuser would drop it), everything under the test's temp root.
#
#   my $pc = PgNearPatroni->new(synchronous_mode => 0);   # m1 us-east, m2 us-west, m3 eu-west
#   my $l = $pc->wait_leader(timeout => 60);      # the member holding the lock, writable
#   $pc->wait_streaming(timeout => 60);           # every other member streams from it
#   $pc->psql($l, 'CREATE TABLE ...', dbname => 'movr');
#   $pc->switchover('m3');                        # patronictl switchover --force, waited for
#   my $old = $pc->kill_leader;                   # kill -9 of its Patroni and postmaster
#   my $new = $pc->wait_leader(not => $old->{name});
#   $pc->start_member($old);                      # Patroni again: it rejoins (pg_rewind)
#   my $s = $pc->stop_leader_patroni;             # SIGSTOP: PostgreSQL runs on as a primary
#   $pc->resume($s);                              # SIGCONT
#   my $body = $pc->cluster_body;                 # GET /cluster, as Patroni sends it
#   $pc->stop;                                    # also done at exit, on failure too
#
# A member is a hash: name, region (its tag pgnear_region), port (of
# PostgreSQL), rest_port, pgdata, sock (its Unix socket directory), conf
# (Patroni's YAML), log (Patroni's output, PostgreSQL's log in it), pid (of
# Patroni, the leader of a process group of its own; undef once killed).
#
# The dynamic settings keep failovers short on a busy machine (ttl 10,
# loop_wait 1, retry_timeout 3: a leader's lock expires 10 s after its
# Patroni last renewed it); pg_rewind is on (use_pg_rewind, data
# checksums and wal_log_hints), so that a former leader rejoins.  The etcd
# (v2) driver, not etcd3: Debian 12's Patroni 3.0.2 has an etcd3 bug
# where a leader woken from SIGSTOP takes the lock back.
#
# Logins: PostgreSQL's superuser postgres is trusted over the Unix socket
# (what psql() uses) and needs its password over TCP, like every other
# user: the replication user replicator, pg_rewind's rewinder, and
# PgNearTest's app and pgnear (made by new(), with the database movr),
# all scram-sha-256.
#
# Cleanup: each Patroni and etcd runs in a process group of its own; stop()
# (also in an END block, and PgNearTest's guardian if the test is killed:
# its registry has the groups as "pgroup" lines and the data directories)
# sends SIGKILL to the Patroni groups first, so that none starts PostgreSQL
# again, then stops each postmaster by its data directory (Patroni starts
# it in a session of its own), then etcd.

use strict;
use warnings;

use Carp qw(croak);
use JSON::PP ();
use POSIX ();
use Time::HiRes ();
use PgNearTest ();

my @CLUSTERS;    # to stop at exit

our $SUPERUSER_PASSWORD   = 'patroni-su-secret';
our $REPLICATION_USER     = 'replicator';
our $REPLICATION_PASSWORD = 'replicator-secret';
our $REWIND_USER          = 'rewinder';
our $REWIND_PASSWORD      = 'rewinder-secret';

# The members by default: names and their regions.
our @DEFAULT_MEMBERS = ([m1 => 'us-east'], [m2 => 'us-west'], [m3 => 'eu-west']);

# The path of a program, or death naming the Debian package that has it.
sub _need {
    my ($find, $tool, $package) = @_;
    my $path = eval { $find->() };
    return $path if $path;
    die "PgNearPatroni: '$tool' not found; install $package (scripts/install-deps.sh does)\n";
}

# new(members => [[name, region], ...], synchronous_mode => 0|1, timeout => 120):
# etcd, then the first member, which bootstraps the cluster, then the others,
# which copy it; returns once one leads and the others stream.
sub new {
    my ($class, %o) = @_;
    my $self = bless {
        patroni    => _need(sub { PgNearTest::require_tool('patroni') }, 'patroni', 'patroni'),
        patronictl => _need(sub { PgNearTest::require_tool('patronictl') }, 'patronictl', 'patroni'),
        etcd_bin   => _need(sub { PgNearTest::require_tool('etcd') }, 'etcd', 'etcd-server'),
        bindir     => PgNearTest::pg_bindir(),
        user       => PgNearTest::_pg_os_user(),
        scope      => $o{scope} // 'patroni',
        sync       => $o{synchronous_mode} ? 1 : 0,
        owner_pid  => $$,
        members    => [],
    }, $class;
    die "PgNearPatroni: Patroni's etcd driver needs python3-etcd; install it\n"
      unless grep { -d "$_/etcd" } glob('/usr/lib/python3/dist-packages'), glob('/usr/local/lib/python3*/dist-packages');
    push @CLUSTERS, $self;
    my $dir = $self->{dir} = PgNearTest::tmpdir(name => 'patroni', mode => 0700, owner => $self->{user});
    $self->{env} = { HOME => $dir, PATH => "$self->{bindir}:" . ($ENV{PATH} // '/usr/bin:/bin'),
                     LC_ALL => 'C.UTF-8' };
    $self->_start_etcd($o{timeout} // 30);
    my @spec = @{ $o{members} // \@DEFAULT_MEMBERS };
    for my $s (@spec) {
        my $m = { name => $s->[0], region => $s->[1], port => PgNearTest::free_port(),
                  rest_port => PgNearTest::free_port(), pgdata => "$dir/$s->[0]/data",
                  sock => "$dir/$s->[0]/sock", conf => "$dir/$s->[0].yml", log => "$dir/$s->[0].log" };
        die "PgNearPatroni: socket directory too long: $m->{sock}\n" if length($m->{sock}) > 90;
        for my $d ("$dir/$m->{name}", $m->{sock}) {
            mkdir $d or die "mkdir $d: $!";
            PgNearTest::_chown($self->{user}, $d);
        }
        chmod 0700, $m->{sock};
        PgNearTest::write_file($m->{conf}, $self->_yaml($m), mode => 0600, owner => $self->{user});
        push @{ $self->{members} }, $m;
    }
    my $timeout = $o{timeout} // 120;
    my $first = $self->{members}[0];
    $self->start_member($first);
    $self->wait_leader(name => $first->{name}, timeout => $timeout);
    $self->_create_roles($first);
    $self->start_member($_) for @{ $self->{members} }[1 .. $#{ $self->{members} }];
    $self->wait_streaming(timeout => $timeout);
    return $self;
}

sub dir       { $_[0]{dir} }
sub scope     { $_[0]{scope} }
sub etcd_port { $_[0]{etcd_port} }
sub members   { @{ $_[0]{members} } }

# The member named $name (croaks on an unknown name); a member hash passes through.
sub member {
    my ($self, $name) = @_;
    return $name if ref $name;
    my ($m) = grep { $_->{name} eq $name } @{ $self->{members} };
    croak "PgNearPatroni: no member '$name'" unless $m;
    return $m;
}

# Go's name for this machine, for etcd 3.4, which refuses to start on
# architectures other than amd64 and ppc64le unless ETCD_UNSUPPORTED_ARCH names it.
sub _go_arch {
    my $m = (POSIX::uname())[4];
    return { x86_64 => 'amd64', aarch64 => 'arm64', i686 => '386', armv7l => 'arm' }->{$m} // $m;
}

sub _start_etcd {
    my ($self, $timeout) = @_;
    my $dir = $self->{dir};
    my ($client, $peer) = (PgNearTest::free_port(), PgNearTest::free_port());
    $self->{etcd_port} = $client;
    my $e = $self->{etcd} = { name => 'etcd', log => "$dir/etcd.log" };
    $self->_spawn($e, { ETCD_UNSUPPORTED_ARCH => _go_arch() }, $self->{etcd_bin},
                  '--name', 'e1', '--data-dir', "$dir/etcd",
                  '--listen-client-urls', "http://127.0.0.1:$client",
                  '--advertise-client-urls', "http://127.0.0.1:$client",
                  '--listen-peer-urls', "http://127.0.0.1:$peer",
                  '--initial-advertise-peer-urls', "http://127.0.0.1:$peer",
                  '--initial-cluster', "e1=http://127.0.0.1:$peer",
                  '--initial-cluster-state', 'new', '--enable-v2');
    $self->_wait(sub {
        my ($status, $body) = PgNearTest::http_get($client, '/health');
        return defined $status && $status == 200 && $body =~ /"health"\s*:\s*"true"/;
    }, $e, $timeout, 'etcd to be healthy');
}

sub _yaml_q { my $v = shift; $v =~ s/'/''/g; "'$v'" }

# Patroni's configuration of member $m.
sub _yaml {
    my ($self, $m) = @_;
    my $q = \&_yaml_q;
    my $sync = $self->{sync} ? 'true' : 'false';
    return <<"EOF";
# written by PgNearPatroni
scope: @{[ $q->($self->{scope}) ]}
name: @{[ $q->($m->{name}) ]}
log:
  level: INFO
restapi:
  listen: 127.0.0.1:$m->{rest_port}
  connect_address: 127.0.0.1:$m->{rest_port}
etcd:
  host: 127.0.0.1:$self->{etcd_port}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    maximum_lag_on_failover: 1048576
    synchronous_mode: $sync
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_log_hints: 'on'
        max_connections: 100
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 128MB
  initdb:
  - encoding: UTF8
  - no-locale
  - data-checksums
  - no-sync
  pg_hba:
  - local all all trust
  - local replication all trust
  - host replication $REPLICATION_USER 127.0.0.1/32 scram-sha-256
  - host all all 127.0.0.1/32 scram-sha-256
postgresql:
  listen: 127.0.0.1:$m->{port}
  connect_address: 127.0.0.1:$m->{port}
  data_dir: @{[ $q->($m->{pgdata}) ]}
  bin_dir: @{[ $q->($self->{bindir}) ]}
  pgpass: @{[ $q->("$self->{dir}/$m->{name}/pgpass") ]}
  basebackup:
  - checkpoint: fast
  - no-sync
  authentication:
    superuser:
      username: postgres
      password: @{[ $q->($SUPERUSER_PASSWORD) ]}
    replication:
      username: $REPLICATION_USER
      password: @{[ $q->($REPLICATION_PASSWORD) ]}
    rewind:
      username: $REWIND_USER
      password: @{[ $q->($REWIND_PASSWORD) ]}
  parameters:
    unix_socket_directories: @{[ $q->($m->{sock}) ]}
    shared_buffers: 32MB
    fsync: 'off'
    password_encryption: scram-sha-256
    log_line_prefix: '%m [%p] %q%u\@%d '
    log_disconnections: 'on'
tags:
  pgnear_region: @{[ $q->($m->{region}) ]}
EOF
}

# Runs @cmd as the PostgreSQL user in the background, in a process group
# of its own, its output appended to $what->{log}.
sub _spawn {
    my ($self, $what, $env, @cmd) = @_;
    open my $log, '>>', $what->{log} or die "$what->{log}: $!";
    @cmd = PgNearTest::_as_pg_user(@cmd);
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        POSIX::setsid();
        chdir $self->{dir};
        open STDIN, '<', '/dev/null';
        open STDOUT, '>&', $log;
        open STDERR, '>&', $log;
        delete $ENV{$_} for grep { /^(PATRONI_|ETCD)/ } keys %ENV;
        my %e = (%{ $self->{env} }, %$env);
        $ENV{$_} = $e{$_} for keys %e;
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        print STDERR "PgNearPatroni: exec @cmd: $!\n";
        POSIX::_exit(127);
    }
    close $log;
    $what->{pid} = $pid;
    $self->{groups}{$pid} = 1;
    PgNearTest::_reg_add("pgroup $pid");
    return $pid;
}

# start_member($m or name): starts its Patroni (again, after kill_leader).
sub start_member {
    my ($self, $m) = @_;
    $m = $self->member($m);
    croak "PgNearPatroni: $m->{name}'s Patroni is running" if $m->{pid} && _alive($m->{pid});
    $self->_reap($m);
    PgNearTest::_reg_add("pgdata $m->{pgdata}") unless $self->{pgdata_registered}{ $m->{name} }++;
    $self->_spawn($m, {}, $self->{patroni}, $m->{conf});
    return $m;
}

sub _alive {
    my ($pid) = @_;
    return 0 unless $pid;
    my $r = waitpid($pid, POSIX::WNOHANG());
    return $r == 0;
}

# Forgets a Patroni that has exited (reaped).
sub _reap {
    my ($self, $m) = @_;
    my $pid = $m->{pid} or return;
    return if _alive($pid);
    delete $self->{groups}{$pid};
    PgNearTest::_reg_del("pgroup $pid");
    undef $m->{pid};
}

# Bounded wait for $cond; dies with the log of $what if it never holds or its process exits.
sub _wait {
    my ($self, $cond, $what, $timeout, $for) = @_;
    my $exited;
    my $ok = PgNearTest::wait_until(sub {
        return 1 if eval { $cond->() };
        if ($what->{pid} && !_alive($what->{pid})) { $exited = 1; return 1 }
        return 0;
    }, timeout => $timeout, interval => 0.2);
    return 1 if $ok && !$exited;
    die "PgNearPatroni: " . ($exited ? "$what->{name} exited" : "timed out after ${timeout}s")
      . " waiting for $for\n" . $self->_diag($what);
}

# What to show when a wait fails: /cluster, and the tails of the logs.
sub _diag {
    my ($self, @first) = @_;
    my %seen;
    my @logs = grep { !$seen{ $_->{log} }++ } @first, @{ $self->{members} }, $self->{etcd} // ();
    return "--- GET /cluster: " . ($self->cluster_body // '(no member answered)') . "\n"
      . join('', map { "--- $_->{log}:\n" . PgNearTest::_tail(-e $_->{log} ? PgNearTest::slurp_file($_->{log}) : '', 20) }
                 grep { defined $_->{log} } @logs);
}

# psql($m, $sql, dbname => 'postgres', timeout => 30): as the superuser
# over the member's socket; dies on error unless called in list context.
sub psql {
    my ($self, $m, $sql, %o) = @_;
    $m = $self->member($m);
    my $ci = PgNearTest::conninfo_string(host => $m->{sock}, port => $m->{port}, user => 'postgres',
                                         dbname => $o{dbname} // 'postgres', connect_timeout => 5);
    my ($rc, $out, $err) = PgNearTest::psql($ci, $sql, timeout => $o{timeout} // 30);
    return ($rc, $out, $err) if wantarray;
    my $what = ref $sql ? join('; ', @$sql) : $sql;
    die "PgNearPatroni: psql on $m->{name} failed (exit $rc) running [$what]:\n$err" if $rc != 0;
    return $out;
}

# PgNearTest's users and database, on the leader: the others copy them.
sub _create_roles {
    my ($self, $m) = @_;
    my ($app, $app_pw, $db) = ($PgNearTest::APP_USER, $PgNearTest::APP_PASSWORD, $PgNearTest::APP_DB);
    my ($pgnear, $pgnear_pw) = ($PgNearTest::PGNEAR_USER, $PgNearTest::PGNEAR_PASSWORD);
    $self->psql($m, ["SET password_encryption = 'scram-sha-256'; "
                       . "CREATE ROLE $app LOGIN SUPERUSER PASSWORD '$app_pw'; "
                       . "CREATE ROLE $pgnear LOGIN SUPERUSER PASSWORD '$pgnear_pw'",
                     "CREATE DATABASE $db OWNER $app"]);
    # The replicas' base backups begin with a checkpoint: one now leaves it nothing to write.
    $self->psql($m, 'CHECKPOINT');
}

# GET $path of the first member whose REST API answers 200 (prefer => $m
# first): the body, or undef.  A stopped (SIGSTOP) Patroni is skipped.
sub rest_get {
    my ($self, $path, %o) = @_;
    my @order = @{ $self->{members} };
    unshift @order, $self->member($o{prefer}) if $o{prefer};
    for my $m (@order) {
        next if !$m->{pid} || $m->{stopped};
        my ($status, $body) = PgNearTest::http_get($m->{rest_port}, $path);
        return $body if defined $status && $status == 200;
    }
    return undef;
}

# The body of GET /cluster as Patroni sends it (undef when none answers).
sub cluster_body { $_[0]->rest_get('/cluster', @_[1 .. $#_]) }

# The same, decoded: { members => [...], ... } or undef.
sub cluster {
    my ($self, %o) = @_;
    my $body = $self->cluster_body(%o) // return undef;
    return eval { JSON::PP::decode_json($body) };
}

# "m1 leader running tl 3, m2 replica running lag 0, ..." for messages.
sub cluster_line {
    my ($self) = @_;
    my $c = $self->cluster or return '(no member answered GET /cluster)';
    return join ', ', map {
        "$_->{name} $_->{role} $_->{state}" . (defined $_->{timeline} ? " tl $_->{timeline}" : '')
          . (defined $_->{lag} ? " lag $_->{lag}" : '')
    } @{ $c->{members} };
}

# The name of the member /cluster says leads, or undef.
sub leader_name {
    my ($self) = @_;
    my $c = $self->cluster or return undef;
    my ($l) = grep { $_->{role} eq 'leader' } @{ $c->{members} };
    return $l ? $l->{name} : undef;
}

# The member that leads now (as name => or not than not => say), per
# /cluster, in state running, its PostgreSQL taking writes; or undef.
sub _leader_now {
    my ($self, %o) = @_;
    my $c = $self->cluster or return undef;
    my ($l) = grep { $_->{role} eq 'leader' && $_->{state} eq 'running' } @{ $c->{members} };
    return undef unless $l;
    return undef if defined $o{name} && $l->{name} ne $o{name};
    return undef if defined $o{not} && $l->{name} eq $o{not};
    my $m = $self->member($l->{name});
    my ($rc, $out) = $self->psql($m, 'SELECT pg_is_in_recovery()', timeout => 10);
    return $rc == 0 && $out eq 'f' ? $m : undef;
}

# wait_leader(timeout => 60, name => 'm3', not => 'm1'): bounded wait until
# /cluster names a leader (that one, or another than that one) in state
# running, and its PostgreSQL takes writes; returns its member hash.
sub wait_leader {
    my ($self, %o) = @_;
    my $timeout = $o{timeout} // 60;
    my $found;
    PgNearTest::wait_until(sub { $found = $self->_leader_now(%o) }, timeout => $timeout, interval => 0.2);
    return $found if $found;
    my $want = defined $o{name} ? " $o{name}" : defined $o{not} ? " other than $o{not}" : '';
    die "PgNearPatroni: no leader$want took writes within ${timeout}s: " . $self->cluster_line . "\n"
      . $self->_diag;
}

# The leader's member hash (wait_leader with a short timeout).
sub leader { $_[0]->wait_leader(timeout => $_[1] // 30) }

# wait_streaming(timeout => 60, members => [...]): bounded wait until a
# leader takes writes and every other member (by default every member whose
# Patroni runs) is a running replica on the leader's timeline that streams
# from it (pg_stat_replication), one of them sync_standby under
# synchronous_mode; returns the leader.
sub wait_streaming {
    my ($self, %o) = @_;
    my $timeout = $o{timeout} // 60;
    my $t0 = Time::HiRes::time();
    my $leader = $self->wait_leader(timeout => $timeout);
    my @want = map { $self->member($_) } @{ $o{members} // [grep { $_->{pid} } @{ $self->{members} }] };
    my $ok = PgNearTest::wait_until(sub {
        $leader = $self->_leader_now or return 0;
        my $c = $self->cluster or return 0;
        my %by = map { $_->{name} => $_ } @{ $c->{members} };
        my $tl = $by{ $leader->{name} }{timeline} // return 0;
        my @others = grep { $_->{name} ne $leader->{name} } @want;
        for my $m (@others) {
            my $s = $by{ $m->{name} } or return 0;
            return 0 unless $s->{state} =~ /^(running|streaming)$/ && ($s->{timeline} // -1) == $tl;
        }
        # synchronous_mode: Patroni has named a synchronous standby
        return 0 if $self->{sync} && @others && !grep { $by{ $_->{name} }{role} eq 'sync_standby' } @others;
        my ($rc, $out) = $self->psql($leader, "SELECT string_agg(application_name, ',') FROM "
                                            . "pg_stat_replication WHERE state = 'streaming'", timeout => 10);
        return 0 unless $rc == 0;
        my %streaming = map { $_ => 1 } split /,/, $out;
        return !grep { !$streaming{ $_->{name} } } @others;
    }, timeout => $timeout - (Time::HiRes::time() - $t0), interval => 0.2);
    return $leader if $ok;
    die "PgNearPatroni: the members did not all stream within ${timeout}s: " . $self->cluster_line . "\n"
      . $self->_diag;
}

# patronictl ARGS... with the first member's configuration: (rc, out, err).
sub patronictl {
    my ($self, @args) = @_;
    my %o = ref $args[-1] eq 'HASH' ? %{ pop @args } : ();
    return PgNearTest::run_cmd([PgNearTest::_as_pg_user($self->{patronictl}, '-c', $self->{members}[0]{conf}, @args)],
                               env => $self->{env}, cwd => $self->{dir}, timeout => $o{timeout} // 60);
}

# switchover($to, timeout => 60): patronictl switchover --candidate $to
# --force, then waits until $to leads and takes writes; returns its member.
sub switchover {
    my ($self, $to, %o) = @_;
    my $m = $self->member($to);
    my ($rc, $out, $err) = $self->patronictl('switchover', '--candidate', $m->{name}, '--force', $self->{scope},
                                             { timeout => $o{timeout} // 60 });
    die "PgNearPatroni: patronictl switchover to $m->{name} failed (exit $rc):\n$out$err"
      . $self->_diag if $rc != 0;
    return $self->wait_leader(name => $m->{name}, timeout => $o{timeout} // 60);
}

# kill_leader(): kill -9 of the leader's Patroni (its whole process group)
# and postmaster; returns its member hash (pid undef: start_member brings it back).
sub kill_leader {
    my ($self) = @_;
    my $m = $self->leader;
    my $pm = PgNearTest::_postmaster_pid($m->{pgdata});
    kill 'KILL', -$m->{pid};
    kill 'KILL', $pm if $pm;
    PgNearTest::wait_until(sub { !_alive($m->{pid}) }, timeout => 10, interval => 0.05);
    $self->_reap($m);
    PgNearTest::wait_until(sub { !kill 0, $pm }, timeout => 10, interval => 0.05) if $pm;
    return $m;
}

# stop_leader_patroni(): SIGSTOP to the leader's Patroni, while its
# PostgreSQL runs on as a primary; returns its member hash.
sub stop_leader_patroni {
    my ($self) = @_;
    my $m = $self->leader;
    kill 'STOP', -$m->{pid};
    $m->{stopped} = 1;
    return $m;
}

# resume($m, ...): SIGCONT to each member's Patroni stopped by stop_leader_patroni.
sub resume {
    my ($self, @ms) = @_;
    for my $m (map { $self->member($_) } @ms) {
        kill 'CONT', -$m->{pid} if $m->{pid};
        delete $m->{stopped};
    }
}

# Immediate stop of everything: SIGKILL to each Patroni's process group,
# SIGQUIT (then SIGKILL) to each postmaster, SIGKILL to etcd's group.
sub stop {
    my ($self) = @_;
    return if $self->{stopped} || $$ != $self->{owner_pid};
    $self->{stopped} = 1;
    my @members = @{ $self->{members} };
    for my $m (grep { $_->{pid} } @members) {
        kill 'KILL', -$m->{pid};
        kill 'CONT', -$m->{pid};
    }
    for my $m (grep { $_->{pid} } @members) {
        waitpid($m->{pid}, 0);
        $self->_reap($m);
    }
    # A postmaster that Patroni was starting as it died writes its pid
    # file a moment later: look twice.
    for my $pass (1, 2) {
        Time::HiRes::sleep(0.3) if $pass == 2;
        PgNearTest::_pg_kill_datadir($_->{pgdata}) for @members;
    }
    PgNearTest::_reg_del("pgdata $_->{pgdata}") for @members;
    if (my $e = $self->{etcd}) {
        if ($e->{pid}) {
            kill 'KILL', -$e->{pid};
            waitpid($e->{pid}, 0);
            PgNearTest::_reg_del("pgroup $e->{pid}");
        }
    }
    # Whatever else is left in the groups (pg_basebackup, pg_rewind, ...).
    kill 'KILL', -$_ for keys %{ $self->{groups} };
}

# Before PgNearTest's END (which removes the temp root): Perl runs END
# blocks last-defined first, and this module loads after PgNearTest.
END {
    local ($?, $!, $@);
    for my $c (reverse @CLUSTERS) { eval { $c->stop } }
}

1;
