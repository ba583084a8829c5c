#!/usr/bin/perl
# How long a new session to a distant region waits for its first row: the
# time from connect() to the first row of SELECT 1, with the server behind
# bench/delay_relay.pl (40 ms each way by default, so an 80 ms round trip),
# for each path:
#   direct       the client connects to the distant server itself
#   pgnear       a client 1 ms from pgnear (auth = scram), which today opens
#                a server connection to the distant region for each client
#   pgbouncer    PgBouncer (session mode, 1 ms from the client); its first
#                session, which opens the server connection, is reported on
#                its own: the later ones reuse that connection
# once with TLS between the proxies (and the direct client) and the server,
# once without.  Sessions go path by path, interleaved.  The round trips
# come from the distant relay's counts: those before the first row reached
# the client, and those of the whole session (PgBouncer's reset query after
# the client left is one more); a new TCP connection across the distant
# link counts one for its handshake.
#
#   bench/distant_connect.pl [--sessions 30] [--delay-ms 40] [--near-delay-ms 0.5]
#                            [--server-tls off,on] [--workers 1] [--trace]
#                            [--pgnear NAME[:key=value,...]]... [--gap-s 0]
#
# --pgnear (repeatable) measures a pgnear with these settings added, as the
# path pgnear:NAME: e.g. --pgnear none:pool_mode=none --pgnear session:pool_mode=session
# --pgnear warm:min_pool_size=1,server_idle_timeout=1s.  Without it, one
# pgnear with the default settings.
# --gap-s waits that long after each session (on top of letting the link go
# quiet): with server_idle_timeout below it, a kept connection is gone by
# the next session, and only min_pool_size has one ready ("the first
# client after a quiet spell").
# --trace makes the relays log every chunk they pass (see delay_relay.pl)
# and prints where the logs are.
#
# Needs a built pgnear (build/pgnear, ./pgnear or $PGNEAR), pgbouncer, and
# DBD::Pg (scripts/install-deps.sh installs them).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use Getopt::Long;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use DBI;
use PgNearTest;
use PgNearBouncer;

$| = 1;

my %opt = (sessions => 30, 'delay-ms' => 40, 'near-delay-ms' => 0.5, 'server-tls' => 'off,on', workers => 1,
           'gap-s' => 0);
GetOptions(\%opt, 'sessions=i', 'delay-ms=f', 'near-delay-ms=f', 'server-tls=s', 'workers=i', 'trace', 'pgnear=s@',
           'gap-s=f')
    or die "bad options\n";
$ENV{PGNEAR} //= -x "$FindBin::RealBin/../build/pgnear" ? "$FindBin::RealBin/../build/pgnear" : "$FindBin::RealBin/../pgnear";
die "no pgnear binary at $ENV{PGNEAR}: build first\n" unless -x $ENV{PGNEAR};
my $relay_script = "$FindBin::RealBin/delay_relay.pl";

my $ca = PgNearTest::CA->new;
my $pg = PgNearTest::Cluster->new(name => 'distant', ca => $ca, location => '35.68, 139.69');
my $verifier = $pg->scram_verifier('app');
my $dir = PgNearTest::tmpdir(name => 'distant', mode => 0755);
PgNearTest::write_file("$dir/userlist.txt", qq{"app" "$verifier"\n}, mode => 0644);

my @relays;
END {
    for my $r (@relays) { kill 'TERM', $r->{pid} if $r->{pid} }
}

# Starts a delay relay in front of 127.0.0.1:$target_port; returns it once it listens.
sub start_relay {
    my ($name, $target_port, $delay_ms) = @_;
    my $port = PgNearTest::free_port();
    my $log = "$dir/relay-$name.log";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        no warnings 'exec';
        exec { $^X } $^X, $relay_script, '--listen', "127.0.0.1:$port", '--target', "127.0.0.1:$target_port",
            '--delay-ms', $delay_ms, '--log', $log, ($opt{trace} ? '--trace' : ());
        POSIX::_exit(127);
    }
    my $relay = { name => $name, pid => $pid, port => $port, log => $log, seq => 0 };
    push @relays, $relay;
    PgNearTest::wait_until(sub { -e $log && PgNearTest::slurp_file($log) =~ /^listening on/m }, timeout => 10)
        or die "delay relay $name did not start\n";
    return $relay;
}

# The relay's totals: {connections, open, round_trips}, asked for with SIGUSR1.
sub relay_totals {
    my ($relay) = @_;
    my $seq = ++$relay->{seq};
    kill 'USR1', $relay->{pid} or die "relay $relay->{name} is gone\n";
    my %t;
    for (1 .. 2000) {
        if (PgNearTest::slurp_file($relay->{log}) =~ /^totals seq=$seq (.*)$/m) {
            %t = map { split /=/ } split ' ', $1;
            return \%t;
        }
        sleep 0.002;
    }
    die "relay $relay->{name} does not report its totals\n";
}

sub start_pgbouncer {
    my ($tls, $server_port) = @_;
    return PgNearBouncer->new(
        name => "pgbouncer-$tls", pool_mode => 'session',
        databases => { postgres => "host=127.0.0.1 port=$server_port dbname=postgres" },
        users => { app => $verifier },
        settings => { server_tls_sslmode => $tls eq 'on' ? 'require' : 'disable' });
}

sub stop_relay {
    my ($relay) = @_;
    kill 'TERM', $relay->{pid};
    waitpid $relay->{pid}, 0;
    $relay->{pid} = 0;
}

# One new session: milliseconds from connect() to the first row of SELECT 1,
# and the distant relay's round trips (to the first row, in all) and new
# connections for it.
sub one_session {
    my ($port, $sslmode, $distant) = @_;
    my $before = relay_totals($distant);
    my $t0 = time;
    my $dbh = DBI->connect("dbi:Pg:host=127.0.0.1;port=$port;dbname=postgres;sslmode=$sslmode", 'app',
                           $PgNearTest::APP_PASSWORD, { RaiseError => 1, PrintError => 0, AutoCommit => 1 });
    my ($one) = $dbh->selectrow_array('SELECT 1');
    my $ms = (time - $t0) * 1000;
    die "SELECT 1 returned " . ($one // 'nothing') . "\n" unless defined $one && $one == 1;
    my $first = relay_totals($distant);
    $dbh->disconnect;
    # let the link go quiet: a pooler's reset query, the server's goodbye
    sleep(6 * $opt{'delay-ms'} / 1000 + 0.05 + $opt{'gap-s'});
    my $after = relay_totals($distant);
    return { ms => $ms, rt_first => $first->{round_trips} - $before->{round_trips},
             rt_all => $after->{round_trips} - $before->{round_trips},
             conns => $after->{connections} - $before->{connections} };
}

sub percentile {
    my ($p, @v) = @_;
    my @s = sort { $a <=> $b } @v;
    my $rank = int($p / 100 * @s + 0.999999);
    return $s[($rank < 1 ? 1 : $rank) - 1];
}

# "5" when every session needed the same, else "min-max"
sub spread {
    my @s = sort { $a <=> $b } @_;
    return $s[0] == $s[-1] ? "$s[0]" : "$s[0]-$s[-1]";
}

# The pgnear variants to measure: --pgnear NAME[:key=value,...] (repeatable)
# adds a pgnear with those settings on top of the common ones.
sub pgnear_variants {
    my @specs = @{ $opt{pgnear} // [] };
    @specs = ('pgnear') unless @specs;
    my @variants;
    for my $spec (@specs) {
        my ($name, $kv) = $spec =~ /^([\w-]+)(?::(.*))?$/ or die "--pgnear takes NAME[:key=value,...]\n";
        my %settings = map { /^\s*([\w.]+)\s*=\s*(.*?)\s*$/ or die "--pgnear $spec: bad '$_'\n"; ($1, $2) }
            split /,/, $kv // '';
        push @variants, { name => $name eq 'pgnear' ? 'pgnear' : "pgnear:$name", settings => \%settings };
    }
    return @variants;
}

# Starts pgnear (each variant) and PgBouncer with server TLS on or off, each
# behind a near relay; returns the paths, direct first, and what to stop.
sub start_paths {
    my ($tls, $distant) = @_;
    my @paths = ({ name => 'direct', port => $distant->{port}, sslmode => $tls eq 'on' ? 'require' : 'disable' });
    my (@relays_here, @proxies);
    for my $v (pgnear_variants()) {
        my $pgnear = PgNearTest::Proxy->new(
            regions => [{ name => 'distant', location => $pg->location,
                          hosts => ["127.0.0.1:$distant->{port}"] }],
            args => ['-q'],
            settings => { auth => 'scram', auth_file => "$dir/userlist.txt",
                          server_tls => $tls eq 'on' ? 'require' : 'disable', health_check_interval => 0,
                          workers => $opt{workers}, %{ $v->{settings} } });
        push @proxies, $pgnear;
        push @relays_here, start_relay("near-$v->{name}-$tls" =~ s/:/-/r, $pgnear->port, $opt{'near-delay-ms'});
        push @paths, { name => $v->{name}, port => $relays_here[-1]{port}, sslmode => 'disable', proxy => 1 };
    }
    my $bouncer = start_pgbouncer($tls, $distant->{port});
    push @relays_here, start_relay("near-pgbouncer-$tls", $bouncer->port, $opt{'near-delay-ms'});
    push @paths, { name => 'pgbouncer', port => $relays_here[-1]{port}, sslmode => 'disable', proxy => 1 };
    my $stop = sub {
        stop_relay($_) for @relays_here;
        $bouncer->stop;
        $_->stop for @proxies;
    };
    return (\@paths, $stop);
}

sub print_row {
    my ($name, @r) = @_;
    my @ms = map { $_->{ms} } @r;
    printf "%-20s %8d %9.1f %8.1f   %-22s %-18s %s\n", $name, scalar @r, percentile(50, @ms),
        percentile(90, @ms), spread(map { $_->{rt_first} } @r), spread(map { $_->{rt_all} } @r),
        spread(map { $_->{conns} } @r);
}

# A proxy's first session is reported on its own (PgBouncer's opens the
# server connection that the later ones reuse); then the paths take turns.
sub run_mode {
    my ($tls, $distant) = @_;
    my ($paths, $stop) = start_paths($tls, $distant);
    my (%first, %res);
    $first{ $_->{name} } = one_session($_->{port}, $_->{sslmode}, $distant) for grep { $_->{proxy} } @$paths;
    for (1 .. $opt{sessions}) {
        push @{ $res{ $_->{name} } }, one_session($_->{port}, $_->{sslmode}, $distant) for @$paths;
    }
    printf "\nserver TLS %s (direct client sslmode=%s; clients to the proxies in plain text)\n", $tls,
        $paths->[0]{sslmode};
    printf "%-20s %8s %9s %8s   %-22s %-18s %s\n", 'path', 'sessions', 'median ms', 'p90 ms',
        'round trips, 1st row', 'round trips, all', 'new distant conns';
    for my $p (@$paths) {
        print_row("$p->{name} (first)", $first{ $p->{name} }) if $first{ $p->{name} };
        print_row($p->{name}, @{ $res{ $p->{name} } });
    }
    $stop->();
}

my $distant = start_relay('distant', $pg->port, $opt{'delay-ms'});
printf "distant link %.1f ms each way (a TCP handshake counts one round trip); clients %.1f ms each way from "
    . "the proxies; %d sessions per path; pgnear %s, workers %d\n", $opt{'delay-ms'}, $opt{'near-delay-ms'},
    $opt{sessions}, $ENV{PGNEAR}, $opt{workers};
printf "gap between sessions: %.1f s\n", $opt{'gap-s'} if $opt{'gap-s'};
for my $v (pgnear_variants()) {
    my $s = $v->{settings};
    printf "%s: auth = scram%s\n", $v->{name}, join('', map { ", $_ = $s->{$_}" } sort keys %$s);
}
for my $tls (split /,/, $opt{'server-tls'}) {
    die "--server-tls takes on and off\n" unless $tls =~ /^(on|off)$/;
    run_mode($tls, $distant);
}
stop_relay($distant);
print "relay logs: $dir/relay-*.log (kept with PGNEAR_TEST_KEEP=1)\n" if $opt{trace};
print "\nmedian and p90 (nearest rank) of the time from connect() to the first row of SELECT 1; round trips "
    . "across the distant link per session, from the relay (min-max when sessions differ)\n";
