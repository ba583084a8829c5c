# GET /healthz and GET /readyz on metrics_addr (proxy/admin/probes.c), with
# workers = 1 and 2: both answer JSON while pgnear starts (readyz 503
# "starting" before a health check has passed, for a region whose only host
# never answers), in steady state (200, each region's hosts up, role,
# fenced, paused; HEAD without a body; other methods 405, other paths 404),
# under PAUSE from the console (503 "paused"; a paused region among others
# leaves it ready), with a region's hosts stopped (still ready) and with
# every region's (503 "no_host_up"), and on SIGINT with
# shutdown_ready_grace: /readyz answers 503 "stopping" while the client
# port still takes connections and logins, and only later does the port
# close; SIGTERM likewise, the drain answering 503 after it; a SIGTERM
# during SIGUSR2's grace keeps SIGUSR2's drain, a second SIGINT ends it.  Before probes.c, metrics_addr answered 404 to both paths and
# shutdown_ready_grace was an unknown setting.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use IO::Socket::IP;
use IO::Select;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $eu = PgNearTest::Cluster->new(name => 'eu-west');
my $auth_dir = PgNearTest::tmpdir(name => 'probes-auth');
write_file("$auth_dir/userlist.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});

# One HTTP/1.0 request: (status, headers text, body), () when nothing answered.
sub http {
    my ($port, $method, $path) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 5)
      or return ();
    binmode $s;
    print $s "$method $path HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    my ($sel, $text, $deadline) = (IO::Select->new($s), '', time + 10);
    while (time < $deadline) {
        last unless $sel->can_read(1);
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $text .= $buf;
    }
    close $s;
    return () unless $text =~ m{\AHTTP/1\.[01] (\d+)[^\n]*\n(.*?)\r?\n\r?\n(.*)\z}s;
    return ($1, $2, $3);
}

# A probe: (status, decoded body or undef); () when nothing answered.
sub probe {
    my ($port, $path) = @_;
    my ($status, undef, $body) = http($port, 'GET', $path) or return ();
    my $doc = eval { JSON::PP->new->decode($body) };
    return ($status, $doc);
}

# The region named in a probe's body.
sub region_of {
    my ($doc, $name) = @_;
    my ($r) = grep { $_->{name} eq $name } @{ $doc->{regions} // [] };
    return $r // { hosts => [{}] };
}

# Waits for /readyz to answer with this status (and reason); returns the last body.
sub wait_ready {
    my ($mport, $want, $reason, %o) = @_;
    my $last;
    my $ok = wait_until(sub {
        my ($st, $doc) = probe($mport, '/readyz');
        $last = $doc;
        return defined $st && $st == $want && (!defined $reason || ($doc->{reason} // '') eq $reason);
    }, timeout => $o{timeout} // 30, interval => 0.2);
    diag explain $last unless $ok;
    return $ok ? $last : undef;
}

# Whether a TCP connection to the port is taken now (then closed at once).
sub port_takes {
    my ($port) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

for my $workers (1, 2) {
    my $name = "workers=$workers";
    my %common = (auth => 'passthrough', server_tls => 'disable', admin_users => 'admin',
                  auth_file => "$auth_dir/userlist.txt", workers => $workers,
                  health_check_interval => '1s');

    # ---- start: a region whose only host takes the connection and never answers
    {
        my $mport = free_port();
        my $silent = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => free_port(), Listen => 16,
                                         ReuseAddr => 1) or die "listen: $!";
        my $p = PgNearTest::Proxy->new(
            regions => [{ name => 'nowhere', location => '0, 0', hosts => ['127.0.0.1:' . $silent->sockport] }],
            settings => { %common, metrics_addr => "127.0.0.1:$mport", health_check_timeout => '4s' });
        my ($st, $doc) = probe($mport, '/readyz');
        is $st, 503, "$name, start: /readyz answers 503 before any health check has ended";
        is $doc->{reason}, 'starting', '... reason "starting"' or diag explain $doc;
        is region_of($doc, 'nowhere')->{hosts}[0]{checked}, JSON::PP::false, '... its host not checked yet';
        ($st, $doc) = probe($mport, '/healthz');
        is $st, 200, "$name, start: /healthz answers 200 meanwhile";
        is $doc->{status}, 'alive', '... status alive';
        is $doc->{workers}, $workers, "... $workers workers answered";
        ok wait_ready($mport, 503, 'no_host_up', timeout => 20),
            "$name, start: once its check fails, /readyz says no_host_up";
        is $p->stop(signal => 'INT'), 0, "$name: that pgnear stops";
        close $silent;
    }

    # ---- steady state
    my $mport = free_port();
    my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
        settings => { %common, metrics_addr => "127.0.0.1:$mport", shutdown_ready_grace => '3s' });
    my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');
    # The metrics listener may open a moment after the client port (new() waits for that
    # one): a slow build under ThreadSanitizer refused the first look.
    my ($st, $doc);
    wait_until(sub { ($st, $doc) = probe($mport, '/readyz'); defined $st }, timeout => 10, interval => 0.05);
    ok defined $st && ($st == 200 || ($st == 503 && $doc->{reason} eq 'starting')),
        "$name: /readyz answers at once after the start: 200, or 503 starting" or diag(($st // 'none') . ' ' . explain $doc);
    ok wait_until(sub {
        ($st, $doc) = probe($mport, '/readyz');
        return $doc && !grep { $_->{hosts_up} != 1 } @{ $doc->{regions} };
    }, timeout => 30, interval => 0.2), "$name: both regions' hosts up once their checks passed" or diag explain $doc;
    is $st, 200, "$name: /readyz 200";
    is $doc->{status}, 'ready', '... status ready';
    is $doc->{stopping}, JSON::PP::false, '... not stopping';
    is $doc->{workers}, $workers, '... workers';
    for my $c ($us, $eu) {
        my $r = region_of($doc, $c->name);
        is_deeply [$r->{state}, $r->{paused}, $r->{hosts_up}], ['enabled', JSON::PP::false, 1],
            "... region " . $c->name . ": enabled, not paused, one host up";
        is_deeply [@{ $r->{hosts}[0] }{qw(host port up role fenced)}],
            [$c->host, $c->port, JSON::PP::true, 'primary', JSON::PP::false], '... its host: up, primary, not fenced';
    }
    ($st, $doc) = probe($mport, '/healthz');
    is $st, 200, "$name: /healthz 200";
    is scalar @{ $doc->{regions} }, 2, '... with both regions';
    my ($hst, $hdr, $body) = http($mport, 'HEAD', '/readyz');
    is $hst, 200, "$name: HEAD /readyz: 200";
    is $body, '', '... without a body';
    like $hdr, qr{^Content-Type: application/json}mi, '... JSON';
    like $hdr, qr{^Content-Length: [1-9]\d*\r?$}mi, '... its length said all the same';
    ($hst, $hdr, $body) = http($mport, 'HEAD', '/healthz');
    is $hst, 200, "$name: HEAD /healthz: 200";
    ($hst) = http($mport, 'POST', '/readyz');
    is $hst, 405, "$name: POST /readyz: 405";
    ($hst, undef, $body) = http($mport, 'GET', '/elsewhere');
    is $hst, 404, "$name: other paths: 404";
    like $body, qr{/metrics /healthz /readyz}, '... naming the paths served';
    ($hst) = http($mport, 'GET', '/metrics');
    is $hst, 200, "$name: /metrics still served";

    # ---- PAUSE from the console
    psql($admin_ci, 'PAUSE');
    $doc = wait_ready($mport, 503, 'paused', timeout => 5);
    ok $doc, "$name: PAUSE: /readyz 503 paused";
    is_deeply [map { region_of($doc, $_->name)->{paused} } $us, $eu], [JSON::PP::true, JSON::PP::true],
        '... both regions paused in the body';
    ($st) = probe($mport, '/healthz');
    is $st, 200, '... /healthz still 200';
    psql($admin_ci, 'RESUME');
    ok wait_ready($mport, 200, undef, timeout => 5), "$name: RESUME: /readyz 200";
    psql($admin_ci, 'PAUSE "eu-west"');
    ($st, $doc) = probe($mport, '/readyz');
    is $st, 200, "$name: PAUSE eu-west alone: still ready (us-east takes sessions)";
    is region_of($doc, 'eu-west')->{paused}, JSON::PP::true, '... eu-west paused in the body';
    psql($admin_ci, 'RESUME "eu-west"');

    # ---- a region down, then every region
    $eu->stop;
    ok wait_until(sub { my (undef, $d) = probe($mport, '/readyz'); $d && region_of($d, 'eu-west')->{hosts_up} == 0 },
                  timeout => 30, interval => 0.2), "$name: eu-west's host stopped: 0 hosts up in the body";
    ($st, $doc) = probe($mport, '/readyz');
    is $st, 200, '... still ready: us-east is up';
    is region_of($doc, 'eu-west')->{hosts}[0]{up}, JSON::PP::false, '... its host not up';
    $us->stop;
    ok wait_ready($mport, 503, 'no_host_up'), "$name: every region's hosts stopped: 503 no_host_up";
    ($st) = probe($mport, '/healthz');
    is $st, 200, '... /healthz still 200: pgnear itself is alive';
    $us->start;
    $eu->start;
    ok wait_ready($mport, 200, undef, timeout => 40), "$name: the hosts back: ready again";

    # ---- SIGINT with shutdown_ready_grace = 3s: not ready before the listener closes
    my $off = $p->log_size;
    my $t0 = time;
    $p->signal('INT');
    my ($t_503, $t_closed, $taken_after_503, @trace);
    while (time - $t0 < 15) {
        my ($rst) = probe($mport, '/readyz');
        my $takes = port_takes($p->port);
        my $t = time - $t0;
        push @trace, sprintf('%.3f readyz=%s port=%s', $t, $rst // 'none', $takes ? 'open' : 'closed');
        $t_503 //= $t if defined $rst && $rst == 503;
        $taken_after_503++ if defined $t_503 && $takes;
        if (!$takes) { $t_closed = $t; last }
        sleep 0.05;
    }
    ok defined $t_503, "$name, SIGINT: /readyz answered 503" or diag join "\n", @trace;
    ok defined $t_closed, "$name, SIGINT: the client port closed" or diag join "\n", @trace;
    ok defined $t_503 && defined $t_closed && $t_503 < $t_closed,
        sprintf("$name, SIGINT: 503 first (%.2f s), the port closed after (%.2f s)", $t_503 // -1, $t_closed // -1)
        or diag join "\n", @trace;
    cmp_ok $taken_after_503 // 0, '>=', 3, '... connections were still taken after the 503';
    cmp_ok(($t_closed // 0) - ($t_503 // 0), '>=', 2, '... for about shutdown_ready_grace (3 s)');
    like $p->_log_from($off), qr/received SIGINT: not ready from now on/, '... the log says so';
    is $p->wait_for_exit(timeout => 15), 0, "$name: pgnear exits 0 after the grace";
}

# ---- SIGTERM during a session: a login during the grace works; the drain answers 503 after it
{
    my $mport = free_port();
    my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
        settings => { auth => 'passthrough', server_tls => 'disable', workers => 2, health_check_interval => '1s',
                      metrics_addr => "127.0.0.1:$mport", shutdown_ready_grace => '2s' });
    ok wait_ready($mport, 200), 'SIGTERM: ready first';
    my $held = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    ok $held->startup(user => 'app', database => 'movr', password => 'app-secret')->{ok}, 'a session held open';
    $p->signal('TERM');
    ok wait_ready($mport, 503, 'stopping', timeout => 2), 'SIGTERM: /readyz 503 stopping at once';
    my $late = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    ok $late && $late->startup(user => 'app', database => 'movr', password => 'app-secret')->{ok},
        '... a login during the grace is served';
    ok wait_until(sub { !port_takes($p->port) }, timeout => 10, interval => 0.05), '... then the listener closes';
    my ($st, $doc) = probe($mport, '/readyz');
    is $st, 503, '... while sessions drain, /readyz answers 503';
    is $doc->{reason}, 'stopping', '... stopping';
    ($st) = probe($mport, '/healthz');
    is $st, 200, '... and /healthz 200: it is alive';
    $late->terminate;
    $held->terminate;
    is $p->wait_for_exit(timeout => 20), 0, 'pgnear exits once the sessions ended';
}

# ---- signals during the grace: SIGTERM after SIGUSR2 keeps SIGUSR2's drain (no
# shutdown_timeout); a second SIGINT ends the grace at once
{
    my $mport = free_port();
    my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
        settings => { auth => 'passthrough', server_tls => 'disable', workers => 2, health_check_interval => '1s',
                      metrics_addr => "127.0.0.1:$mport", shutdown_ready_grace => '2s', shutdown_timeout => '1s' });
    ok wait_ready($mport, 200), 'SIGUSR2, SIGTERM: ready first';
    my $held = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    ok $held->startup(user => 'app', database => 'movr', password => 'app-secret')->{ok}, 'a session held open';
    my $off = $p->log_size;
    $p->signal('USR2');
    ok wait_ready($mport, 503, 'stopping', timeout => 2), 'SIGUSR2: 503 stopping';
    $p->signal('TERM');
    ok $p->wait_for_log(qr/received SIGTERM during shutdown_ready_grace/, offset => $off), '... SIGTERM during the grace is logged';
    ok port_takes($p->port), '... the port still takes connections';
    ok wait_until(sub { !port_takes($p->port) }, timeout => 10, interval => 0.05), '... until the grace is over';
    like $p->_log_from($off), qr/shutdown_ready_grace is over: no new connections; waiting for sessions to end, however long/,
        "... then SIGUSR2's drain, SIGTERM's weaker one kept for nothing";
    sleep 2;
    is $held->query('SELECT 1')->{rows}[0][0], 1, '... past shutdown_timeout (1 s) the session still runs';
    $held->terminate;
    is $p->wait_for_exit(timeout => 15), 0, 'pgnear exits once the session ended';

    $mport = free_port();
    $p = PgNearTest::Proxy->new(regions => [$us, $eu],
        settings => { auth => 'passthrough', server_tls => 'disable', workers => 2, health_check_interval => '1s',
                      metrics_addr => "127.0.0.1:$mport", shutdown_ready_grace => '60s' });
    ok wait_ready($mport, 200), 'SIGINT twice: ready first';
    $p->signal('INT');
    ok wait_ready($mport, 503, 'stopping', timeout => 2), 'SIGINT: 503 stopping, for a grace of 60 s';
    my $t0 = time;
    $p->signal('INT');
    is $p->wait_for_exit(timeout => 10), 0, 'a second SIGINT: pgnear stops at once';
    cmp_ok time - $t0, '<', 5, sprintf('... within %.1f s', time - $t0);
    like $p->log_contents, qr/received SIGINT during shutdown_ready_grace: ending it now/, '... and says so';
}

done_testing;
