#!/usr/bin/perl
# Memory per idle session: opens N sessions that log in and then sit idle,
# through pgnear and through PgBouncer (session mode), for each of client
# plain/TLS x server plain/TLS, and prints the growth of the proxy's
# resident memory divided by N (KiB per idle session).
#
#   bench/idle_memory.pl [--sessions 1000] [--rounds 2] [--pool-mode transaction]
#                        [--websocket]
#
# With --pool-mode transaction both proxies pool by transaction over 5
# server connections (pgnear's pool_size, PgBouncer's default_pool_size),
# and each session has also prepared a named statement (the extended
# protocol, which pgnear follows and PgBouncer 1.18 does not): N may then
# be far above the server's max_connections.  The shell's open-files limit
# must allow N connections (ulimit -n).
#
# --websocket: pgnear alone, its clients over plain TCP, a WebSocket and a
# WebSocket over TLS (wss: websocket_tls, one pgnear each), each logged in
# with SCRAM and having run `SELECT 1` (no prepared statement), and what
# each costs over plain TCP.
#
# Needs a built ./build/pgnear (or $PGNEAR) and pgbouncer (scripts/install-deps.sh).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use Getopt::Long;
use List::Util qw(min);
use Time::HiRes qw(sleep);
use DBI;
use DBD::Pg;
use PgNearTest;
use PgNearBouncer;
use PgNearWs;

$| = 1;
my %opt = (sessions => 1000, rounds => 2, 'pool-mode' => 'session');
GetOptions(\%opt, 'sessions=i', 'rounds=i', 'pool-mode=s', 'websocket') or die "bad options\n";
my $txn = $opt{'pool-mode'} eq 'transaction';
die "--pool-mode: session or transaction\n" unless $txn || $opt{'pool-mode'} eq 'session';
my $pool_size = $txn ? 5 : $opt{sessions} + 10;
$ENV{PGNEAR} //= "$FindBin::RealBin/../build/pgnear";
die "no pgnear binary at $ENV{PGNEAR}: build first\n" unless -x $ENV{PGNEAR};

my $ca = PgNearTest::CA->new;
my $cert = $ca->issue(name => 'proxy', cn => 'localhost', san => ['DNS:localhost', 'IP:127.0.0.1'],
                      owner => 'postgres');
my $pg = PgNearTest::Cluster->new(name => 'idle', ca => $ca, location => '39.04, -77.49',
                                  conf => { max_connections => $pool_size + 50 });
my $verifier = $pg->scram_verifier('app');
my $dir = tmpdir(name => 'idle', mode => 0755);
write_file("$dir/userlist.txt", qq{"app" "$verifier"\n}, mode => 0644);

sub rss_kib {
    my ($pid) = @_;
    return PgNearTest::slurp_file("/proc/$pid/status") =~ /^VmRSS:\s+(\d+) kB/m ? $1 : die "no VmRSS\n";
}

sub pgnear_for {
    my ($server) = @_;
    return PgNearTest::Proxy->new(regions => [$pg], args => ['-q'],
        settings => { auth => 'scram', auth_file => "$dir/userlist.txt",
                      max_client_conn => $opt{sessions} + 100, pool_mode => $opt{'pool-mode'},
                      ($txn ? (pool_size => $pool_size) : ()),
                      client_tls => 'allow', client_tls_cert_file => $cert->{cert},
                      client_tls_key_file => $cert->{key},
                      server_tls => $server eq 'tls' ? 'require' : 'disable' });
}

# PgBouncer in session mode, one per server side, with the same certificate for clients.
sub pgbouncer_for {
    my ($server) = @_;
    return PgNearBouncer->new(
        name => "pgbouncer-$server", pool_mode => $opt{'pool-mode'},
        databases => { movr => 'host=127.0.0.1 port=' . $pg->port . ' dbname=movr' },
        users => { app => $verifier },
        settings => { max_client_conn => $opt{sessions} + 100, default_pool_size => $pool_size,
                      client_tls_sslmode => 'allow', client_tls_cert_file => $cert->{cert},
                      client_tls_key_file => $cert->{key},
                      server_tls_sslmode => $server eq 'tls' ? 'require' : 'disable' });
}

# Opens n sessions, waits for the proxy to settle, returns KiB per session.
# One session first, closed again, so that what the first one allocates
# for good (TLS libraries, buffers of the loop) is not counted.
my ($bouncer_port, @keep);

sub kib_per_session {
    my ($pid, $port, $client) = @_;
    my $ssl = $client eq 'tls' ? 'require' : 'disable';
    my $dsn = "dbi:Pg:host=127.0.0.1;port=$port;dbname=movr;sslmode=$ssl;channel_binding=disable";
    my $open = sub {
        my $dbh = DBI->connect($dsn, 'app', 'app-secret', { RaiseError => 0, PrintError => 0 })
          or die "connect: $DBI::errstr\n";
        $dbh->selectrow_array('SELECT 1') or die "query failed\n";
        # A named statement of the extended protocol (PgBouncer 1.18 forwards it as it is).
        if ($txn && $port != ($bouncer_port // -1)) {
            my $sth = $dbh->prepare('SELECT $1::int + 1', { pg_server_prepare => 1 });
            $sth->execute(1) or die "prepared statement failed\n";
            $sth->finish;
            push @keep, $sth;
        }
        return $dbh;
    };
    $open->()->disconnect;
    sleep 0.5;
    my $before = rss_kib($pid);
    my @h = map { $open->() } 1 .. $opt{sessions};
    sleep 1;
    my $after = rss_kib($pid);
    @keep = ();
    $_->disconnect for @h;
    return ($after - $before) / $opt{sessions};
}

# --websocket: a pgnear whose websocket_port speaks ws or wss, and KiB per
# idle session of clients over transport: plain (its TCP port), ws or wss.
sub kib_per_websocket_session {
    my ($transport) = @_;
    my $wsport = free_port();
    my $near = PgNearTest::Proxy->new(regions => [$pg], args => ['-q'],
        settings => { auth => 'scram', auth_file => "$dir/userlist.txt", server_tls => 'disable',
                      max_client_conn => $opt{sessions} + 100, pool_mode => $opt{'pool-mode'},
                      ($txn ? (pool_size => $pool_size) : ()),
                      client_tls => 'allow', client_tls_cert_file => $cert->{cert},
                      client_tls_key_file => $cert->{key}, websocket_port => $wsport,
                      websocket_tls => $transport eq 'wss' ? 'on' : 'off', websocket_auth => 'scram' });
    my $open = sub {
        my $c = $transport eq 'plain'
          ? PgNearTest::Wire->connect(port => $near->port, timeout => 30)
          : PgNearWs::Pg->connect(port => $wsport, timeout => 30,
                                  ($transport eq 'wss' ? (tls => 1, ca => $ca->cert) : ()));
        my $r = $c->startup(user => 'app', database => 'movr', password => 'app-secret');
        die "$transport login: " . ($r->{error}{M} // 'failed') . "\n" unless $r->{ok};
        my $q = $c->query('SELECT 1');
        die "$transport query failed\n" if $q->{error};
        return $c;
    };
    undef $_ for $open->();
    sleep 0.5;
    my $before = rss_kib($near->pid);
    my @h = map { $open->() } 1 .. $opt{sessions};
    sleep 1;
    my $after = rss_kib($near->pid);
    @h = ();
    $near->stop;
    return ($after - $before) / $opt{sessions};
}

if ($opt{websocket}) {
    PgNearWs::require_ssl();
    my %ws;
    for my $round (1 .. $opt{rounds}) {
        push @{ $ws{$_} }, kib_per_websocket_session($_) for 'plain', 'ws', 'wss';
    }
    printf "%-10s %10s %12s   (pgnear, KiB per idle session, least of %d rounds, %d sessions, pool_mode %s)\n",
        'client', 'KiB', 'over plain', $opt{rounds}, $opt{sessions}, $opt{'pool-mode'};
    my $plain = min(@{ $ws{plain} });
    printf "%-10s %10.2f %12.2f\n", $_, min(@{ $ws{$_} }), min(@{ $ws{$_} }) / $plain for 'plain', 'ws', 'wss';
    exit 0;
}

# A fresh proxy for every measurement: freed memory stays in the process,
# so a second measurement in the same one would see none of it.
my %kib;
for my $round (1 .. $opt{rounds}) {
    for my $server ('plain', 'tls') {
        for my $client ('plain', 'tls') {
            my $near = pgnear_for($server);
            push @{ $kib{"$client/$server"}{pgnear} }, kib_per_session($near->pid, $near->port, $client);
            $near->stop;
            my $bouncer = pgbouncer_for($server);
            $bouncer_port = $bouncer->port;
            push @{ $kib{"$client/$server"}{pgbouncer} },
                kib_per_session($bouncer->pid, $bouncer->port, $client);
            $bouncer->stop;
        }
    }
}
printf "%-14s %12s %14s   (KiB per idle session, least of %d rounds, %d sessions, pool_mode %s)\n",
    'client/server', 'pgnear', 'pgbouncer', $opt{rounds}, $opt{sessions}, $opt{'pool-mode'};
for my $k ('plain/plain', 'tls/plain', 'plain/tls', 'tls/tls') {
    printf "%-14s %12.1f %14.1f\n", $k, min(@{ $kib{$k}{pgnear} }), min(@{ $kib{$k}{pgbouncer} });
}
