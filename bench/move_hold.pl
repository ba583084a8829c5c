#!/usr/bin/perl
# How long a move of a live session holds its client: the hold_ms that
# MOVE CLIENT answers (from the session's safe point to the switch, the
# time a query sent then waits), for a move to a server next door (another
# cluster on loopback) and to one 40 ms away each way behind
# bench/delay_relay.pl, with pool_mode = none (each move logs in: TCP,
# SCRAM, the replay) and pool_mode = session (a move back takes the
# connection kept when the session left).  The session carries what an
# application's would: four settings, SET ROLE, a statement of SQL PREPARE,
# three named protocol statements and a LISTEN channel.  Also the time of
# a query sent just before the move, seen by the client (its hold plus
# the query itself).
#
#   bench/move_hold.pl [--moves 40] [--delay-ms 40] [--workers 1] [--raw]
#
# --raw also prints every hold, in the order the moves were made.
# Prints, per pool mode and kind of move, the median and p99 of hold_ms:
# near->near (us-east and us-west, both on loopback), near->distant
# (to eu-west, behind the relay) and distant->near (back from it: the
# state is read from the distant server, and with a LISTEN channel its
# notifications drained, one round trip each).  Needs a built pgnear (build/pgnear or
# $PGNEAR); scripts/install-deps.sh installs the rest.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use Getopt::Long;
use Time::HiRes qw(time sleep);
use PgNearTest;

$| = 1;
my %opt = (moves => 40, 'delay-ms' => 40, workers => 1);
GetOptions(\%opt, 'moves=i', 'delay-ms=f', 'workers=i', 'raw') or die "usage: see the head of $0\n";
$ENV{PGNEAR} //= -x "$FindBin::RealBin/../build/pgnear" ? "$FindBin::RealBin/../build/pgnear" : './pgnear';
$ENV{PG_BINDIR} //= '/usr/lib/postgresql/15/bin';

my $east = PgNearTest::Cluster->new(name => 'us-east');
my $west = PgNearTest::Cluster->new(name => 'us-west');
my $secret = $east->scram_verifier('app');
$west->psql_admin("ALTER ROLE app PASSWORD '$secret'");
$_->psql_admin('CREATE ROLE reader NOLOGIN; GRANT reader TO app') for $east, $west;
my $dir = PgNearTest::tmpdir(name => 'move-hold', mode => 0755);
PgNearTest::write_file("$dir/users.txt", qq{"admin" "} . PgNearTest::make_scram_verifier('admin-secret')
                                       . qq{"\n"app" "$secret"\n}, mode => 0644);

# The distant region: us-west's cluster again, behind the delay relay.
my $relay_port = PgNearTest::free_port();
my $relay_pid = fork // die "fork: $!";
if ($relay_pid == 0) {
    no warnings 'exec';
    exec { $^X } $^X, "$FindBin::RealBin/delay_relay.pl", '--listen', "127.0.0.1:$relay_port",
        '--target', '127.0.0.1:' . $west->port, '--delay-ms', $opt{'delay-ms'}, '--log', "$dir/relay.log";
    POSIX::_exit(127);
}
END { kill 'TERM', $relay_pid if $relay_pid }
PgNearTest::wait_until(sub { -e "$dir/relay.log" && PgNearTest::slurp_file("$dir/relay.log") =~ /^listening/m },
                       timeout => 10) or die "the delay relay did not start\n";

sub pct {
    my ($p, @v) = @_;
    @v = sort { $a <=> $b } @v;
    return @v ? $v[int($p * $#v + 0.5)] : 0;
}

sub admin_rows {
    my ($p, $sql) = @_;
    my $out = PgNearTest::psql($p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret'),
                               $sql, args => ['-P', 'tuples_only=off', '-P', 'footer=off']);
    my @lines = split /\n/, $out;
    my @head = split /\|/, (shift(@lines) // ''), -1;
    return map { my %r; @r{@head} = split(/\|/, $_, -1); \%r } @lines;
}

sub session {
    my ($p) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => [application_name => 'hold', options => '-c pgnear.city=Boston']);
    die "login failed\n" unless $r->{ok};
    $w->query($_) for ("SET statement_timeout = '30s'", "SET DateStyle = 'ISO, DMY'",
                       "SET search_path = public, pg_catalog", "SET work_mem = '8MB'", 'SET ROLE reader',
                       'PREPARE add1(int) AS SELECT $1 + 1', 'LISTEN events');
    for my $i (1 .. 3) {
        $w->send_msg('P', "stmt$i\0SELECT \$1::int * $i\0" . pack('n', 1) . pack('N', 23));
    }
    $w->send_msg('S', '');
    $w->read_result;
    return $w;
}

printf "%-8s %-14s %6s %10s %10s\n", 'pool', 'move', 'moves', 'median_ms', 'p99_ms';
for my $pool (qw(none session)) {
    my $p = PgNearTest::Proxy->new(
        regions => [$east, $west, { name => 'eu-west', location => '53.35, -6.26',
                                    hosts => ["127.0.0.1:$relay_port"] }],
        settings => { auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                      server_tls => 'disable', pool_mode => $pool, workers => $opt{workers},
                      move_timeout => '30s', health_check_interval => '1s' },
        extra_ini => "\n[cities]\nboston = us-east\n");
    my $w = session($p);
    my ($id) = map { $_->{id} } grep { $_->{application_name} eq 'hold' } admin_rows($p, 'SHOW CLIENTS');
    my %holds = map { $_ => [] } qw(near->near near->distant distant->near);
    my $at = 'near';
    for my $i (1 .. $opt{moves}) {
        my $far = $i % 2 == 0;
        for my $leg ($far ? ('eu-west', 'us-east') : ('us-west', 'us-east')) {
            my ($r) = admin_rows($p, "MOVE CLIENT $id TO REGION $leg");
            die "move to $leg failed: " . ($r->{reason} // '?') . "\n" unless ($r->{result} // '') eq 'moved';
            my $to = $leg eq 'eu-west' ? 'distant' : 'near';
            push @{ $holds{"$at->$to"} }, $r->{hold_ms};
            $at = $to;
            $w->query('EXECUTE add1(1)');
        }
    }
    for my $t (qw(near->near near->distant distant->near)) {
        my @h = @{ $holds{$t} };
        printf "%-8s %-14s %6d %10.1f %10.1f\n", $pool, $t, scalar @h, pct(0.5, @h), pct(0.99, @h);
        print "  $t: @h\n" if $opt{raw};
    }
    $w->terminate;
    $p->stop;
}
