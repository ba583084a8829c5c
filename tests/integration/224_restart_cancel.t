# Cancel requests during a restart on the same port: pgnear A serves a
# session, pgnear B starts beside it (SO_REUSEPORT, the same
# configuration and unix_socket_dir) and A is sent SIGUSR2.  A stops
# listening but keeps its sessions, and a Unix socket for cancel requests
# (.s.PGNEAR.PORT.draining, mode 0600).  A CancelRequest for A's session
# now reaches B, which does not know the key and passes it there: the
# query ends with 57014, under protocol 3.0 and 3.2, with and without a
# fleet's peer_id (synthetic process IDs).  A key nobody knows is passed
# once and goes no further (A, draining, passes nothing on).  Anything but
# a CancelRequest on A's cancel socket gets 57P03.  A exits once its
# sessions end, removes its cancel socket and leaves B's Unix socket be.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

my $us = PgNearTest::Cluster->new(name => 'us-east');

for my $fleet (0, 1) {
    my $tag = $fleet ? 'peer_id 1' : 'no fleet';
    my $port = free_port(ipv6 => 1);
    my $dir = PgNearTest::tmpdir(name => 'sock', mode => 0755);
    my %set = (auth => 'passthrough', server_tls => 'disable', unix_socket_dir => $dir,
               ($fleet ? (peer_id => 1, peers => "1\@127.0.0.1:$port") : ()));
    my $a = PgNearTest::Proxy->new(port => $port, regions => [$us], settings => \%set);
    my @s;
    for my $proto ([3, 0], [3, 2]) {
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port);
        my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret', protocol => $proto);
        ok $r->{ok}, "$tag: a protocol 3.$proto->[1] session on A" or diag explain $r->{error};
        is length($r->{key}), $proto->[1] == 2 ? 32 : 4, '... with a key of its length';
        push @s, [$w, $r, "3.$proto->[1]"];
    }
    my $b = PgNearTest::Proxy->new(port => $port, regions => [$us], settings => \%set);
    ok $b->is_running, "$tag: B runs beside A on the same port";
    my $off_a = $a->log_size;
    kill 'USR2', $a->pid;
    my $sock = "$dir/.s.PGNEAR.$port.draining";
    ok wait_until(sub { -S $sock }, timeout => 10), "$tag: A, draining, keeps its cancel socket";
    is((stat $sock)[2] & 0777, 0600, '... mode 0600');
    ok wait_until(sub { substr($a->log_contents, $off_a) =~ /received SIGUSR2/ }, timeout => 5),
      '... and says SIGUSR2';

    for my $x (@s) {
        my ($w, $r, $p) = @$x;
        $w->send_msg('Q', "SELECT pg_sleep(20)\0");
        ok wait_until(sub { $us->psql_admin("SELECT count(*) FROM pg_stat_activity "
                                          . "WHERE query = 'SELECT pg_sleep(20)' AND state = 'active'") eq '1' },
                      timeout => 10), "$tag, $p: A's session runs pg_sleep(20)";
        my $off_b = $b->log_size;
        my $t = time;
        PgNearTest::Wire->cancel(host => '127.0.0.1', port => $port, pid => $r->{pid}, key => $r->{key});
        my $res = $w->read_result;
        my $took = time - $t;
        is $res->{error} && $res->{error}{C}, '57014', "$tag, $p: the cancel sent to the port reaches A's query";
        cmp_ok $took, '<', 3, sprintf('... in %.3f s', $took);
        ok wait_until(sub { substr($b->log_contents, $off_b) =~ /cancel request passed to the pgnear this one replaced/ },
                      timeout => 5), '... passed on by B';
        is $w->query('SELECT 1')->{rows}[0][0], 1, '... and the session goes on';
    }

    # A key nobody knows: passed once, dropped by A.
    my ($off_a2, $off_b2) = ($a->log_size, $b->log_size);
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $port, pid => $s[0][1]{pid}, key => 'zzzz');
    ok wait_until(sub { substr($a->log_contents, $off_a2) =~ /matches no session; ignored/ }, timeout => 5),
      "$tag: an unknown key is passed to A, which finds nothing";
    # B logs once its write is done, which may be after A has already read it and logged.
    my $passed = sub { scalar(() = substr($b->log_contents, $off_b2) =~ /passed to the pgnear this one replaced/g) };
    wait_until(sub { $passed->() >= 1 }, timeout => 5);
    sleep 0.3;
    is $passed->(), 1, '... passed once';
    unlike substr($a->log_contents, $off_a2), qr/passed to the pgnear/, '... and A passes nothing on';

    # A startup packet on the cancel socket.
    my $c = PgNearTest::Wire->connect(socket_path => $sock);
    my $sr = $c->startup(user => 'app', database => 'movr', password => 'app-secret');
    is $sr->{error} && $sr->{error}{C}, '57P03', "$tag: a login on A's cancel socket gets 57P03";

    $_->[0]->terminate for @s;
    ok wait_until(sub { !$a->is_running }, timeout => 15), "$tag: A exits once its sessions have ended";
    ok !-e $sock, '... its cancel socket is gone';
    ok -S "$dir/.s.PGSQL.$port", "... B's Unix socket is still there";
    my ($rc, $out) = psql("host=$dir port=$port dbname=movr user=app password=app-secret", 'SELECT 1');
    is $out, '1', '... and takes sessions';
    $b->stop;
}

done_testing;
