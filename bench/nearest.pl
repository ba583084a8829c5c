#!/usr/bin/perl
# What an application in Dublin gets from a primary in us-east and a hot
# standby next to it in eu-west: the benchmark of the `nearest` need
# (each transaction on the nearest host that can run it).  A primary and
# a streaming standby of it (PostgreSQL 15, scram-sha-256, the standby
# replaying recovery_min_apply_delay behind), the primary 40 ms away each
# way behind bench/delay_relay.pl (every path to it goes through the
# relay, the direct one too, as a Dublin app reaching us-east would), the
# standby local.  A MovR-like load (users, vehicles, rides) from several
# concurrent clients, one connection each: 90 % reads (point lookups,
# small range scans), 10 % writes, half of them blocks that read and then
# write (BEGIN; SELECT ...; UPDATE ...; COMMIT), and each write read back
# by its writer right after, as its next transaction.  Targets,
# interleaved round by round:
#   direct       the primary, through the relay
#   read-write   pgnear, target_session_attrs = read-write (all crosses)
#   nearest      pgnear, target_session_attrs = nearest; reported as not
#                available while `pgnear --check` refuses the value
#   pgpool       Pgpool-II (streaming replication mode, load_balance_mode
#                = on, its reads weighted all to the local standby)
#
#   bench/nearest.pl [--seconds 10] [--rounds 3] [--clients 8] [--delay-ms 40]
#                    [--apply-delay 1s] [--writes 10] [--blocks 50]
#                    [--pool_mode session|transaction|none] [--protocol prepared|params|simple]
#                    [--only 'direct,pgpool'] [--baseline PATH] [--smoke]
#
# --baseline PATH adds the target nearest-base: nearest again, run by the
# pgnear binary at PATH (another build, say the one before a change),
# interleaved with the rest round by round, to measure what a change costs.
#
# --protocol says how the clients send their statements: prepared (the
# default: named statements, prepared at connect, as drivers run the
# statements they reuse), params (an unnamed statement each time: Parse,
# Bind, Execute, Sync) or simple (one Query, the values in its text).
# Pgpool-II 4.3 sends the extended protocol's Sync to the primary as well,
# so that its reads on the standby still wait a round trip to us-east.
#
# Prints per target the medians over rounds of transactions/s and of p50
# and p99 latency per kind (read; write: an autocommit INSERT; block: the
# whole BEGIN..COMMIT; readback: the read of a write just made), the share
# of reads the standby served (counted on the servers by
# pg_stat_statements: every SELECT of the load's tables, per server), the
# round trips to us-east per transaction (RT/txn, the relay's count), and
# the totals of stale reads (a read back that does not find what its own
# session just wrote) and of failed transactions.  --smoke runs one short
# round with 2 clients, to see that every piece works.  Needs a built
# pgnear (build/pgnear or $PGNEAR); scripts/install-deps.sh installs the
# rest (pgpool2, libdbd-pg-perl).  The figures come from a shared machine:
# compare targets of the same run.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use Getopt::Long;
use POSIX ();
use Time::HiRes qw(time sleep);
use List::Util qw(sum0 shuffle);
use PgNearTest;

$| = 1;
my %opt = (seconds => 10, rounds => 3, clients => 8, 'delay-ms' => 40, 'apply-delay' => '1s',
           writes => 10, blocks => 50, pool_mode => 'session', protocol => 'prepared', only => '',
           baseline => '');
GetOptions(\%opt, 'seconds=f', 'rounds=i', 'clients=i', 'delay-ms=f', 'apply-delay=s', 'writes=f',
           'blocks=f', 'pool_mode=s', 'protocol=s', 'only=s', 'baseline=s', 'smoke')
    or die "usage: see the head of $0\n";
%opt = (%opt, seconds => 2, rounds => 1, clients => 2) if $opt{smoke};
$ENV{PGNEAR} //= -x "$FindBin::RealBin/../build/pgnear" ? "$FindBin::RealBin/../build/pgnear" : './pgnear';
die "--protocol is prepared, params or simple\n" unless $opt{protocol} =~ /^(prepared|params|simple)$/;
die "no pgnear binary at $ENV{PGNEAR}: build first\n" unless -x $ENV{PGNEAR};
my $pgpool_bin = require_tool('pgpool');
require DBD::Pg;

my $DUBLIN = '53.35,-6.26';
my @CITIES = ('amsterdam', 'boston', 'los angeles', 'new york', 'paris', 'rome', 'san francisco',
              'seattle', 'washington dc');
my %SIZE = (users => 2000, vehicles => 1000, rides => 20000);
my @KINDS = qw(read write block readback);
my %RELAY;    # the delay relay: port, pid, log

# ---------------------------------------------------------------- servers

sub start_servers {
    # synchronous_commit on, as in production: the test clusters' off makes a commit reach
    # the standby only at the WAL writer's next round (wal_writer_delay, 200 ms).
    my %conf = (shared_preload_libraries => 'pg_stat_statements', max_connections => 300,
                synchronous_commit => 'on');
    my $us = PgNearTest::Cluster->new(name => 'us-east', conf => {%conf});
    load_movr($us);
    my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west',
                                              apply_delay => $opt{'apply-delay'}, conf => {%conf});
    $eu->wait_replay($us->current_lsn, timeout => 60) or die "the standby did not replay the load's tables\n";
    return ($us, $eu);
}

# MovR's three tables (CockroachDB's demo of a ride-sharing app), small.
sub load_movr {
    my ($pg) = @_;
    my $cities = join ', ', map { "'$_'" } @CITIES;
    $pg->psql_admin([<<"SQL", 'ANALYZE'], dbname => 'movr');
CREATE EXTENSION pg_stat_statements;
CREATE TABLE users (id uuid PRIMARY KEY, city text NOT NULL, name text, address text, credit_card text);
CREATE TABLE vehicles (id uuid PRIMARY KEY, city text NOT NULL, type text, owner_id uuid,
    creation_time timestamptz DEFAULT now(), status text, current_location text, ext jsonb);
CREATE TABLE rides (id uuid PRIMARY KEY, city text NOT NULL, vehicle_city text, rider_id uuid,
    vehicle_id uuid, start_address text, end_address text, start_time timestamptz,
    end_time timestamptz, revenue numeric(10,2));
CREATE INDEX vehicles_available ON vehicles (city, status);
CREATE INDEX rides_by_rider ON rides (rider_id, start_time);
INSERT INTO users SELECT gen_random_uuid(), (ARRAY[$cities])[1 + i % 9], 'user ' || i,
    i || ' Main Street', lpad((i * 7919)::text, 16, '4') FROM generate_series(1, $SIZE{users}) i;
INSERT INTO vehicles SELECT gen_random_uuid(), u.city, (ARRAY['bike','scooter','skateboard'])[1 + i % 3],
    u.id, now(), 'available', i || ' Market Street', '{"color": "red"}'
    FROM generate_series(1, $SIZE{vehicles}) i, LATERAL (SELECT id, city FROM users OFFSET i LIMIT 1) u;
INSERT INTO rides SELECT gen_random_uuid(), v.city, v.city, u.id, v.id, 'a', 'b',
    now() - i * interval '1 minute', now() - i * interval '1 minute' + interval '9 minutes', (i % 50) + 2.5
    FROM generate_series(1, $SIZE{rides}) i,
    LATERAL (SELECT id FROM users OFFSET i % $SIZE{users} LIMIT 1) u,
    LATERAL (SELECT id, city FROM vehicles OFFSET i % $SIZE{vehicles} LIMIT 1) v;
SQL
}

# The primary 40 ms away each way: a delay relay in front of it.
sub start_relay {
    my ($pg, $dir) = @_;
    my $port = free_port();
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        no warnings 'exec';
        exec { $^X } $^X, "$FindBin::RealBin/delay_relay.pl", '--listen', "127.0.0.1:$port",
            '--target', $pg->hostport, '--delay-ms', $opt{'delay-ms'}, '--log', "$dir/relay.log";
        POSIX::_exit(127);
    }
    wait_until(sub { -e "$dir/relay.log" && slurp_file("$dir/relay.log") =~ /^listening/m }, timeout => 10)
        or die "the delay relay did not start\n";
    return ($port, $pid);
}

# ---------------------------------------------------------------- targets

sub pgnear_proxy {
    my ($need, $relay_port, $eu, $dir, $binary) = @_;
    return PgNearTest::Proxy->new(
        start => 0, args => ['-q'], binary => $binary // $ENV{PGNEAR},
        regions => [{ name => 'us-east', location => '39.04, -77.49', hosts => ["127.0.0.1:$relay_port"] },
                    { name => 'eu-west', location => '53.35, -6.26', hosts => [$eu] }],
        settings => { auth => 'scram', auth_file => "$dir/userlist.txt", server_tls => 'disable',
                      target_session_attrs => $need, pool_mode => $opt{pool_mode}, workers => 1,
                      max_client_conn => 200 });
}

# A pgnear target for $need, or (undef, why) when `pgnear --check` refuses the
# configuration: a need this build does not know is reported, not replaced.
sub pgnear_target {
    my ($need, $relay_port, $eu, $dir, $binary, $name) = @_;
    my $p = pgnear_proxy($need, $relay_port, $eu, $dir, $binary);
    my ($rc, $out, $err) = run_cmd([$binary // $ENV{PGNEAR}, '--check', $p->config_path], timeout => 60);
    if ($rc != 0) {
        my ($why) = grep {/target_session_attrs/} split /\n/, $err;
        $why = ($why // $err) =~ s/^pgnear: \S+:\d+: //r;
        return (undef, "pgnear --check refuses it: $why");
    }
    $p->start;
    return ({ name => $name // $need, port => $p->port, options => "-c pgnear.location=$DUBLIN", proxy => $p });
}

sub start_pgpool {
    my ($relay_port, $eu) = @_;
    my $dir = tmpdir(name => 'pgpool', mode => 0755, owner => 'postgres');
    my ($port, $pcp_port) = (free_port(), free_port());
    my %file = ('pool_passwd' => "app:TEXTapp-secret\n", 'pcp.conf' => '',
                'pool_hba.conf' => "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n");
    write_file("$dir/$_", $file{$_}, mode => 0600, owner => 'postgres') for keys %file;
    write_file("$dir/pgpool.conf", <<"CONF", mode => 0644, owner => 'postgres');
backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = $port
socket_dir = '$dir'
pcp_listen_addresses = ''
pcp_port = $pcp_port
pcp_socket_dir = '$dir'
wd_ipc_socket_dir = '$dir'
pid_file_name = '$dir/pgpool.pid'
logdir = '$dir'
backend_hostname0 = '127.0.0.1'
backend_port0 = $relay_port
backend_weight0 = 0
backend_flag0 = 'DISALLOW_TO_FAILOVER'
backend_hostname1 = '127.0.0.1'
backend_port1 = @{[$eu->port]}
backend_weight1 = 1
backend_flag1 = 'DISALLOW_TO_FAILOVER'
enable_pool_hba = on
pool_passwd = '$dir/pool_passwd'
num_init_children = @{[$opt{clients} + 4]}
max_pool = 1
load_balance_mode = on
sr_check_period = 10
sr_check_user = 'app'
sr_check_password = 'app-secret'
health_check_period = 0
failover_on_backend_error = off
memory_cache_enabled = off
CONF
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        no warnings 'exec';
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/pgpool.log" or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT;
        exec { 'setpriv' } 'setpriv', '--reuid=postgres', '--regid=postgres', '--init-groups', $pgpool_bin,
            '-n', '-f', "$dir/pgpool.conf", '-F', "$dir/pcp.conf", '-a', "$dir/pool_hba.conf";
        POSIX::_exit(127);
    }
    return { name => 'pgpool', port => $port, options => '', pid => $pid, log => "$dir/pgpool.log" };
}

# Bounded wait until a target serves the load's tables.
sub wait_target {
    my ($t) = @_;
    my $ok = wait_until(sub {
        my $conn = eval { client_connect($t) } or return 0;
        my ($n) = eval { $conn->{dbh}->selectrow_array('SELECT count(*) FROM users') };
        $conn->{dbh}->disconnect;
        return ($n // 0) == $SIZE{users};
    }, timeout => 60, interval => 0.5);
    die "target $t->{name} does not serve the load\n" unless $ok;
}

# ---------------------------------------------------------------- clients

# The load's statements, each prepared once per connection (as drivers that
# prepare, JDBC's after a few uses, psycopg's after five, run them).
my %SQL = (
    user         => 'SELECT id, city, name, address FROM users WHERE id = $1',
    vehicle      => 'SELECT id, type, status, current_location FROM vehicles WHERE id = $1',
    rides        => 'SELECT id, start_time, revenue FROM rides WHERE rider_id = $1 ORDER BY start_time DESC LIMIT 10',
    nearby       => "SELECT id, type, current_location FROM vehicles WHERE city = \$1 AND status = 'available' LIMIT 10",
    add_ride     => 'INSERT INTO rides (id, city, vehicle_city, rider_id, vehicle_id, start_address, start_time) '
                  . "VALUES (\$1, 'paris', 'paris', \$2, \$3, 'Quai 1', now())",
    ride_back    => 'SELECT id FROM rides WHERE id = $1',
    take_read    => 'SELECT status, current_location FROM vehicles WHERE id = $1',
    take_update  => "UPDATE vehicles SET status = 'in_use', current_location = \$2 WHERE id = \$1",
    vehicle_back => 'SELECT current_location FROM vehicles WHERE id = $1',
);

# A client's connection and its statements: --protocol prepared (named
# statements, prepared at connect), params (an unnamed statement each time:
# Parse, Bind, Execute, Sync) or simple (one Query, the values in its text).
sub client_connect {
    my ($t) = @_;
    my $ci = conninfo_string(host => '127.0.0.1', port => $t->{port}, dbname => 'movr', user => 'app',
                             password => 'app-secret', sslmode => 'disable', connect_timeout => 20,
                             application_name => 'nearest-bench',
                             (length $t->{options} ? (options => $t->{options}) : ()));
    my $p = $opt{protocol};
    my $dbh = DBI->connect("dbi:Pg:$ci", '', '', { RaiseError => 1, PrintError => 0, AutoCommit => 1,
                                                   pg_server_prepare => $p eq 'simple' ? 0 : 1,
                                                   pg_switch_prepared => $p eq 'prepared' ? 1 : 0 });
    my %sth = map { $_ => $dbh->prepare($SQL{$_}, { pg_prepare_now => $p eq 'prepared' ? 1 : 0 }) } keys %SQL;
    return { dbh => $dbh, sth => \%sth };
}

sub uuid {
    my $h = join '', map { sprintf '%04x', int rand 65536 } 1 .. 8;
    substr($h, 12, 1, '4');
    return join '-', unpack 'A8 A4 A4 A4 A12', $h;
}

sub pick { $_[0][int rand @{ $_[0] }] }

# Runs $code as one transaction of kind $kind, timed; an error counts as a
# failed transaction (rolled back, or a new connection if this one is gone).
sub timed {
    my ($c, $kind, $code) = @_;
    my $t0 = time;
    my $ok = eval { $code->($c->{conn}{dbh}, $c->{conn}{sth}); 1 };
    if ($ok) {
        push @{ $c->{lat}{$kind} }, (time - $t0) * 1000;
        return 1;
    }
    $c->{failed}++;
    $c->{errors}{ (split /\n/, $@)[0] =~ s/ at \S+ line \d+\.?$//r }++;
    my $dbh = $c->{conn}{dbh};
    eval { $dbh->rollback } unless $dbh->{AutoCommit};
    $c->{conn} = eval { client_connect($c->{target}) } || $c->{conn} unless $dbh->ping;
    return 0;
}

sub read_op {
    my ($c) = @_;
    my $r = rand 10;
    my ($q, $arg) = $r < 3 ? ('user', pick($c->{users})) : $r < 6 ? ('vehicle', pick($c->{vehicles}))
                  : $r < 8 ? ('rides', pick($c->{users})) : ('nearby', pick(\@CITIES));
    timed($c, 'read', sub { $_[0]->selectall_arrayref($_[1]{$q}, undef, $arg) });
}

# A new ride, then its writer reads it back.
sub write_op {
    my ($c) = @_;
    my ($id, $rider, $vehicle) = (uuid(), pick($c->{users}), pick($c->{vehicles}));
    timed($c, 'write', sub { $_[1]{add_ride}->execute($id, $rider, $vehicle) }) or return;
    read_back($c, 'ride_back', $id, $id);
}

# A vehicle taken: read it, then update it, in one block; then read back.
# Each client updates only its own vehicles, so a read back that differs is stale.
sub block_op {
    my ($c) = @_;
    my ($id, $where) = (pick($c->{mine}), 'at ' . uuid());
    timed($c, 'block', sub {
        my ($dbh, $sth) = @_;
        $dbh->begin_work;
        my $row = $dbh->selectrow_arrayref($sth->{take_read}, undef, $id);
        die "vehicle $id not found\n" unless $row;
        $sth->{take_update}->execute($id, $where);
        $dbh->commit;
    }) or return;
    read_back($c, 'vehicle_back', $id, $where);
}

sub read_back {
    my ($c, $q, $arg, $want) = @_;
    my $got;
    timed($c, 'readback', sub { ($got) = $_[0]->selectrow_array($_[1]{$q}, undef, $arg) }) or return;
    $c->{readbacks}++;
    $c->{stale}++ unless defined $got && $got eq $want;
}

# One client process: connects, says so, waits for the start, runs the mix
# until the end time, writes what it measured to $out.
sub client_main {
    my ($t, $no, $ids, $ready, $go, $out) = @_;
    srand(int(time * 1e6) ^ ($$ << 8));    # not the parent's sequence: ids must differ
    my $c = { target => $t, lat => { map { $_ => [] } @KINDS }, failed => 0, stale => 0, readbacks => 0,
              errors => {}, users => $ids->{users}, vehicles => $ids->{vehicles},
              mine => [grep { defined } @{ $ids->{vehicles} }[grep { $_ % $opt{clients} == $no }
                                                               0 .. $#{ $ids->{vehicles} }]] };
    $c->{conn} = eval { client_connect($t) };
    syswrite $ready, $c->{conn} ? 'r' : 'x';
    my $end = <$go>;
    POSIX::_exit(1) unless $c->{conn} && $end;
    while (time < $end) {
        my $r = rand 100;
        if ($r >= $opt{writes}) { read_op($c) }
        elsif (rand 100 < $opt{blocks}) { block_op($c) }
        else { write_op($c) }
    }
    eval { $c->{conn}{dbh}->disconnect };
    open my $fh, '>', $out or POSIX::_exit(1);
    print $fh "$_ @{ $c->{lat}{$_} }\n" for @KINDS;
    print $fh "count $c->{failed} $c->{stale} $c->{readbacks}\n";
    print $fh "error $c->{errors}{$_} $_\n" for sort keys %{ $c->{errors} };
    close $fh;
    POSIX::_exit(0);
}

# ---------------------------------------------------------------- a round

# SELECTs of the load's tables that a server ran (pg_stat_statements counts
# at the end of each statement, on the server that ran it).
sub server_reads {
    my ($pg) = @_;
    return $pg->psql_admin(q{SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s
        JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'movr' AND s.query ~* '^\s*select'
        AND s.query ~* '\m(users|vehicles|rides)\M' AND s.query !~* 'pg_catalog|pg_class|to_regclass'},
        dbname => 'movr');
}

# Round trips over the relay so far, every connection's (SIGUSR1: the relay
# writes its totals to its log, numbered).
my $relay_asked = 0;
sub relay_round_trips {
    my $seq = ++$relay_asked;
    kill 'USR1', $RELAY{pid};
    my $n;
    wait_until(sub { ($n) = slurp_file($RELAY{log}) =~ /^totals seq=$seq .* round_trips=(\d+)$/m; defined $n },
               timeout => 10, interval => 0.02) or die "the delay relay does not report its totals\n";
    return $n;
}

sub spawn_clients {
    my ($t, $ids, $dir) = @_;
    pipe(my $ready_r, my $ready_w) or die "pipe: $!";
    my @kids;
    for my $no (0 .. $opt{clients} - 1) {
        pipe(my $go_r, my $go_w) or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            close $ready_r;
            client_main($t, $no, $ids, $ready_w, $go_r, "$dir/client-$no");
        }
        close $go_r;
        push @kids, { pid => $pid, go => $go_w, out => "$dir/client-$no" };
    }
    close $ready_w;
    my $ready = '';
    while (length $ready < @kids) { sysread($ready_r, my $b, 64) or last; $ready .= $b }
    die "$t->{name}: a client could not connect\n" if $ready =~ /x/ || length $ready < @kids;
    return @kids;
}

sub run_round {
    my ($t, $servers, $ids, $dir) = @_;
    my @kids = spawn_clients($t, $ids, $dir);
    my %before = map { $_ => server_reads($servers->{$_}) } keys %$servers;
    my $crossed = relay_round_trips();
    my $start = time;
    for my $k (@kids) { my $fh = $k->{go}; print $fh $start + $opt{seconds}, "\n"; close $fh }
    waitpid $_->{pid}, 0 for @kids;
    my $elapsed = time - $start;
    $crossed = relay_round_trips() - $crossed;
    my %after = map { $_ => server_reads($servers->{$_}) } keys %$servers;
    my $r = collect(\@kids);
    my $txns = sum0(map { scalar @{ $r->{lat}{$_} } } @KINDS);
    $r->{tps} = $txns / $elapsed;
    $r->{crossings} = $txns ? $crossed / $txns : 0;
    my $reads = sum0(map { $after{$_} - $before{$_} } keys %$servers);
    $r->{near} = $reads ? ($after{standby} - $before{standby}) / $reads : 0;
    $r->{server_reads} = $reads;
    return $r;
}

sub collect {
    my ($kids) = @_;
    my $r = { lat => { map { $_ => [] } @KINDS }, failed => 0, stale => 0, readbacks => 0, errors => {} };
    for my $k (@$kids) {
        open my $fh, '<', $k->{out} or die "a client of the round left no results\n";
        while (my $line = <$fh>) {
            chomp $line;
            my ($what, @v) = split / /, $line;
            if ($what eq 'count') { $r->{failed} += $v[0]; $r->{stale} += $v[1]; $r->{readbacks} += $v[2] }
            elsif ($what eq 'error') { $r->{errors}{ join ' ', @v[1 .. $#v] } += $v[0] }
            else { push @{ $r->{lat}{$what} }, @v }
        }
        close $fh;
        unlink $k->{out};
    }
    return $r;
}

# ---------------------------------------------------------------- report

sub pct {
    my ($p, @v) = @_;
    return undef unless @v;
    @v = sort { $a <=> $b } @v;
    return $v[int($p * $#v + 0.5)];
}

sub median { pct(0.5, grep { defined } @_) }

sub print_results {
    my ($order, $results, $absent) = @_;
    printf "%-12s %7s", 'target', 'tps';
    printf " %15s", "$_ p50/p99" for @KINDS;
    printf " %10s %9s %16s %7s\n", 'reads near', 'RT/txn', 'stale/readbacks', 'failed';
    for my $name (@$order) {
        if ($absent->{$name}) { printf "%-12s not available: %s\n", $name, $absent->{$name}; next }
        my @rounds = @{ $results->{$name} };
        printf "%-12s %7.1f", $name, median(map { $_->{tps} } @rounds);
        for my $k (@KINDS) {
            my ($p50, $p99) = map { my $p = $_; median(map { pct($p, @{ $_->{lat}{$k} }) } @rounds) } 0.5, 0.99;
            printf " %15s", defined $p50 ? sprintf('%.1f/%.1f', $p50, $p99) : '-';
        }
        printf " %9.1f%% %9.2f %16s %7d\n", 100 * median(map { $_->{near} } @rounds),
            median(map { $_->{crossings} } @rounds),
            sum0(map { $_->{stale} } @rounds) . '/' . sum0(map { $_->{readbacks} } @rounds),
            sum0(map { $_->{failed} } @rounds);
    }
    for my $name (grep { $results->{$_} } @$order) {
        my %e;
        for my $r (@{ $results->{$name} }) { $e{$_} += $r->{errors}{$_} for keys %{ $r->{errors} } }
        print "  $name failed: $e{$_} x $_\n" for sort { $e{$b} <=> $e{$a} } keys %e;
    }
}

# ---------------------------------------------------------------- main

my $dir = tmpdir(name => 'nearest', mode => 0755);
my ($us, $eu) = start_servers();
write_file("$dir/userlist.txt", qq{"app" "} . $us->scram_verifier('app') . qq{"\n}, mode => 0644);
@RELAY{qw(port pid log)} = (start_relay($us, $dir), "$dir/relay.log");
my $relay_port = $RELAY{port};
my $pgpool;
END {
    kill 'INT', $pgpool->{pid} if $pgpool && $pgpool->{pid};
    kill 'TERM', $RELAY{pid} if $RELAY{pid};
}

my (%target, %absent);
$target{direct} = { name => 'direct', port => $relay_port, options => '' };
my ($rw, $why_rw) = pgnear_target('read-write', $relay_port, $eu, $dir);
die "the read-write configuration fails its check: $why_rw\n" unless $rw;
$target{'read-write'} = $rw;
($target{nearest}, $absent{nearest}) = pgnear_target('nearest', $relay_port, $eu, $dir);
if (length $opt{baseline}) {
    die "no pgnear binary at $opt{baseline}\n" unless -x $opt{baseline};
    ($target{'nearest-base'}, $absent{'nearest-base'}) =
      pgnear_target('nearest', $relay_port, $eu, $dir, $opt{baseline}, 'nearest-base');
}
$target{pgpool} = $pgpool = start_pgpool($relay_port, $eu);
my @order = grep { !length $opt{only} || ",$opt{only}," =~ /,\Q$_\E,/ }
  ('direct', 'read-write', 'nearest', (length $opt{baseline} ? ('nearest-base') : ()), 'pgpool');
wait_target($target{$_}) for grep { $target{$_} } @order;

my $ids = { map { my $t = $_; $t => [split /\n/, $us->psql_admin("SELECT id FROM $t ORDER BY id", dbname => 'movr')] }
            qw(users vehicles) };
my %servers = (primary => $us, standby => $eu);
printf "%d clients, %g s rounds, %d rounds; primary %g ms away each way, standby %s behind; "
     . "%g %% writes (%g %% of them blocks); pgnear pool_mode %s\n",
    @opt{qw(clients seconds rounds delay-ms apply-delay writes blocks pool_mode)};
my %results;
for my $round (1 .. $opt{rounds}) {
    for my $name (grep { $target{$_} } @order) {
        my $r = run_round($target{$name}, \%servers, $ids, $dir);
        push @{ $results{$name} }, $r;
        printf "round %d %-12s %7.1f tps, reads near %5.1f%%, %.2f round trips to us-east a transaction, "
             . "stale %d/%d, failed %d\n", $round, $name, $r->{tps}, 100 * $r->{near}, $r->{crossings},
            $r->{stale}, $r->{readbacks}, $r->{failed};
    }
}
print "\n";
print_results(\@order, \%results, \%absent);
