# How a transaction pool grows when a crowd comes at once (pool_wait.h,
# health_login_overlap in routing/health.h): its logins to a host overlap
# as far as their round trips leave the server idle.
#  - A near host (this machine) takes one at a time: 24 clients send a
#    query together into a pool of 8 holding one connection; PostgreSQL's
#    log shows the 7 logins that fill it, none begun before the one before
#    it was authorized; every query is answered; SHOW RTT says 1.  Its
#    wire_ms, the checks' round trips less the server's time for them,
#    is below their average (that time would make a loaded near host look
#    distant).
#  - A distant host (behind a delay relay, 30 ms each way) takes several:
#    the same crowd's logins overlap, as SHOW RTT's figure allows (2 or
#    more: nearly all of such a login is spent on the network); the
#    relay's delay counts in wire_ms, which TCP's figure stops short of.
#  - A transaction that waits while its pool grows is told why: a login
#    through a relay that stalls it holds the pool's growth, and a second
#    client's query waits for it rather than dialing too, then gets 53300
#    at query_wait_timeout saying the pool was growing, one login at a
#    time, with how much of it is open; the relay saw one login, not two.
#    Once the stalled login gives up (server_connect_timeout), the pool
#    grows again and a query is answered.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
my $srcdir = $ENV{PGNEAR_SRCDIR} // die "PGNEAR_SRCDIR is not set (make check sets it)\n";

my $pg = PgNearTest::Cluster->new(name => 'us-east');
my $auth_dir = tmpdir(name => 'growth-auth');
write_file("$auth_dir/userlist.txt",
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $pg->scram_verifier('app') . qq{"\n});
my %BASE = (auth => 'scram', auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
            server_tls => 'disable', pool_mode => 'transaction', pool_size => 8, workers => 1,
            health_check_interval => '200ms');
my $CROWD = 24;

sub login { $_[0]->wire_login(user => 'app', database => 'movr', password => 'app-secret') }

# The logins of app to movr that PostgreSQL logged after byte $from of its log:
# [received, authorized] in seconds of the day, one a backend.
sub logins_since {
    my ($from) = @_;
    my $log = slurp_file($pg->log_path);
    my (%received, @logins);
    for my $line (split /\n/, substr($log, $from)) {
        next unless $line =~ /^\S+ (\d+):(\d+):([\d.]+) \S+ \[(\d+)\] .*connection (received|authorized): (.*)/;
        my ($t, $pid, $what, $rest) = ($1 * 3600 + $2 * 60 + $3, $4, $5, $6);
        if ($what eq 'received') {
            $received{$pid} = $t;
        } elsif ($rest =~ /user=app database=movr/ && defined $received{$pid}) {
            push @logins, [$received{$pid}, $t];
        }
    }
    return @logins;
}

# The most logins under way at once: each from its receipt up to (not at) its authorization.
sub most_at_once {
    my @edges = sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } map { ([$_->[0], 1], [$_->[1], -1]) } @_;
    my ($now, $most) = (0, 0);
    for (@edges) { $now += $_->[1]; $most = $now if $now > $most }
    return $most;
}

sub logins_at_once {
    my ($p) = @_;
    my ($row) = $p->admin_rows('SHOW RTT');
    return $row ? $row->{logins_at_once} : undef;
}

# $CROWD clients, logged in, send a query together; returns how many were answered.
sub crowd_burst {
    my ($p) = @_;
    my @crowd = map { login($p) } 1 .. $CROWD;
    $_->send_query('SELECT pg_sleep(0.3)') for @crowd;
    my $answered = grep { my $r = $_->read_result; !$r->{error} } @crowd;
    $_->terminate for @crowd;
    return $answered;
}

# ================================================================ a near host: one at a time
{
    my $p = PgNearTest::Proxy->new(regions => [$pg], settings => {%BASE});
    ok wait_until(sub { my ($r) = $p->admin_rows('SHOW RTT'); $r && $r->{samples} >= 5 },
                  timeout => 20), 'near: the checks measured the host';
    my ($rtt) = $p->admin_rows('SHOW RTT');
    cmp_ok $rtt->{wire_ms}, '<', $rtt->{avg_ms},
      "near: SHOW RTT's wire_ms leaves out the server's time for the checks ($rtt->{wire_ms} ms of $rtt->{avg_ms})";
    my $first = login($p);
    is $first->query('SELECT 1')->{rows}[0][0], 1, 'near: the pool holds one connection';
    $first->terminate;
    is logins_at_once($p), 1, 'near: SHOW RTT says one login at a time once one was timed';
    my $from = -s $pg->log_path;
    is crowd_burst($p), $CROWD, "near: all $CROWD queries of the crowd answered";
    my @logins = logins_since($from);
    is scalar(@logins), 7, 'near: 7 logins filled the pool of 8';
    is most_at_once(@logins), 1, 'near: none of them began before the one before it was authorized'
      or diag explain [\@logins, $p->admin_rows('SHOW RTT')];
    $p->stop;
}

# ================================================================ a distant host: several at once
{
    my $dir = tmpdir(name => 'growth-relay');
    my ($port, $log) = (free_port(), "$dir/relay.log");
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        no warnings 'exec';
        exec { $^X } $^X, "$srcdir/bench/delay_relay.pl", '--listen', "127.0.0.1:$port",
          '--target', $pg->hostport, '--delay-ms', 30, '--log', $log;
        POSIX::_exit(127);
    }
    END { kill 'TERM', $pid if $pid }
    wait_until(sub { -e $log && slurp_file($log) =~ /^listening/m }, timeout => 10)
      or BAIL_OUT('the delay relay did not start');
    my $p = PgNearTest::Proxy->new(regions => [{ name => 'far', location => '53.35, -6.26',
                                                 hosts => ["127.0.0.1:$port"] }],
                                   settings => {%BASE, server_connect_timeout => '10s'});
    ok wait_until(sub { my ($r) = $p->admin_rows('SHOW RTT'); $r && $r->{samples} >= 1 },
                  timeout => 20), 'far: a check measured the round trip';
    my ($rtt) = $p->admin_rows('SHOW RTT');
    cmp_ok $rtt->{wire_ms}, '>=', 60, "far: the relay's 60 ms count as the wire's ($rtt->{wire_ms} ms)";
    my $first = login($p);
    is $first->query('SELECT 1')->{rows}[0][0], 1, 'far: the pool holds one connection';
    $first->terminate;
    my $at_once = logins_at_once($p);
    cmp_ok $at_once, '>=', 2, "far: SHOW RTT lets logins overlap ($at_once at once)";
    my $from = -s $pg->log_path;
    is crowd_burst($p), $CROWD, "far: all $CROWD queries of the crowd answered";
    my @logins = logins_since($from);
    cmp_ok scalar(@logins), '>=', 2, 'far: the pool grew';
    cmp_ok most_at_once(@logins), '>=', 2, 'far: its logins overlapped' or diag explain \@logins;
    $p->stop;
}

# ================================================================ waiting while the pool grows
{
    my $relay = PgNearTest::Relay->new(to => $pg->port);
    my $p = PgNearTest::Proxy->new(regions => [{ name => 'us-east', location => '39.04, -77.49',
                                                 hosts => [$relay->hostport] }],
                                   settings => {%BASE, pool_size => 4, query_wait_timeout => '1s',
                                                server_connect_timeout => '4s'});
    my $holder = login($p);
    is $holder->query('BEGIN')->{error}, undef, 'a client holds the pool\'s one connection in a transaction';
    $relay->intercept(match => 'movr', count => 1, action => 'stall');
    my ($fetcher, $waiter) = (login($p), login($p));
    $fetcher->send_query('SELECT 1');
    ok wait_until(sub { scalar $relay->intercepted }, timeout => 10), 'its login for the next query stalls';
    my $t0 = time;
    my $r = $waiter->query('SELECT 2');
    my $took = time - $t0;
    is $r->{error}{C}, '53300', 'a query behind it waits, and gets 53300 at query_wait_timeout';
    cmp_ok $took, '>=', 0.9, "after query_wait_timeout ($took s)";
    like $r->{error}{D} // '', qr/The pool of region us-east was growing, 1 login at a time to host 127\.0\.0\.1:\d+ .*and held 2 of its 4 server connections \(pool_size\)/,
      'its detail says the pool was growing, one login at a time' or diag explain $r->{error};
    is_deeply [$relay->intercepted], ['stall'], 'it did not dial a login of its own';
    $relay->intercept(match => 'movr', count => 0);
    my $fr = $fetcher->read_result;
    ok $fr->{error}, "the stalled login's query fails at server_connect_timeout ("
      . ($fr->{error}{C} // '?') . ')';
    my $after = login($p);
    is $after->query('SELECT 3')->{rows}[0][0], 3, 'then the pool grows again: a query is answered';
    is $holder->query('COMMIT')->{error}, undef, 'the holder commits';
    $_->terminate for $holder, $after;
    $p->stop;
}

done_testing;
