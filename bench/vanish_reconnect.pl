#!/usr/bin/perl
# What a client that vanishes inside a transaction costs the next one, with
# the server in a region 40 ms away (bench/delay_relay.pl, an 80 ms round
# trip; TLS and SCRAM to the server): pgnear under pool_mode = transaction,
# pool_size = 1, one worker.  Each round a client logs in, runs BEGIN and an
# UPDATE that takes a row lock, and its socket closes without a Terminate;
# the next client then logs in and runs the same row's UPDATE in a
# transaction of its own.  Reported per server_rollback_timeout (5s, the
# default: the connection is canceled, rolled back and kept; 0: closed, as
# PgBouncer does): the next client's time from connect() to its COMMIT
# (median and worst), and the server logins the rounds cost
# (pg_stat_database.sessions).
#
#   bench/vanish_reconnect.pl [--rounds 20] [--delay-ms 40]
#
# Needs a built pgnear (build/pgnear, ./pgnear or $PGNEAR).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use Getopt::Long;
use POSIX ();
use IO::Socket::IP;
use Time::HiRes qw(time sleep);
use PgNearTest;

$| = 1;
my %opt = (rounds => 20, 'delay-ms' => 40);
GetOptions(\%opt, 'rounds=i', 'delay-ms=f') or die "bad options\n";
$ENV{PGNEAR} //= -x "$FindBin::RealBin/../build/pgnear" ? "$FindBin::RealBin/../build/pgnear" : "$FindBin::RealBin/../pgnear";
die "no pgnear binary at $ENV{PGNEAR}: build first\n" unless -x $ENV{PGNEAR};

my $ca = PgNearTest::CA->new;
my $pg = PgNearTest::Cluster->new(name => 'distant', ca => $ca, location => '35.68, 139.69');
my $dir = PgNearTest::tmpdir(name => 'vanish', mode => 0755);
PgNearTest::write_file("$dir/userlist.txt", qq{"app" "} . $pg->scram_verifier('app') . qq{"\n}, mode => 0644);
$pg->psql_admin('CREATE TABLE vanish (id int PRIMARY KEY, n int); INSERT INTO vanish VALUES (1, 0);'
              . ' GRANT ALL ON vanish TO app', dbname => 'movr');

my $relay_port = PgNearTest::free_port();
my $relay = fork // die "fork: $!";
if ($relay == 0) {
    exec { $^X } $^X, "$FindBin::RealBin/delay_relay.pl", '--listen', "127.0.0.1:$relay_port",
        '--target', '127.0.0.1:' . $pg->port, '--delay-ms', $opt{'delay-ms'}, '--log', "$dir/relay.log"
      or POSIX::_exit(127);
}
END { kill 'TERM', $relay if $relay }
PgNearTest::wait_until(sub { IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $relay_port) }, timeout => 10)
  or die "the delay relay did not listen\n";

sub sessions { $pg->psql_admin(q{SELECT sessions FROM pg_stat_database WHERE datname = 'movr'}) }

sub login {
    my ($p) = @_;
    return $p->wire_login(user => 'app', database => 'movr', password => 'app-secret');
}

for my $timeout (qw(5s 0)) {
    my $p = PgNearTest::Proxy->new(
        regions => [{ name => 'distant', location => $pg->location, hosts => ["127.0.0.1:$relay_port"] }],
        settings => { auth => 'scram', auth_file => "$dir/userlist.txt", server_tls => 'require',
                      server_tls_ca_file => $ca->cert, pool_mode => 'transaction', pool_size => 1,
                      workers => 1, server_rollback_timeout => $timeout, health_check_interval => 0 });
    login($p)->terminate; # the pool's first connection
    my $before = sessions();
    my @t;
    for (1 .. $opt{rounds}) {
        my $w = login($p);
        $w->query('BEGIN');
        $w->query('UPDATE vanish SET n = n + 1 WHERE id = 1');
        $w->hangup;
        my $t0 = time;
        my $next = login($p);
        $next->query('BEGIN');
        $next->query('UPDATE vanish SET n = n + 1 WHERE id = 1');
        $next->query('COMMIT');
        push @t, (time - $t0) * 1000;
        $next->terminate;
    }
    sleep 1.5; # pg_stat_database counts a session as its backend first reports
    my $logins = sessions() - $before;
    my @s = sort { $a <=> $b } @t;
    printf "server_rollback_timeout = %-3s next client's login to COMMIT: median %.0f ms, worst %.0f ms;"
         . " %d server logins for %d vanished clients\n", $timeout, $s[@s / 2], $s[-1], $logins, $opt{rounds};
    $p->stop;
}
