# Losing the server: a session whose server goes away gets a proper
# PostgreSQL error (class 08 or 57P01), never a hang; before a session is
# established pgnear fails over to the next host of the region (refused
# port, or a host that accepts TCP and never speaks, bounded by
# server_connect_timeout); a region with no reachable host gives 08001.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $eu = PgNearTest::Cluster->new(name => 'eu-west');
my %base = (auth => 'passthrough', server_tls => 'disable', client_login_timeout => '6s');

sub wire {
    my ($p, %o) = @_;
    return PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => $o{timeout} // 8);
}

sub login {
    my ($p) = @_;
    my $w = wire($p);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    die 'login through pgnear failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n"
      unless $r->{ok};
    return ($w, $r);
}

# What the connection does next: {kind => msg|eof|reset|timeout, type, fields}
sub next_event {
    my ($w) = @_;
    my @m = eval { $w->read_msg };
    if ($@) { return { kind => $@ =~ /timed out/ ? 'timeout' : 'reset', why => $@ } }
    return { kind => 'eof' } unless @m;
    return { kind => 'msg', type => $m[0],
             fields => $m[0] =~ /^[EN]$/ ? PgNearTest::Wire::parse_fields($m[1]) : {} };
}

# Everything up to ReadyForQuery or the end of the connection:
# {error => first ErrorResponse, notices => [...], ready => 0|1, end => eof|reset|timeout, took}
sub drain {
    my ($w) = @_;
    my $t0 = time;
    my %r = (notices => [], ready => 0);
    for (1 .. 1000) {
        my $ev = next_event($w);
        if ($ev->{kind} ne 'msg') { $r{end} = $ev->{kind}; last }
        if ($ev->{type} eq 'E') { $r{error} //= $ev->{fields} }
        elsif ($ev->{type} eq 'N') { push @{ $r{notices} }, $ev->{fields} }
        elsif ($ev->{type} eq 'Z') { $r{ready} = 1; last }
    }
    $r{took} = time - $t0;
    return \%r;
}

# Sends a query (the write may fail if pgnear already closed) and drains.
sub query_outcome {
    my ($w, $sql) = @_;
    eval { $w->send_msg('Q', "$sql\0") };
    return drain($w);
}

sub closed { my ($k) = @_; defined $k && ($k eq 'eof' || $k eq 'reset') }

sub backend_gone {
    my ($c, $pid) = @_;
    return wait_until(sub { $c->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid") eq '0' },
                      timeout => 10);
}

# ==================================================================== (a) pg_terminate_backend

my $p = PgNearTest::Proxy->new(regions => [$us], settings => { %base });
{
    my ($w, $r) = login($p);
    is $w->query('SHOW cluster_name')->{rows}[0][0], 'us-east', '(a) idle session on us-east';
    my $pid = $r->{pid};
    ok $pid, '(a) backend pid known from BackendKeyData';
    is $us->psql_admin("SELECT pg_terminate_backend($pid)"), 't', '(a) pg_terminate_backend run on the cluster';
    my $t0 = time;
    my $ev = next_event($w);
    is $ev->{kind} . ':' . ($ev->{type} // ''), 'msg:E', '(a) the idle client gets an ErrorResponse' or diag explain $ev;
    is $ev->{fields}{C}, '57P01', "(a) the server's SQLSTATE 57P01";
    is $ev->{fields}{S}, 'FATAL', '(a) severity FATAL';
    like $ev->{fields}{M} // '', qr/terminating connection due to administrator command/, "(a) the server's message";
    my $end = next_event($w);
    ok closed($end->{kind}), '(a) then EOF' or diag explain $end;
    cmp_ok time - $t0, '<', 3, '(a) at once';
    close $w->socket;
}
{
    # The same while a query runs on that backend.
    my ($w, $r) = login($p);
    $w->send_msg('Q', "SELECT pg_sleep(30)\0");
    ok wait_until(sub { $us->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE pid = $r->{pid} AND state = 'active'") eq '1' },
                  timeout => 5), '(a) a long query runs';
    $us->psql_admin("SELECT pg_terminate_backend($r->{pid})");
    my $o = drain($w);
    is $o->{error} && $o->{error}{C}, '57P01', '(a) the busy client gets 57P01' or diag explain $o;
    ok closed($o->{end}), '(a) then EOF' or diag explain $o;
    cmp_ok $o->{took}, '<', 3, '(a) at once';
    close $w->socket;
}
{
    # A session whose backend was killed by a signal: the postmaster
    # restarts, every other session is cut too.
    my ($w1, $r1) = login($p);
    my ($w2, $r2) = login($p);
    my $off = $p->log_size;
    kill 'KILL', $r1->{pid} or die "kill $r1->{pid}: $!";
    my $o1 = query_outcome($w1, 'SELECT 1');
    # The postmaster ends the other backends a moment after it sees the crash:
    # until then the sibling may still answer, so ask again (bounded).
    my $o2;
    for (1 .. 50) {
        $o2 = query_outcome($w2, 'SELECT 1');
        last if $o2->{error} || closed($o2->{end});
        select(undef, undef, undef, 0.1);
    }
    for ([$o1, 'killed backend'], [$o2, 'sibling of the killed backend']) {
        my ($o, $what) = @$_;
        like $o->{error} ? $o->{error}{C} : 'none', qr/^(08...|57P0[12])$/,
          "(a) $what: the client gets an error of class 08 or 57P0x" or diag explain $o;
        ok closed($o->{end}), "(a) $what: then EOF" or diag explain $o;
        cmp_ok $o->{took}, '<', 5, "(a) $what: within a few seconds";
    }
    close $_->socket for $w1, $w2;
    ok wait_until(sub { my ($rc, $out) = psql($p->conninfo, 'SELECT 1', timeout => 10); $rc == 0 && $out eq '1' },
                  timeout => 20, interval => 0.5), '(a) sessions work again once the server recovered';
}
ok kill(0, $p->pid), '(a) pgnear is alive';
is psql($p->conninfo, 'SHOW cluster_name'), 'us-east', '(a) a new session works after the terminations';

# ==================================================================== (b) cluster stopped -m immediate

{
    my ($idle, $ri) = login($p);
    my ($busy, $rb) = login($p);
    is $idle->query('SELECT 1')->{rows}[0][0], 1, '(b) idle session ready';
    $busy->send_msg('Q', "SELECT pg_sleep(30)\0");
    sleep 0.3;
    $us->stop(mode => 'immediate');
    ok !$us->is_running, '(b) cluster stopped with -m immediate';

    my $o = query_outcome($idle, 'SELECT 1');
    my $code = $o->{error} ? $o->{error}{C} : 'none';
    like $code, qr/^(08006|08\d\d\d|57P01)$/, "(b) the idle session's next query gets 08006 or 57P01 (got $code)"
      or diag explain $o;
    ok !$o->{ready}, '(b) no ReadyForQuery, the session is over';
    ok closed($o->{end}), '(b) then EOF' or diag explain $o;
    cmp_ok $o->{took}, '<', 5, '(b) within a few seconds';
    close $idle->socket;

    my $ob = drain($busy);
    like $ob->{error} ? $ob->{error}{C} : 'none', qr/^(08\d\d\d|57P01)$/, '(b) the busy session gets 08xxx or 57P01'
      or diag explain $ob;
    ok closed($ob->{end}), '(b) the busy session is closed' or diag explain $ob;
    close $busy->socket;

    # While the only server is down, a new login gets 08001 naming the region.
    my $w = wire($p);
    my $t0 = time;
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    is $r->{error} && $r->{error}{C}, '08001', '(b) a login while the server is down gets 08001' or diag explain $r;
    like $r->{error} ? $r->{error}{M} : '', qr/us-east/, '(b) naming the region';
    cmp_ok time - $t0, '<', 3, '(b) at once (connection refused)';
    close $w->socket;

    ok kill(0, $p->pid), '(b) pgnear is alive';
    $us->start;
    is psql($p->conninfo, 'SHOW cluster_name'), 'us-east', '(b) after the cluster restarts, new sessions work';
    like $p->log_contents, qr/c\d+: FATAL (08006|57P01)/, '(b) pgnear logged the lost session with its client id';
}
$p->stop(signal => 'INT');

# ==================================================================== (c) first host refuses, second works

my $dead  = free_port();    # reserved, nothing listens there
my $dead2 = free_port();
{
    my $pc = PgNearTest::Proxy->new(
        regions  => [{ name => 'failover', location => '50.0, 8.0', hosts => ["127.0.0.1:$dead", $eu] }],
        settings => { %base });
    my $t0 = time;
    is psql($pc->conninfo, 'SHOW cluster_name'), 'eu-west', '(c) the session lands on the second host';
    cmp_ok time - $t0, '<', 3, '(c) without delay';
    my ($w) = login($pc);
    is $w->query('SHOW cluster_name')->{rows}[0][0], 'eu-west', '(c) a Wire session too';
    is $w->query('SELECT 2 + 2')->{rows}[0][0], 4, '(c) and works';
    $w->terminate;
    # Either a client's attempt or the health check (which starts with pgnear) finds it first.
    like $pc->log_contents,
      qr/c\d+: server 127\.0\.0\.1:$dead of region failover failed: Connection refused|host 127\.0\.0\.1:$dead of region failover is down: .*refused/,
      '(c) the log says the first host failed';
    like $pc->log_contents, qr/c\d+: session established: .*region=failover server=127\.0\.0\.1:${\ $eu->port }/,
      '(c) and where the session went';
    $pc->stop(signal => 'INT');
}

# ==================================================================== (d) the region's only host is down

{
    my $pd = PgNearTest::Proxy->new(
        regions  => [{ name => 'lonely', location => '10.0, 10.0', hosts => ["127.0.0.1:$dead"] },
                     { name => 'twodead', location => '20.0, 20.0', hosts => ["127.0.0.1:$dead", "127.0.0.1:$dead2"] }],
        settings => { %base });
    my $w = wire($pd);
    my $t0 = time;
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    ok !$r->{ok}, '(d) no session';
    is $r->{error} && $r->{error}{C}, '08001', '(d) the client gets 08001' or diag explain $r;
    like $r->{error} ? $r->{error}{M} : '', qr/lonely/, '(d) the message names the region';
    is $r->{error} && $r->{error}{S}, 'FATAL', '(d) severity FATAL';
    ok closed(next_event($w)->{kind}), '(d) then the connection closes';
    cmp_ok time - $t0, '<', 3, '(d) at once';
    close $w->socket;

    my ($rc, $out, $err) = psql($pd->conninfo, 'SELECT 1', timeout => 15);
    isnt $rc, 0, '(d) psql fails';
    like $err, qr/could not connect to any server of region "lonely"/, '(d) psql shows why';

    # Both hosts of a region down: both tried, then 08001.
    my $off = $pd->log_size;
    $pd->update_config(settings => { default_region => 'twodead' });
    $pd->signal('HUP');
    ok $pd->wait_for_log(qr/configuration reloaded/, offset => $off), '(d) default region switched to twodead';
    $w = wire($pd);
    $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    is $r->{error} && $r->{error}{C}, '08001', '(d) two dead hosts: 08001' or diag explain $r;
    like $r->{error} ? $r->{error}{M} : '', qr/twodead/, '(d) naming the region';
    close $w->socket;
    my $log = substr($pd->log_contents, $off);
    like $log, qr/server 127\.0\.0\.1:$dead of region twodead failed/, '(d) first host tried';
    like $log, qr/server 127\.0\.0\.1:$dead2 of region twodead failed/, '(d) second host tried';
    like $log, qr/c\d+: FATAL 08001: could not connect to any server of region "twodead"/, '(d) FATAL logged with client id';
    ok kill(0, $pd->pid), '(d) pgnear is alive';
    $pd->stop(signal => 'INT');
}

# ==================================================================== (e) a host that accepts TCP and never speaks

my $blackhole = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp',
                                      Listen => 64, ReuseAddr => 1)
  or die "cannot open the silent listener: $!";
my $bh = $blackhole->sockport;
note "silent listener on 127.0.0.1:$bh (never accepts, never reads)";

for my $tls (qw(disable prefer)) {
    my $pe = PgNearTest::Proxy->new(
        regions  => [{ name => 'slow', location => '30.0, 30.0', hosts => ["127.0.0.1:$bh", $eu] }],
        settings => { %base, server_tls => $tls, server_connect_timeout => '1s' });
    my $w = wire($pe, timeout => 10);
    my $t0 = time;
    my $r = eval { $w->startup(user => 'app', database => 'movr', password => 'app-secret') };
    my $took = time - $t0;
    ok $r && $r->{ok}, "(e, server_tls=$tls) the login fails over to the second host"
      or diag($r ? explain $r : $@);
    is $r && $r->{ok} && $w->query('SHOW cluster_name')->{rows}[0][0], 'eu-west',
      "(e, server_tls=$tls) the session is on the second host";
    cmp_ok $took, '>=', 0.8, "(e, server_tls=$tls) after server_connect_timeout";
    cmp_ok $took, '<', 2.5, "(e, server_tls=$tls) within ~1-2 s";
    like $pe->log_contents, qr/c\d+: server 127\.0\.0\.1:$bh of region slow failed: timeout/,
      "(e, server_tls=$tls) the log says the silent host timed out";
    close $w->socket;
    ok kill(0, $pe->pid), "(e, server_tls=$tls) pgnear is alive";
    $pe->stop(signal => 'INT');
}
close $blackhole;

done_testing;
