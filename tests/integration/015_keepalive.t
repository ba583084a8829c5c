# TCP keepalive on both connections of a session (a peer that vanishes
# without a FIN must not hold its session and server connection forever):
# on by default with a 60 s idle time, tunable and reloadable, and off on
# request.  The kernel's own view (ss -o) is what is checked.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;

my $SS = require_tool('ss');
my $us = PgNearTest::Cluster->new(name => 'us-east');
my $p = PgNearTest::Proxy->new(regions => [$us], settings => { auth => 'passthrough', server_tls => 'disable' });

# The keepalive timer (seconds left, or undef without one) of the socket
# with this local port and peer port, as the kernel reports it.  Data not
# yet acknowledged shows a retransmit timer instead, so wait (bounded) for
# the socket to settle.  ss writes the time as "59sec", "1min0sec" or, in
# Debian 12's iproute2, "6.984ms" for 6.984 s.
sub keepalive_left {
    my ($sport, $dport) = @_;
    my $left;
    PgNearTest::wait_until(sub {
        my ($rc, $out, $err) = run_cmd([$SS, '-tnoH', 'state', 'established',
                                        "( sport = :$sport and dport = :$dport )"], timeout => 10);
        die "ss: $err" if $rc;
        return 0 if $out =~ /timer:\(on,/;
        $left = $out !~ /\S/ ? 'no such socket' : ($out =~ /timer:\(keepalive,([^,]+),/)[0];
        return 1;
    }, timeout => 3, interval => 0.1);
    return undef unless defined $left;
    return $left if $left eq 'no such socket';
    my $min = $left =~ s/^(\d+)min// ? $1 : 0;
    my ($n, $unit) = $left =~ /^(\d+(?:\.\d+)?)(ms|sec)$/ or return "unparsed: $left";
    $n /= 1000 if $unit eq 'ms' && $n !~ /\./;
    return $min * 60 + $n;
}

# A session through pgnear: [pgnear's side of the client connection, pgnear's side of the server connection].
sub session_sockets {
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 10);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    die "login failed\n" unless $r->{ok};
    my $server_side = $w->query('SELECT client_port FROM pg_stat_activity WHERE pid = pg_backend_pid()')->{rows}[0][0];
    return ($w, [$p->port, $w->socket->sockport], [$server_side, $us->port]);
}

{
    my ($w, $client, $server) = session_sockets();
    my $c = keepalive_left(@$client);
    my $s = keepalive_left(@$server);
    ok defined $c && $c > 0 && $c <= 60, "client connection: keepalive armed, idle 60 s ($c s left)";
    ok defined $s && $s > 0 && $s <= 60, "server connection: keepalive armed, idle 60 s ($s s left)";
    $w->terminate;
}

{
    my $off = $p->log_size;
    $p->update_config(settings => { tcp_keepidle => '7s', tcp_keepintvl => '2s', tcp_keepcnt => 3 });
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded/, offset => $off), 'reload with tcp_keepidle = 7s';
    my ($w, $client, $server) = session_sockets();
    my $c = keepalive_left(@$client);
    my $s = keepalive_left(@$server);
    ok defined $c && $c > 0 && $c <= 7, "new sessions: client side idle 7 s ($c s left)";
    ok defined $s && $s > 0 && $s <= 7, "new sessions: server side idle 7 s ($s s left)";
    $w->terminate;
    # Later ones too, whose sockets have their listener's options (given once, at the change).
    Time::HiRes::sleep(2.5);
    my ($w2, $client2) = session_sockets();
    my $c2 = keepalive_left(@$client2);
    ok defined $c2 && $c2 > 0 && $c2 <= 7, "a session 2.5 s later: client side idle 7 s ($c2 s left)";
    $w2->terminate;
}

{
    my $off = $p->log_size;
    $p->update_config(settings => { tcp_keepalive => 'off' });
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded/, offset => $off), 'reload with tcp_keepalive = off';
    my ($w, $client, $server) = session_sockets();
    is keepalive_left(@$client), undef, 'client connection: no keepalive timer';
    is keepalive_left(@$server), undef, 'server connection: no keepalive timer';
    $w->terminate;
}

{
    my $off = $p->log_size;
    $p->update_config(settings => { tcp_keepalive => 'on', tcp_keepidle => '0s' });
    $p->signal('HUP');
    ok $p->wait_for_log(qr/reload failed, keeping the current configuration: \S+:\d+: tcp_keepidle must be 1s or more/, offset => $off),
      'tcp_keepidle below 1 s is refused';
}
ok $p->is_running, 'pgnear is running';

done_testing;
