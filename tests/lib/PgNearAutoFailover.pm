package PgNearAutoFailover;

# A pg_auto_failover formation for the integration tests: a monitor and data
# nodes, each run by `pg_autoctl create ... --run` in the background as the
# OS user that runs PostgreSQL (postgres when the tests run as root), all
# under the test's temp root: data directories, Unix sockets, and
# pg_autoctl's own configuration and state (XDG_CONFIG_HOME, XDG_DATA_HOME,
# XDG_RUNTIME_DIR), so that nothing outside it is touched.
#
#   my $f = PgNearAutoFailover->new(monitor_settings => { 'pgautofailover.x' => ... });
#   my $n1 = $f->add_node(name => 'node1');      # waits until it is registered
#   $f->psql($n1, 'CREATE ...');                 # as the superuser, over its socket
#   my $n2 = $f->add_node(name => 'node2');      # a standby, by pg_basebackup
#   my $roles = $f->wait_roles(timeout => 30);   # { primary => $n, secondary => $n }
#   my ($rc, $out, $err) = $f->autoctl('perform', 'failover', '--wait', 30);
#   $f->stop;                                     # also done at exit, on failure too
#
# A node is a hash: name, port, pgdata, log (what pg_autoctl wrote), pid (of
# pg_autoctl, the leader of its own process group).
#
# Every data directory starts from one initdb with pg_hba.conf written here
# (pg_autoctl runs with --skip-pg-hba): pgnear's users (PgNearTest's app
# and pgnear) log in with scram-sha-256 over TCP, everyone else
# (pg_autoctl's own users, the monitor's health checks, replication,
# pg_rewind) is trusted on loopback.
# The settings appended to postgresql.conf come after pg_autoctl's include
# line, so they win over its own: a socket directory of our own, loopback
# only, 32 MB of shared buffers (pg_autoctl would size them to the
# machine's memory), fsync off.
#
# Cleanup: each pg_autoctl runs in a process group of its own, sent SIGQUIT
# (immediate stop of pg_autoctl and of PostgreSQL) and then SIGKILL at
# stop(), in an END block, and by PgNearTest's guardian if the test is
# killed (its registry has the pg_autoctl processes and data directories).

use strict;
use warnings;

use Carp qw(croak);
use IPC::Run ();
use POSIX ();
use Time::HiRes ();
use PgNearTest ();

my @FORMATIONS;    # to stop at exit

# The Debian packages that give pg_autoctl and the pgautofailover extension.
sub _packages {
    my ($bindir) = @_;
    my (undef, $v) = PgNearTest::run_cmd(["$bindir/pg_config", '--version']);
    my $major = ($v // '') =~ /PostgreSQL (\d+)/ ? $1 : 'NN';
    return "postgresql-$major-auto-failover (with pg-auto-failover-cli, which gives pg_autoctl)";
}

sub new {
    my ($class, %o) = @_;
    my $bindir = PgNearTest::pg_bindir();
    my $ctl = eval { PgNearTest::require_tool('pg_autoctl') }
      or die "PgNearAutoFailover: pg_autoctl not found; install " . _packages($bindir) . "\n";
    my ($rc, $sharedir) = PgNearTest::run_cmd(["$bindir/pg_config", '--sharedir']);
    chomp $sharedir;
    die "PgNearAutoFailover: no pgautofailover extension in $sharedir/extension; install "
      . _packages($bindir) . "\n"
      unless $rc == 0 && -f "$sharedir/extension/pgautofailover.control";

    my $user = PgNearTest::_pg_os_user();
    my $dir = PgNearTest::tmpdir(name => 'autofailover', mode => 0700, owner => $user);
    my $self = bless {
        ctl => $ctl, bindir => $bindir, dir => $dir, user => $user, owner_pid => $$,
        nodes => [], procs => [], pgdata => [],
        env => {
            HOME            => $dir,
            XDG_CONFIG_HOME => "$dir/config",
            XDG_DATA_HOME   => "$dir/share",
            XDG_RUNTIME_DIR => "$dir/run",
            PGHOST          => "$dir/sock",
            PATH            => "$bindir:" . ($ENV{PATH} // '/usr/bin:/bin'),
            PG_CONFIG       => "$bindir/pg_config",
        },
    }, $class;
    push @FORMATIONS, $self;
    for my $d (qw(config share run sock)) {
        mkdir "$dir/$d" or die "mkdir $dir/$d: $!";
        PgNearTest::_chown($user, "$dir/$d");
    }
    die "PgNearAutoFailover: socket directory too long: $dir/sock\n" if length("$dir/sock") > 90;
    $self->_template;

    # The monitor.
    my $mon = $self->{monitor} = { name => 'monitor', port => PgNearTest::free_port(ipv6 => 1),
                                   pgdata => "$dir/monitor", log => "$dir/monitor.log" };
    $self->_copy_template($mon->{pgdata});
    $self->_spawn($mon, 'create', 'monitor', '--pgdata', $mon->{pgdata}, '--pgport', $mon->{port},
                  '--hostname', '127.0.0.1', '--skip-pg-hba', '--no-ssl', '--pgctl', "$bindir/pg_ctl",
                  '--run');
    $self->{monitor_uri} = "postgres://autoctl_node\@127.0.0.1:$mon->{port}/pg_auto_failover?sslmode=disable";
    $self->_wait(sub { ($self->_monitor_query('SELECT count(*) FROM pgautofailover.formation'))[0] }, $mon,
                 $o{timeout} // 30, 'the monitor to be ready');
    if (my $s = $o{monitor_settings}) {
        $self->psql($mon, [map { "ALTER SYSTEM SET $_ = '$s->{$_}'" } sort keys %$s], dbname => 'postgres');
        $self->psql($mon, 'SELECT pg_reload_conf()', dbname => 'postgres');
    }
    return $self;
}

sub dir         { $_[0]{dir} }
sub monitor     { $_[0]{monitor} }
sub monitor_uri { $_[0]{monitor_uri} }
sub nodes       { @{ $_[0]{nodes} } }
sub node_by_port { my ($self, $port) = @_; (grep { $_->{port} == $port } @{ $self->{nodes} })[0] }

# One initdb for all: the monitor's and the first node's data directories
# are copies of it, the other nodes pg_basebackup copies of the first.
sub _template {
    my ($self) = @_;
    my $t = "$self->{dir}/template";
    my $scram = "$PgNearTest::APP_USER,$PgNearTest::PGNEAR_USER";
    my ($rc, $out, $err) = PgNearTest::run_cmd(
        [PgNearTest::_as_pg_user("$self->{bindir}/initdb", '-D', $t, '-U', $self->{user}, '--auth=trust',
                                 '-E', 'UTF8', '--no-locale', '--no-sync', '--no-instructions')],
        timeout => 120, cwd => $self->{dir});
    die "PgNearAutoFailover: initdb failed ($rc):\n$out$err" if $rc != 0;
    PgNearTest::write_file("$t/pg_hba.conf", <<"EOF", mode => 0600, owner => $self->{user});
# written by PgNearAutoFailover (pg_autoctl runs with --skip-pg-hba)
local all all trust
local replication all trust
host all $scram 127.0.0.1/32 scram-sha-256
host all $scram ::1/128 scram-sha-256
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
EOF
    open my $fh, '>>', "$t/postgresql.conf" or die "$t/postgresql.conf: $!";
    print $fh "\n# ---- added by PgNearAutoFailover: after pg_autoctl's include, so these win ----\n",
              "unix_socket_directories = '$self->{dir}/sock'\n",
              "listen_addresses = '127.0.0.1'\n",
              "shared_buffers = '32MB'\n",
              "max_connections = 100\n",
              "fsync = off\n",
              "password_encryption = 'scram-sha-256'\n",
              "log_line_prefix = '%m [%p] %q%u\@%d '\n";
    close $fh or die "$t/postgresql.conf: $!";
}

sub _copy_template {
    my ($self, $to) = @_;
    my ($rc, $out, $err) = PgNearTest::run_cmd(['cp', '-a', "$self->{dir}/template", $to], timeout => 60);
    die "PgNearAutoFailover: cp -a template $to failed ($rc): $out$err" if $rc != 0;
}

# pg_autoctl ARGS... in the background, in a process group of its own, its
# output in $what->{log}.
sub _spawn {
    my ($self, $what, @args) = @_;
    open my $log, '>>', $what->{log} or die "$what->{log}: $!";
    my @cmd = PgNearTest::_as_pg_user($self->{ctl}, @args);
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        POSIX::setsid();
        chdir $self->{dir};
        open STDIN, '<', '/dev/null';
        open STDOUT, '>&', $log;
        open STDERR, '>&', $log;
        $ENV{$_} = $self->{env}{$_} for keys %{ $self->{env} };
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        print STDERR "PgNearAutoFailover: exec @cmd: $!\n";
        POSIX::_exit(127);
    }
    close $log;
    $what->{pid} = $pid;
    push @{ $self->{procs} }, $pid;
    push @{ $self->{pgdata} }, $what->{pgdata};
    PgNearTest::_reg_add("pid $pid");
    PgNearTest::_reg_add("pgdata $what->{pgdata}");
    return $pid;
}

# pg_autoctl ARGS... in the foreground, against the monitor: (rc, out, err).
sub autoctl {
    my ($self, @args) = @_;
    my %o = ref $args[-1] eq 'HASH' ? %{ pop @args } : ();
    return PgNearTest::run_cmd([PgNearTest::_as_pg_user($self->{ctl}, @args, '--pgdata', $self->{monitor}{pgdata})],
                               env => $self->{env}, cwd => $self->{dir}, timeout => $o{timeout} // 90);
}

# The same, started and not waited for: an IPC::Run handle and its output.
sub autoctl_start {
    my ($self, @args) = @_;
    my ($out, $err) = ('', '');
    my $env = $self->{env};
    my $h = IPC::Run::start([PgNearTest::_as_pg_user($self->{ctl}, @args, '--pgdata', $self->{monitor}{pgdata})],
                            init => sub { chdir $self->{dir}; $ENV{$_} = $env->{$_} for keys %$env },
                            '<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(120));
    return ($h, \$out, \$err);
}

sub _alive {
    my ($pid) = @_;
    my $r = waitpid($pid, POSIX::WNOHANG());
    return $r == 0;
}

# Bounded wait for $cond; dies with the log of $what if it never holds or
# its pg_autoctl exits.
sub _wait {
    my ($self, $cond, $what, $timeout, $for) = @_;
    my $exited;
    my $ok = PgNearTest::wait_until(sub {
        return 1 if eval { $cond->() };
        if ($what->{pid} && !_alive($what->{pid})) { $exited = 1; return 1 }
        return 0;
    }, timeout => $timeout, interval => 0.1);
    return 1 if $ok && !$exited;
    die "PgNearAutoFailover: " . ($exited ? "pg_autoctl for $what->{name} exited" : "timed out after ${timeout}s")
      . " waiting for $for\n--- $what->{log}:\n" . PgNearTest::_tail(PgNearTest::slurp_file($what->{log}), 40);
}

# psql as the superuser over the node's socket; dies on error unless list context.
sub psql {
    my ($self, $node, $sql, %o) = @_;
    my $ci = PgNearTest::conninfo_string(host => "$self->{dir}/sock", port => $node->{port},
                                         user => $self->{user}, dbname => $o{dbname} // 'postgres',
                                         connect_timeout => 5);
    my ($rc, $out, $err) = PgNearTest::psql($ci, $sql, timeout => $o{timeout} // 30);
    return ($rc, $out, $err) if wantarray;
    my $what = ref $sql ? join('; ', @$sql) : $sql;
    die "PgNearAutoFailover: psql on $node->{name} failed (exit $rc) running [$what]:\n$err" if $rc != 0;
    return $out;
}

# Rows of a query on the monitor's pg_auto_failover database, each a line.
sub _monitor_query {
    my ($self, $sql) = @_;
    my ($rc, $out, $err) = $self->psql($self->{monitor}, $sql, dbname => 'pg_auto_failover');
    die "monitor: $err" if $rc != 0;
    return split /\n/, $out;
}

# The monitor's view: one hash per node, by node name.
sub state {
    my ($self) = @_;
    my %s;
    for ($self->_monitor_query("SELECT nodename, nodeport, reportedstate, goalstate, reportedlsn "
                             . "FROM pgautofailover.node ORDER BY nodeid")) {
        my ($name, $port, $reported, $goal, $lsn) = split /\|/;
        $s{$name} = { port => $port, reported => $reported, goal => $goal, lsn => $lsn };
    }
    return \%s;
}

sub state_line {
    my ($self) = @_;
    my $s = eval { $self->state } or return "monitor: $@";
    return join ', ', map { "$_ $s->{$_}{reported}" . ($s->{$_}{goal} ne $s->{$_}{reported} ? " -> $s->{$_}{goal}" : '') }
                      sort keys %$s;
}

# add_node(name => 'node1', timeout => 60): create and run a data node;
# returns when the monitor has it in a state of its own (single for the
# first, wait_standby or later for the others).
sub add_node {
    my ($self, %o) = @_;
    my $name = $o{name} // croak 'add_node: name required';
    my $n = { name => $name, port => PgNearTest::free_port(ipv6 => 1),
              pgdata => "$self->{dir}/$name", log => "$self->{dir}/$name.log" };
    $self->_copy_template($n->{pgdata}) unless @{ $self->{nodes} };
    push @{ $self->{nodes} }, $n;
    $self->_spawn($n, 'create', 'postgres', '--pgdata', $n->{pgdata}, '--pgport', $n->{port},
                  '--hostname', '127.0.0.1', '--listen', '127.0.0.1', '--name', $name,
                  '--username', $self->{user}, '--dbname', 'postgres', '--monitor', $self->{monitor_uri},
                  '--skip-pg-hba', '--no-ssl', '--pgctl', "$self->{bindir}/pg_ctl", '--run');
    $self->_wait(sub {
        my $s = $self->state->{$name} or return 0;
        return $s->{reported} =~ /^(single|wait_primary|primary)$/ && $self->psql($n, 'SELECT 1') eq '1'
          if @{ $self->{nodes} } == 1;
        return $s->{reported} ne 'init';
    }, $n, $o{timeout} // 60, "$name to register");
    return $n;
}

# wait_roles(timeout => 30, primary => $node): bounded wait until one node
# is primary and every other secondary, on the monitor (reported = goal)
# and on the servers themselves; dies otherwise.  Returns
# { primary => $node, secondary => [$node, ...] }.
sub wait_roles {
    my ($self, %o) = @_;
    my $timeout = $o{timeout} // 30;
    my $roles;
    my $ok = PgNearTest::wait_until(sub {
        my $s = eval { $self->state } or return 0;
        my @n = @{ $self->{nodes} };
        return 0 unless @n == grep { $s->{ $_->{name} } && $s->{ $_->{name} }{reported} eq $s->{ $_->{name} }{goal} } @n;
        my @p = grep { $s->{ $_->{name} }{reported} eq 'primary' } @n;
        my @sec = grep { $s->{ $_->{name} }{reported} eq 'secondary' } @n;
        return 0 unless @p == 1 && @sec == @n - 1;
        return 0 if $o{primary} && $p[0] != $o{primary};
        my ($rc, $out) = $self->psql($p[0], 'SELECT pg_is_in_recovery()');
        return 0 unless $rc == 0 && $out eq 'f';
        for my $sn (@sec) {
            ($rc, $out) = $self->psql($sn, 'SELECT pg_is_in_recovery()');
            return 0 unless $rc == 0 && $out eq 't';
        }
        $roles = { primary => $p[0], secondary => \@sec };
    }, timeout => $timeout, interval => 0.1);
    return $roles if $ok;
    die "PgNearAutoFailover: no primary/secondary formation within ${timeout}s: " . $self->state_line . "\n"
      . join('', map { "--- $_->{log}:\n" . PgNearTest::_tail(PgNearTest::slurp_file($_->{log}), 25) }
                     @{ $self->{nodes} });
}

sub log_contents {
    my ($self, $what) = @_;
    return -e $what->{log} ? PgNearTest::slurp_file($what->{log}) : '';
}

# What a failed check needs to tell a loss of the formation's own from
# pgnear's: the monitor's events, each keeper's lines about its role, and
# each Postgres's about its synchronous replication, its shutdowns and its
# promotion (at most 60 lines each).
sub failover_story {
    my ($self) = @_;
    my @events = eval {
        $self->_monitor_query("SELECT to_char(eventtime, 'HH24:MI:SS.MS') || ' ' || nodename || ' ' "
                            . "|| reportedstate || ' -> ' || goalstate || ': ' || description "
                            . "FROM (SELECT * FROM pgautofailover.event ORDER BY eventid DESC LIMIT 40) e "
                            . "ORDER BY eventid");
    };
    my $story = "--- monitor events:\n" . (@events ? join("\n", @events) : "(none: $@)") . "\n";
    my $keeper = qr/synchronous|transition|assigned|demot|draining|promot|read.only|stopping|pg_ctl/i;
    my $server = qr/synchronous|canceling|terminat|shut|promot|parameter|received|timeline|
                    recovery|ready to accept|redo/xi;
    my $last60 = sub { my @l = @_; splice @l, 0, @l - 60 if @l > 60; join("\n", @l) . "\n" };
    for my $n (@{ $self->{nodes} }) {
        $story .= "--- $n->{name}'s keeper ($n->{log}):\n"
                . $last60->(grep { /$keeper/ } split /\n/, $self->log_contents($n));
        my $text = join '', map { PgNearTest::slurp_file($_) } sort glob("$n->{pgdata}/log/*.log");
        $story .= "--- $n->{name}'s Postgres ($n->{pgdata}/log):\n" . $last60->(grep { /$server/ } split /\n/, $text);
    }
    return $story;
}

# Processes (not zombies) of process group $pgid.
sub _group_members {
    my ($pgid) = @_;
    my @m;
    opendir my $dh, '/proc' or return kill(0, -$pgid) ? ($pgid) : ();
    for my $p (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$p/stat" or next;
        my $st = <$fh> // next;
        # pid (comm) state ppid pgrp ...
        next unless $st =~ /\)\s+(\S)\s+\d+\s+(\d+)/;
        push @m, $p if $2 == $pgid && $1 ne 'Z';
    }
    return @m;
}

# Register the pg_autoctl services (children of each pg_autoctl) too, for
# the guardian: a pg_autoctl killed alone leaves its postgres controller,
# which would start PostgreSQL again.
sub register_services {
    my ($self) = @_;
    for my $pgid (@{ $self->{procs} }) {
        for my $p (_group_members($pgid)) {
            next if $self->{registered}{$p} || $p == $pgid;
            my $cmd = do { open my $fh, '<', "/proc/$p/cmdline" or next; local $/; <$fh> } // '';
            next unless $cmd =~ /^pg_autoctl/;
            $self->{registered}{$p} = 1;
            PgNearTest::_reg_add("pid $p");
        }
    }
}

# Immediate stop of everything: SIGQUIT to each process group, SIGKILL to
# what is left after 1 s, then any postmaster still running.
sub stop {
    my ($self) = @_;
    return if $self->{stopped} || $$ != $self->{owner_pid};
    $self->{stopped} = 1;
    my @groups = @{ $self->{procs} };
    kill 'QUIT', -$_ for @groups;
    my $deadline = Time::HiRes::time() + 1;
    for (1 .. 100) {
        _alive($_) for @groups;    # reap our own children
        last unless grep { _group_members($_) } @groups;
        last if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.05);
    }
    for my $g (@groups) {
        kill 'KILL', -$g if _group_members($g);
        waitpid($g, 0);
    }
    PgNearTest::_pg_kill_datadir($_) for @{ $self->{pgdata} };
    PgNearTest::_reg_del("pid $_") for @groups, keys %{ $self->{registered} // {} };
    PgNearTest::_reg_del("pgdata $_") for @{ $self->{pgdata} };
}

# Before PgNearTest's END (which removes the temp root): Perl runs END
# blocks last-defined first, and this module loads after PgNearTest.
END {
    local ($?, $!, $@);
    for my $f (reverse @FORMATIONS) { eval { $f->stop } }
}

1;
