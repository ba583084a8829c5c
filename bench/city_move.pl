#!/usr/bin/perl
# What moving one city costs the clients: MOVE CITY 'seattle' OF DATABASE
# movr TO REGION us-west while every city writes through one pgnear.  Two
# PostgreSQL 15 regions with wal_level = logical: us-east on loopback, and
# us-west behind bench/delay_relay.pl (--delay-ms each way, 30 by default:
# about the round trip between the two coasts), so that pgnear, its
# clients and us-east's replication back reach it over a slow link (the
# copy itself, us-west's subscription to us-east, goes direct).  movr is
# homed by city (home_by = city) with MovR's keys: users, vehicles and
# rides keyed (city, id uuid), promo_codes without the column; four cities,
# all in us-east at the start.
#
# --sessions writers per city run pgbench through pgnear, each session
# placed by its city (startup hint pgnear.city), each transaction MovR's
# "start a ride" (BEGIN; UPDATE a vehicle; INSERT a ride; COMMIT), paced to
# --rate transactions a second per session.  pgbench logs every
# transaction (-l); its latency here is its own time, from its BEGIN to
# its COMMIT's answer (pgbench's time less its schedule lag).  The steps:
#   before     --seconds of load
#   copy       MOVE CITY ... TO REGION us-west until SHOW MOVES says streaming
#   streaming  --seconds more
#   cutover    MOVE CITY ... CUTOVER, from the command to its answer
#   after      --seconds with seattle in us-west
#   finish     MOVE CITY ... FINISH (seattle's rows deleted in us-east)
# Prints, for seattle's sessions, the hold each saw at the cutover (its
# longest transaction overlapping the CUTOVER command, hold included) as
# min / median / max, the same less a transaction's p50 in us-west, and
# the hold_ms of the answer's rows; for the other cities, transactions,
# p50, p99 and max latency in each step (a transaction overlapping the
# CUTOVER command counts in its row, the others by their start; "- held"
# is the hold itself, read from pgnear's log); and the failed transactions
# per city, which must be 0.  A failed transaction, a session of another
# city held or one of seattle's not held prints DEFECT and exits 1.
#
#   bench/city_move.pl [--sessions 4] [--rate 10] [--seconds 5] [--users 1000]
#                      [--vehicles 100] [--rides 20000] [--delay-ms 30]
#                      [--workers 2] [--keep]
#
# --users, --vehicles and --rides are rows per city; --delay-ms 0 runs
# without the relay; --keep keeps the clusters, logs and pgbench's
# transaction logs (the directory is printed at the end).  Needs a built
# pgnear (build/pgnear or $PGNEAR); scripts/install-deps.sh installs the
# rest.  Not part of the test suite.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use Getopt::Long;
use IPC::Run ();
use List::Util qw(max sum);
use POSIX ();
use Time::HiRes qw(time sleep);
use Time::Local qw(timegm);
use PgNearTest;
use PgNearDbMove qw(write_users admin_rows);

$| = 1;
my %opt = (sessions => 4, rate => 10, seconds => 5, users => 1000, vehicles => 100, rides => 20000,
           'delay-ms' => 30, workers => 2);
GetOptions(\%opt, 'sessions=i', 'rate=f', 'seconds=f', 'users=i', 'vehicles=i', 'rides=i', 'delay-ms=f',
           'workers=i', 'keep')
    or die "usage: see the head of $0\n";
$ENV{PGNEAR_TEST_KEEP} = 1 if $opt{keep};
$ENV{PGNEAR} //= -x "$FindBin::RealBin/../build/pgnear" ? "$FindBin::RealBin/../build/pgnear" : './pgnear';
die "no pgnear binary at $ENV{PGNEAR}: build first\n" unless -x $ENV{PGNEAR};
my $pgbench = require_tool('pgbench');

my @CITIES = qw(seattle boston amsterdam paris);
my $MOVED = 'seattle';
my @OTHERS = grep { $_ ne $MOVED } @CITIES;

# ---------------------------------------------------------------- servers

# synchronous_commit on, as in production (the test clusters' default is off).
my %CONF = (conf => { wal_level => 'logical', max_replication_slots => 10, max_wal_senders => 10,
                      synchronous_commit => 'on' });
my $us = PgNearTest::Cluster->new(name => 'us-east', %CONF);
my $west = PgNearTest::Cluster->new(name => 'us-west', %CONF);
$west->psql_admin('DROP DATABASE movr');
load_movr($us);
my $app_secret = $us->scram_verifier('app');
$west->psql_admin("ALTER ROLE app PASSWORD '$app_secret'");
my $dir = tmpdir(name => 'city-move', mode => 0755);
write_users($dir, $app_secret);

# MovR's tables, homed by city: the keys pair city with city, ids are UUIDs.
sub load_movr {
    my ($pg) = @_;
    my $cities = join ', ', map { "'$_'" } @CITIES;
    my %n = map { $_ => $opt{$_} } qw(users vehicles rides);
    $pg->psql_admin([<<"SQL", 'ANALYZE'], dbname => 'movr', timeout => 600);
CREATE TABLE users (city text, id uuid DEFAULT gen_random_uuid(), name text NOT NULL, address text,
    PRIMARY KEY (city, id));
CREATE TABLE vehicles (city text, id uuid DEFAULT gen_random_uuid(), owner_id uuid, n int NOT NULL,
    status text NOT NULL DEFAULT 'available', PRIMARY KEY (city, id), UNIQUE (city, n),
    FOREIGN KEY (city, owner_id) REFERENCES users (city, id));
CREATE TABLE rides (city text, id uuid DEFAULT gen_random_uuid(), vehicle_id uuid, rider_id uuid,
    start_time timestamptz DEFAULT now(), revenue numeric(10,2), PRIMARY KEY (city, id),
    FOREIGN KEY (city, vehicle_id) REFERENCES vehicles (city, id));
CREATE TABLE promo_codes (code text PRIMARY KEY, description text);
INSERT INTO users (city, name, address) SELECT c, c || ' user ' || g, g || ' Main Street'
    FROM unnest(ARRAY[$cities]) c, generate_series(1, $n{users}) g;
INSERT INTO vehicles (city, owner_id, n)
    SELECT city, id, k - 1 FROM (SELECT city, id, row_number() OVER (PARTITION BY city ORDER BY id) AS k FROM users) u
    WHERE k <= $n{vehicles};
INSERT INTO rides (city, vehicle_id, rider_id, revenue)
    SELECT v.city, v.id, v.owner_id, (g % 50) + 2.5
    FROM generate_series(0, $n{rides} - 1) g JOIN vehicles v ON v.n = g % $n{vehicles};
INSERT INTO promo_codes SELECT 'code' || g, 'promo ' || g FROM generate_series(1, 25) g;
SQL
}

# us-west behind the delay relay (unless --delay-ms 0).
my $west_host = $west->hostport;
my $relay_pid;
if ($opt{'delay-ms'} > 0) {
    my $port = free_port();
    $relay_pid = fork // die "fork: $!";
    if ($relay_pid == 0) {
        no warnings 'exec';
        exec { $^X } $^X, "$FindBin::RealBin/delay_relay.pl", '--listen', "127.0.0.1:$port",
            '--target', $west->hostport, '--delay-ms', $opt{'delay-ms'}, '--log', "$dir/relay.log";
        POSIX::_exit(127);
    }
    wait_until(sub { -e "$dir/relay.log" && PgNearTest::slurp_file("$dir/relay.log") =~ /^listening/m },
               timeout => 10) or die "the delay relay did not start\n";
    $west_host = "127.0.0.1:$port";
}

my $p = PgNearTest::Proxy->new(
    regions => [$us, { name => 'us-west', hosts => [$west_host] }],
    settings => { auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                  server_tls => 'disable', workers => $opt{workers}, health_check_interval => '1s',
                  health_check_timeout => '5s', move_timeout => '30s',
                  cities_file => "$FindBin::RealBin/../conf/cities.csv" },
    extra_ini => "[database movr]\nregions = us-east\nhome_by = city\n");
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');

sub admin {
    my ($sql) = @_;
    my ($rows, $err, $notices) = admin_rows($admin_ci, $sql, timeout => 300);
    die "$sql failed:\n$err" if defined $err;
    return ($rows, $notices);
}

wait_until(sub { my ($r) = admin('SHOW REGIONS'); 2 == grep { $_->{role} eq 'primary' } @$r }, timeout => 30)
    or die "pgnear's health checks do not see both primaries\n";

# ---------------------------------------------------------------- the load

my %load;    # city -> {h, out, err}
END { for (values %load) { eval { $_->{h}->kill_kill } if $_->{h} && $_->{h}->pumpable } }
END { kill 'TERM', $relay_pid if $relay_pid }

# A city's writers: pgbench through pgnear, placed by the startup hint, each transaction logged.
sub start_writers {
    my ($city) = @_;
    PgNearTest::write_file("$dir/$city.sql", <<"SQL");
\\set v random(0, $opt{vehicles} - 1)
BEGIN;
UPDATE vehicles SET status = 'in_use' WHERE city = '$city' AND n = :v;
INSERT INTO rides (city, vehicle_id, rider_id, revenue)
    SELECT city, id, owner_id, 0.25 FROM vehicles WHERE city = '$city' AND n = :v;
COMMIT;
SQL
    my $ci = $p->conninfo(dbname => 'movr', options => "-c pgnear.city=$city", application_name => $city);
    my %w = (out => '', err => '');
    $w{h} = IPC::Run::start([$pgbench, '-n', '-c', $opt{sessions}, '-j', 1, '-T', 3600,
                             '-R', $opt{rate} * $opt{sessions}, '-l', '--log-prefix', "$dir/txlog-$city",
                             '-f', "$dir/$city.sql", $ci], '>', \$w{out}, '2>', \$w{err});
    return \%w;
}

# Ends a city's writers as -T would (pgbench takes SIGALRM so); its report.
sub stop_writers {
    my ($w) = @_;
    $w->{h}->signal('ALRM');
    my $ok = $w->{h}->finish;
    my $r = parse_pgbench($w->{out} . $w->{err});
    # A transaction that fails other than by a serialization error ends its session.
    $r->{aborted} = () = ($w->{out} . $w->{err}) =~ /aborted in command/g;
    $r->{aborted} ||= 1 unless $ok;
    return $r;
}

# Every transaction pgbench logged for a city: client, start and end (epoch s), latency (ms).
sub transactions {
    my ($city) = @_;
    my @tx;
    for my $file (glob "$dir/txlog-$city.*") {
        open my $fh, '<', $file or die "$file: $!\n";
        while (my $line = <$fh>) {
            my ($client, undef, $time, undef, $epoch, $us_part, $lag) = split ' ', $line;
            next unless defined $us_part && $time =~ /^\d+$/;
            my $end = $epoch + $us_part / 1e6;
            my $ms = ($time - ($lag // 0)) / 1000;
            push @tx, { client => $client, end => $end, start => $end - $ms / 1000, ms => $ms };
        }
    }
    return @tx;
}

# ---------------------------------------------------------------- the move

sub load_average { (split ' ', PgNearTest::slurp_file('/proc/loadavg'))[0] }
my $cpus = () = PgNearTest::slurp_file('/proc/cpuinfo') =~ /^processor/mg;
printf "machine: %d CPUs, load average %s; %d sessions per city at %g tx/s each, "
       . "%d users, %d vehicles, %d rides per city; us-west %s; pgnear workers = %d\n",
       $cpus, load_average(), @opt{qw(sessions rate users vehicles rides)},
       $opt{'delay-ms'} > 0 ? "$opt{'delay-ms'} ms away each way" : 'on loopback', $opt{workers};

$load{$_} = start_writers($_) for @CITIES;
sub rides_written {
    $us->psql_admin("SELECT count(*) FROM rides WHERE revenue = 0.25 AND city = '$_[0]'", dbname => 'movr');
}
wait_until(sub { !grep { rides_written($_) == 0 } @CITIES }, timeout => 60)
    or die "the writers do not commit:\n" . join('', map { $load{$_}{err} } @CITIES);
sleep 1;    # past the logins

my %t = (start => time);
sleep $opt{seconds};
my $MOVE = "MOVE CITY '$MOVED' OF DATABASE movr";
$t{copy} = time;
my (undef, $notices) = admin("$MOVE TO REGION us-west");
my ($copied) = $notices =~ /(rows whose city = .*)/;
sub move_state { my ($r) = admin('SHOW MOVES'); my ($m) = grep { ($_->{city} // '') eq $MOVED } @$r; $m->{state} // '' }
wait_until(sub { move_state() eq 'streaming' }, timeout => 600, interval => 0.2)
    or die "the move did not reach streaming: " . move_state() . "\n";
$t{streaming} = time;
sleep $opt{seconds};

# The sessions pgnear may hold: seattle's, by their application_name.
my ($clients) = admin('SHOW CLIENTS');
my %seattle_id = map { $_->{id} => 1 } grep { ($_->{application_name} // '') eq $MOVED } @$clients;
$t{cutover} = time;
my ($held, $cut_notices) = admin("$MOVE CUTOVER");
$t{after} = time;
my ($held_ms) = $cut_notices =~ /the sessions were held (\d+) ms/;
sleep $opt{seconds};
$t{finish} = time;
my (undef, $finish_notices) = admin("$MOVE FINISH");
$t{end} = time;
my ($deleted) = $finish_notices =~ /its (\d+) rows in region "us-east" are deleted/;
my %report = map { $_ => stop_writers($load{$_}) } @CITIES;

# ---------------------------------------------------------------- the report

sub pct {
    my ($q, @v) = @_;
    @v = sort { $a <=> $b } @v;
    return @v ? $v[int($q * $#v + 0.5)] : 0;
}
sub overlaps { my ($tx, $from, $to) = @_; $tx->{end} >= $from && $tx->{start} <= $to }
sub overlaps_cutover { overlaps($_[0], $t{cutover}, $t{after}) }
sub mmm { sprintf '%.0f / %.0f / %.0f', pct(0, @_), pct(0.5, @_), pct(1, @_) }

my @strangers = grep { !$seattle_id{ $_->{client_id} } } @$held;
printf "copy: %.1f s (%s)\n", $t{streaming} - $t{copy}, $copied // '?';
printf "cutover: the command %.0f ms, pgnear held %s's sessions %s ms; %d sessions held and moved (%d of %s)\n",
       1000 * ($t{after} - $t{cutover}), $MOVED, $held_ms // '?', scalar @$held, scalar(@$held) - @strangers,
       $MOVED;
print "DEFECT: sessions of other cities held: @{[ map { $_->{client_id} } @strangers ]}\n" if @strangers;
printf "DEFECT: %d of %s's %d sessions were not held\n", keys(%seattle_id) - (@$held - @strangers), $MOVED,
       scalar keys %seattle_id if @$held - @strangers != keys %seattle_id;
my @seattle = transactions($MOVED);
my @hold = map { my $c = $_; max(0, map { $_->{ms} } grep { $_->{client} == $c && overlaps_cutover($_) } @seattle) }
           0 .. $opt{sessions} - 1;
my $p50_before = pct(0.5, map { $_->{ms} } grep { $_->{start} >= $t{start} && $_->{end} < $t{cutover} } @seattle);
my $p50_after = pct(0.5, map { $_->{ms} } grep { $_->{start} > $t{after} && $_->{start} < $t{finish} } @seattle);
printf "%s's hold per session at the cutover, ms (min / median / max): seen by the client %s "
       . "(less a transaction's p50 in us-west: %s); pgnear's hold_ms %s\n", $MOVED, mmm(@hold),
       mmm(map { $_ - $p50_after } @hold), mmm(map { $_->{hold_ms} } @$held);
printf "%s's transactions, p50 ms: %.1f before (us-east), %.1f after (us-west)\n", $MOVED, $p50_before, $p50_after;
printf "finish: %.1f s, %s rows deleted in us-east\n", $t{end} - $t{finish}, $deleted // '?';

# The hold itself, from pgnear's log: from "holding the city's sessions" to the last one moved.
sub hold_window {
    my ($from, $to);
    for my $line (split /\n/, $p->log_contents) {
        my ($y, $mo, $d, $h, $mi, $sec, $msg) = $line =~ /^(\d+)-(\d+)-(\d+) (\d+):(\d+):([\d.]+) UTC (.*)/ or next;
        my $at = timegm(0, $mi, $h, $d, $mo - 1, $y) + $sec;
        $from = $at if $msg =~ /: holding the city's sessions/;
        $to = $at if defined $from && $msg =~ /moved from region us-east to region us-west/;
    }
    return defined $to ? ($from, $to) : ($t{after}, $t{after});
}
@t{qw(held released)} = hold_window();
printf "the hold in pgnear's log: %.0f ms, from holding %s's sessions to the last one moved\n",
       1000 * ($t{released} - $t{held}), $MOVED;

my @steps = ([before => $t{start}, $t{copy}], [copy => $t{copy}, $t{streaming}],
             [streaming => $t{streaming}, $t{cutover}], [cutover => $t{cutover}, $t{after}],
             ['- held' => $t{held}, $t{released}],
             [after => $t{after}, $t{finish}], [finish => $t{finish}, $t{end}]);
my @others = map { transactions($_) } @OTHERS;
printf "\nthe other cities (%s, %d sessions), latency ms:\n", join(', ', @OTHERS), $opt{sessions} * @OTHERS;
printf "%-10s %8s %6s %8s %8s %8s\n", qw(step seconds txns p50 p99 max);
for my $s (@steps) {
    my ($name, $from, $to) = @$s;
    my @ms = map { $_->{ms} } grep {
        $name =~ /^(cutover|- held)$/ ? overlaps($_, $from, $to)
          : !overlaps_cutover($_) && $_->{start} >= $from && $_->{start} < $to
    } @others;
    printf "%-10s %8.2f %6d %8.1f %8.1f %8.1f\n", $name, $to - $from, scalar @ms, pct(0.5, @ms), pct(0.99, @ms),
           pct(1, @ms);
}
my $failed = sum(map { ($report{$_}{failed} // 0) + $report{$_}{aborted} } @CITIES);
printf "\nfailed transactions: %s (of %d)\n",
       join(', ', map { "$_ " . (($report{$_}{failed} // 0) + $report{$_}{aborted}) } @CITIES),
       sum(map { $report{$_}{processed} // 0 } @CITIES);
if ($failed) {
    print "DEFECT: failed transactions; pgbench said:\n", map { $load{$_}{err} } @CITIES;
}
printf "load average at the end: %s\n", load_average();
print "kept: $dir\n" if $opt{keep};
exit($failed || @strangers ? 1 : 0);
