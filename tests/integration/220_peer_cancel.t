# Cancel forwarding between pgnear instances ("peers"): three pgnear in
# front of one PostgreSQL 15 cluster (us-east), peer_id 1, 2, 3, the same
# peers list and peer_secret_file, cancel_rate_limit 20 (the default is
# 100), two workers each, behind HAProxy (the Debian package) in TCP mode,
# balance roundrobin, with no PROXY header towards pgnear (pgnear sees
# every client as 127.0.0.1, HAProxy's address).  The peers list has a
# fourth entry whose address never answers (a full accept queue: SYNs are
# dropped), as a host that is down without a word.
#   - cancels reach their query wherever HAProxy puts the CancelRequest:
#     9 each of psql's Ctrl-C (SIGINT), DBD::Pg's pg_cancel (libpq 15's
#     PQcancel), node-postgres (a second Client's cancel(), tests/node/
#     cancel_client.js) and the raw protocol client, over plain TCP and TLS
#     (libpq 15 and node-postgres send the cancel itself in plain TCP; the
#     raw client sends it inside TLS, IO::Socket::SSL), under
#     protocol 3.0, and 3.2 with the raw client; extra connections (a
#     GSSENCRequest each) move the round robin on, so that every instance
#     holds sessions and a third of the cancels reach the owner itself, the
#     others one of the two other instances; every query ends with 57014
#     within 5 s; the time from the cancel to the 57014 is printed per kind
#     (diag), split into local and forwarded ones; the log lines of the
#     forwarder and the owner count the same as the metrics;
#   - the keys: under 3.0 the BackendKeyData process ID is synthetic and
#     names the instance (bit 30, bits 29..16), under 3.2 the process ID is
#     the server's real one, bytes 1-2 of the key name the instance and
#     bytes 20-31 are the HMAC computed here from the secret file; the
#     forwarded flag is clear; keys of live sessions with the forwarded
#     flag set are dropped as misrouted, not forwarded twice; a signed key
#     naming a peer that is not listed is dropped as bad_key;
#   - 4,000 forged keys through HAProxy: 2,000 random 3.0 keys naming a
#     peer (one in ten with the process ID of a live session) cancel
#     nothing, the rate limit shows (rate_limited grows) and bounds the
#     forwards (per worker: burst plus rate times the time); 2,000 3.2 keys
#     with a valid format byte and peer id but a wrong HMAC (half of them a
#     live session's own key with only the HMAC changed) cancel nothing and
#     are never forwarded (pgnear_peer_cancels_total direction="out" and
#     SHOW PEERS forwarded_out do not move); the sessions' own keys still
#     work afterwards;
#   - the silent peer 4: a cancel for it is given up after
#     cancel_forward_timeout (2 s) plus slack, and the client's connection,
#     held while the forward is under way (a cancel call returns once its
#     cancel took effect), is closed then, not later; for a second after that failure requests for it fail at
#     once (peer_failed, no connection); then, signed 3.2 keys naming it
#     take at most half of cancel_max_inflight (the rest dropped as busy),
#     while a cancel for a session on instance 2 sent to instance 1 still
#     ends its query; none of it costs a rate-limit token;
#   - a PROXY header from a peer's address (HAProxy's, 127.0.0.1) is no
#     trusted proxy: ahead of a login it gets 28000, and one posing as peer
#     2 without the MAC the fleet's secret makes gets its cancel dropped as
#     bad_key, counted nowhere as forwarded;
#   - instance 3 killed with SIGKILL: a cancel for one of its sessions sent
#     to instance 1 is done with within cancel_forward_timeout plus slack,
#     SHOW PEERS on instance 1 says peer 3 is not reachable and why, and
#     instances 1 and 2 go on cancelling, directly and through HAProxy;
#   - SHOW PEERS and /metrics agree: forwarded_out of a on b's row equals
#     forwarded_in of b on a's row, pairwise, before and after the kill;
#     pgnear_peer_cancels_total and pgnear_peer_cancel_failures_total equal
#     the rows; result="forwarded" and result="peer_failed" equal their sums.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use DBI;
use DBD::Pg qw(:async);
use Digest::SHA qw(hmac_sha256);
use IO::Select;
use IPC::Run ();
use JSON::PP ();
use List::Util qw(sum max min);
use POSIX ();
use PgNearTest;
use PgNearFleet;
use PgNearHAProxy;

$SIG{PIPE} = 'IGNORE';

my $T0 = time;
my $SRCDIR = $ENV{PGNEAR_SRCDIR} // "$FindBin::RealBin/../..";
my $PGNEAR = $ENV{PGNEAR} // die "220_peer_cancel: PGNEAR is not set\n";

# Cancels per client kind.  The rounds' placement repeats every 9 rounds
# (see "1. cancels through HAProxy"): 9 rounds put a session on every
# instance and send its cancel to every instance, 3 local and 6 forwarded
# cancels a kind; more rounds only repeat those 9 cases.
my $ROUNDS          = 9;
my $FORGED_EACH     = 2_000;    # forged 3.0 keys, and as many forged 3.2 keys
my $CANCEL_WAIT     = 5;        # a cancel must end its query within this (s)
my $FORWARD_TIMEOUT = 2;        # cancel_forward_timeout (its default, written out)
my $SLACK           = 1.5;      # on top of cancel_forward_timeout
my $RATE            = 20;       # cancel_rate_limit (the default is 100): misses a second, burst twice that
my $WORKERS         = $ENV{PGNEAR_TEST_WORKERS} // 2;    # its buckets are per worker

# ---------------------------------------------------------------- tools: fail, never skip

my $PSQL = require_tool('psql');
my $NODE = require_tool('node');
require_tool($_) for qw(haproxy openssl);
my $NODE_DIR = "$SRCDIR/tests/node";
my $NODE_CLIENT = "$NODE_DIR/cancel_client.js";
die "220_peer_cancel: $NODE_DIR/node_modules/pg is missing: scripts/install-deps.sh installs it "
  . "(npm ci in tests/node)\n" unless -d "$NODE_DIR/node_modules/pg";
{
    my ($rc, $out) = run_cmd([$NODE, '--version']);
    my ($major) = $out =~ /^v(\d+)\./;
    die "220_peer_cancel: node $out is too old: node-postgres needs Node.js 16 or later\n"
      unless $rc == 0 && defined $major && $major >= 16;
    my ($prc, $pout) = run_cmd([$NODE, '-p', 'require("pg/package.json").version'], cwd => $NODE_DIR);
    s/\s+\z// for $out, $pout;
    note "node $out, node-postgres $pout";
}

# ---------------------------------------------------------------- the cluster, certificates, files

my $ca   = PgNearTest::CA->new;
my $cert = $ca->issue(name => 'pgnear', cn => 'localhost', san => ['DNS:localhost', 'IP:127.0.0.1'], owner => undef);
my $us   = PgNearTest::Cluster->new(name => 'us-east');
my $dir  = tmpdir(name => 'peers', mode => 0755);
my $userlist = "$dir/userlist.txt";
write_file($userlist, qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
my $secret_file = "$dir/peer_secret";
my $SECRET = unpack('H*', PgNearFleet::random_bytes(32));    # 64 bytes; the trailing newline is not part of it
write_file($secret_file, "$SECRET\n", mode => 0600);

# The MAC a 3.2 key carries: the first 12 bytes of HMAC-SHA256 over bytes
# 0-2 and 4-19 with the fleet's secret; sign32 puts it in place.
sub mac32 { substr(hmac_sha256(substr($_[0], 0, 3) . substr($_[0], 4, 16), $SECRET), 0, 12) }
sub sign32 { my ($k) = @_; substr($k, 20, 12) = mac32($k); return $k }

# Does this pgnear know peering?  pgnear --check on a configuration with
# every setting of the feature.
my $PEERING = do {
    my $ini = "$dir/check.ini";
    write_file($ini, "[pgnear]\nlisten_port = 6432\npeer_id = 1\n"
                   . "peers = 1\@127.0.0.1:6432, 2\@127.0.0.1:6433, 3\@127.0.0.1:6434\n"
                   . "peer_secret_file = $secret_file\ncancel_forward_timeout = 2s\n"
                   . "cancel_rate_limit = 20\ncancel_max_inflight = 64\n"
                   . "\n[region us-east]\nlocation = 39.04, -77.49\nhosts = " . $us->hostport . "\n");
    my ($rc, $out, $err) = run_cmd([$PGNEAR, '--check', $ini], timeout => 30);
    ok $rc == 0, 'pgnear --check accepts peer_id, peers, peer_secret_file, cancel_forward_timeout, '
               . 'cancel_rate_limit and cancel_max_inflight'
      or diag "pgnear --check exit $rc:\n$out$err\n"
            . "pgnear has no cancel forwarding between peers: every check that needs it fails, and the "
            . "client kinds run against one instance behind HAProxy only";
    $rc == 0;
};
my $N = $PEERING ? 3 : 1;

# ---------------------------------------------------------------- three pgnear, HAProxy in front

my @port  = map { free_port(ipv6 => 1) } 1 .. $N;
my @mport = map { free_port() } 1 .. $N;
# Peer 4 is listed but never runs: its address takes connections into a
# full accept queue and never answers, as a host that is down without a
# word (no RST), so that forwards to it cost cancel_forward_timeout.
my $BLACKHOLE = $PEERING ? PgNearFleet::blackhole() : undef;
my @IDS = (1 .. $N, $PEERING ? (4) : ());
my %ADDR = ((map { ($_ + 1 => "127.0.0.1:$port[$_]") } 0 .. $N - 1), $PEERING ? (4 => "127.0.0.1:$BLACKHOLE->{port}") : ());
my $peers = join ', ', map { "$_\@$ADDR{$_}" } @IDS;
my @p;
for my $i (0 .. $N - 1) {
    push @p, PgNearTest::Proxy->new(port => $port[$i], regions => [$us], settings => {
        auth                 => 'passthrough',
        server_tls           => 'disable',
        client_tls           => 'allow',
        client_tls_cert_file => $cert->{cert},
        client_tls_key_file  => $cert->{key},
        auth_file            => $userlist,
        admin_users          => 'admin',
        metrics_addr         => "127.0.0.1:$mport[$i]",
        # two workers: a CancelRequest often lands on another worker than its session
        workers              => $WORKERS,
        ($PEERING ? (peer_id                => $i + 1,
                     peers                  => $peers,
                     peer_secret_file       => $secret_file,
                     cancel_forward_timeout => "${FORWARD_TIMEOUT}s",
                     cancel_rate_limit      => $RATE) : ()),
    });
}
note "pgnear instances on ports @port (metrics on @mport), peers = $peers";

my $ha = PgNearHAProxy->new(servers => [map { ['p' . ($_ + 1), $port[$_]] } 0 .. $N - 1],
                            check => 'inter 300ms rise 1 fall 1', retries => 2, redispatch => 1);
my $HA = $ha->port;
END { $ha->stop if $ha && $$ == $PgNearTest::OWNER_PID }
ok $ha->wait_status({ map { ('p' . $_ => 'UP') } 1 .. $N }), "HAProxy on port $HA sees all $N pgnear UP"
  or BAIL_OUT('HAProxy: ' . explain($ha->server_status) . $ha->log_contents);

my $watch = PgNearFleet::Watch->new($us);

# Admin console sessions, one per instance (simple protocol).
my @admin;
sub admin_conn {
    my ($i) = @_;
    return $admin[$i] if $admin[$i];
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port[$i], timeout => 10);
    my $r = $w->startup(user => 'admin', database => 'pgnear', password => 'admin-secret');
    die "admin console of instance " . ($i + 1) . ': ' . ($r->{error} ? $r->{error}{M} : 'eof') . "\n" unless $r->{ok};
    return $admin[$i] = $w;
}

# SHOW PEERS of instance $i (0-based) -> {peer_id => row}.
sub show_peers {
    my ($i) = @_;
    my $rows = PgNearFleet::admin_query(admin_conn($i), 'SHOW PEERS');
    return { map { ($_->{peer_id} => $_) } @$rows };
}

sub truthy { my $v = shift // ''; $v =~ /^(?:t|true|yes|on|1)$/i ? 1 : $v =~ /^(?:f|false|no|off|0)$/i ? 0 : undef }

sub scrape_all { [map { PgNearFleet::metrics($_) } @mport] }

# Sum over instances (or one) of a cancel result.
sub results {
    my ($snap, $result, $only) = @_;
    my @i = defined $only ? ($only) : (0 .. $#$snap);
    return sum(0, map { PgNearFleet::metric($snap->[$_], 'pgnear_cancel_requests_total', result => $result) } @i);
}
my @RESULTS = qw(local forwarded no_session bad_key misrouted rate_limited peer_failed busy);

sub result_delta {
    my ($before, $after) = @_;
    return { map { my $r = $_; ($r => results($after, $r) - results($before, $r)) } @RESULTS };
}

sub peer_out { my ($snap, $i) = @_; PgNearFleet::metric($snap->[$i], 'pgnear_peer_cancels_total', direction => 'out') }

# Waits (bounded) until the cancel counters stop moving: forwards in flight have landed.
sub settled_snapshot {
    my $last = scrape_all();
    my $ser = sub { join ',', map { my $s = $_; map { "$_=" . results([$s], $_) } @RESULTS } @{ $_[0] } };
    for (1 .. 50) {
        sleep 0.1;
        my $now = scrape_all();
        return $now if $ser->($now) eq $ser->($last);
        $last = $now;
    }
    return $last;
}

# ---------------------------------------------------------------- client kinds

my $JSON = JSON::PP->new->canonical;

sub ha_conninfo {
    my (%o) = @_;
    return conninfo_string(host => '127.0.0.1', port => $HA, dbname => 'movr', user => 'app',
                           password => 'app-secret', connect_timeout => 10, application_name => $o{app},
                           $o{tls} ? (sslmode => 'verify-full', sslrootcert => $ca->cert) : (sslmode => 'disable'));
}

# psql, cancelled by SIGINT (its Ctrl-C: PQcancel from the signal handler).
sub psql_kind {
    my ($tls) = @_;
    return {
        name => 'psql' . ($tls ? '/tls' : ''), proto => '3.0', tls => $tls, cancel_tls => 0,
        open => sub {
            my ($app) = @_;
            my %s = (in => '', out => '', err => '');
            $s{h} = IPC::Run::start([$PSQL, '-X', '-A', '-t', '-v', 'VERBOSITY=verbose', '-c', 'SELECT pg_sleep(30)',
                                     '-d', ha_conninfo(app => $app, tls => $tls)],
                                    '<', \$s{in}, '>', \$s{out}, '2>', \$s{err}, IPC::Run::timeout(60));
            return \%s;
        },
        cancel => sub {
            my ($s) = @_;
            my $t0 = time;
            $s->{h}->signal('INT');
            my $code;
            while (time - $t0 < $CANCEL_WAIT) {
                eval { $s->{h}->pump_nb };
                last if ($code) = $s->{err} =~ /(?:ERROR|FATAL):\s+([0-9A-Z]{5}):/;
                last unless $s->{h}->pumpable;
                sleep 0.001;
            }
            my $ms = (time - $t0) * 1000;
            ($code) = $s->{err} =~ /(?:ERROR|FATAL):\s+([0-9A-Z]{5}):/ unless $code;
            return { code => $code, ms => $ms, detail => $s->{err} };
        },
        close => sub {
            my ($s) = @_;
            eval { $s->{h}->finish; 1 } or eval { $s->{h}->kill_kill(grace => 1) };
        },
    };
}

# DBD::Pg: an asynchronous query, then pg_cancel (PQcancel, then the result).
# pg_cancel waits for the result, so a cancel that reaches nothing would
# wait out the pg_sleep: a watchdog cancels the server process directly
# after 5.5 s, which still counts as a failure.
sub dbd_kind {
    my ($tls) = @_;
    return {
        name => 'DBD::Pg' . ($tls ? '/tls' : ''), proto => '3.0', tls => $tls, cancel_tls => 0,
        open => sub {
            my ($app) = @_;
            my $dbh = dbi_connect(ha_conninfo(app => $app, tls => $tls))
              or die "DBD::Pg connect through HAProxy: $DBI::errstr\n";
            $dbh->do('SELECT pg_sleep(30)', { pg_async => PG_ASYNC }) or die 'DBD::Pg: ' . $dbh->errstr . "\n";
            return { dbh => $dbh, pid => $dbh->{pg_pid} };
        },
        cancel => sub {
            my ($s, $server_pid) = @_;
            my $dog = fork;
            die "fork: $!" unless defined $dog;
            if ($dog == 0) {
                sleep($CANCEL_WAIT + 0.5);
                { no warnings 'exec';
                  exec $PSQL, '-X', '-q', '-c', "SELECT pg_cancel_backend($server_pid)", '-d',
                       conninfo_string(host => $us->socket_dir, port => $us->port, user => 'postgres',
                                       dbname => 'postgres'); }
                POSIX::_exit(127);
            }
            my $t0 = time;
            my $ok = $s->{dbh}->pg_cancel;
            my $ms = (time - $t0) * 1000;
            kill 'KILL', $dog;
            waitpid($dog, 0);
            my $state = $s->{dbh}->state;
            return { code => ($state eq '' ? undef : $state), ms => $ms,
                     detail => 'pg_cancel returned ' . ($ok ? 'true' : 'false') . ', state ' . $state . ' ' . ($s->{dbh}->errstr // '') };
        },
        close => sub { my ($s) = @_; $s->{dbh}->disconnect },
        pid => sub { $_[0]{pid} },
    };
}

# node-postgres: one cancel_client.js process per kind, driven line by line.
my %NODE_PROC;
sub node_proc {
    my ($tls) = @_;
    return $NODE_PROC{$tls} if $NODE_PROC{$tls};
    my %n = (in => '', out => '', err => '');
    $n{h} = IPC::Run::start([$NODE, $NODE_CLIENT, '--host', '127.0.0.1', '--port', $HA,
                             ($tls ? ('--ssl', '--ca', $ca->cert) : ())],
                            '<', \$n{in}, '>', \$n{out}, '2>', \$n{err}, IPC::Run::timeout(600));
    return $NODE_PROC{$tls} = \%n;
}
sub node_say {
    my ($n, $cmd, $timeout) = @_;
    $n->{in} .= $JSON->encode($cmd) . "\n";
    my $deadline = time + $timeout;
    while (time < $deadline) {
        eval { $n->{h}->pump_nb };
        if ($n->{out} =~ s/^(.*)\n//) { return $JSON->decode($1) }
        die "cancel_client.js ended: $n->{err}\n" unless $n->{h}->pumpable;
        sleep 0.001;
    }
    die "cancel_client.js: no answer to $cmd->{op} within ${timeout}s; stderr: $n->{err}\n";
}
sub node_kind {
    my ($tls) = @_;
    return {
        name => 'node-postgres' . ($tls ? '/tls' : ''), proto => '3.0', tls => $tls, cancel_tls => 0,
        open => sub {
            my ($app) = @_;
            my $n = node_proc($tls);
            my $r = node_say($n, { op => 'start', app => $app, sql => 'SELECT pg_sleep(30)' }, 20);
            die "node-postgres session: " . $JSON->encode($r->{error} // $r) . "\n" unless $r->{ok};
            return { n => $n, pid => $r->{processID} };
        },
        cancel => sub {
            my ($s) = @_;
            my $r = node_say($s->{n}, { op => 'cancel', wait => $CANCEL_WAIT }, $CANCEL_WAIT + 5);
            return { code => $r->{code}, ms => $r->{ms}, detail => $JSON->encode($r) };
        },
        close => sub { },
        pid => sub { $_[0]{pid} & 0xffffffff },
    };
}

# The raw protocol client (PgNearTest::Wire; PgNearFleet::SslWire for TLS,
# whose cancel goes inside TLS too).
sub raw_kind {
    my ($proto, $tls) = @_;
    my $v = join '.', @$proto;
    return {
        name => "raw $v" . ($tls ? '/tls' : ''), proto => $v, tls => $tls, cancel_tls => $tls,
        open => sub {
            my ($app) = @_;
            my $w = $tls ? PgNearFleet::SslWire->connect(host => '127.0.0.1', port => $HA, ca => $ca->cert, timeout => 10)
                         : PgNearTest::Wire->connect(host => '127.0.0.1', port => $HA, timeout => 10);
            my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret', protocol => $proto,
                                params => [application_name => $app]);
            die "raw $v login through HAProxy: " . ($r->{error} ? $r->{error}{M} : 'eof') . "\n" unless $r->{ok};
            $w->send_query('SELECT pg_sleep(30)');
            return { w => $w, pid => $r->{pid}, key => $r->{key} };
        },
        cancel => sub {
            my ($s) = @_;
            my $t0 = time;
            if ($tls) {
                PgNearFleet::tls_cancel(port => $HA, ca => $ca->cert, pid => $s->{pid}, key => $s->{key});
            } else {
                PgNearTest::Wire->cancel(host => '127.0.0.1', port => $HA, pid => $s->{pid}, key => $s->{key},
                                         timeout => $CANCEL_WAIT);
            }
            $s->{w}{timeout} = max(0.1, $CANCEL_WAIT - (time - $t0));
            my $res = eval { $s->{w}->read_result };
            my $ms = (time - $t0) * 1000;
            return { code => ($res ? sqlstate($res->{error}) : undef), ms => $ms,
                     detail => $res ? ($res->{error} ? $res->{error}{M} : "ended: $res->{tag}") : $@ };
        },
        close => sub { my ($s) = @_; eval { $s->{w}->terminate } },
        pid => sub { $_[0]{pid} },
        key => sub { $_[0]{key} },
    };
}

my @KINDS = (psql_kind(0), psql_kind(1), dbd_kind(0), dbd_kind(1), node_kind(0), node_kind(1),
             raw_kind([3, 0], 0), raw_kind([3, 0], 1), raw_kind([3, 2], 0), raw_kind([3, 2], 1));

# ---------------------------------------------------------------- 1. cancels through HAProxy

my $snap_part2_start = scrape_all();
my %stats;    # kind => {reached, tried, ms => [..], by => {local => [...], forwarded => [...]}, failures => [...]}
for my $kind (@KINDS) {
    my $st = $stats{ $kind->{name} } = { tried => 0, reached => 0, ms => [], by => {}, failures => [], keys => [] };
    (my $tag = lc $kind->{name}) =~ s/[^a-z0-9]+/-/g;
    my $failures = 0;
    for my $i (1 .. $ROUNDS) {
        my $app = "pc-$tag-$i";
        $st->{tried}++;
        my ($sess, $r);
        # Each round takes a multiple of 3 connections through HAProxy, so
        # that it starts where the last one did: $before connections, the
        # session, $between connections, the cancel, $after connections.
        # Over 9 rounds every instance holds a session and every instance
        # receives the cancel of a session on every instance.
        my $before  = int(($i - 1) / 3) % 3;
        my $between = $i % 3;
        my $after   = (3 - ($before + $between + 2) % 3) % 3;
        my $ok = eval {
            PgNearFleet::nudge($HA) for 1 .. $before;
            $sess = $kind->{open}->($app);
            my $server_pid = $watch->wait_active($app, timeout => 10)
              or die "the query of $app is not running on the server after 10 s\n";
            push @{ $st->{keys} }, { server_pid => $server_pid,
                                     ($kind->{pid} ? (pid => $kind->{pid}->($sess)) : ()),
                                     ($kind->{key} ? (key => $kind->{key}->($sess)) : ()) };
            PgNearFleet::nudge($HA) for 1 .. $between;    # 0, 1 or 2 connections: the round robin moves on
            my $m0 = $PEERING ? scrape_all() : undef;
            $r = $kind->{cancel}->($sess, $server_pid);
            if ($PEERING) {
                my $d = result_delta($m0, scrape_all());
                $r->{via} = $d->{forwarded} > 0 ? 'forwarded' : $d->{local} > 0 ? 'local' : 'neither';
            } else {
                $r->{via} = 'local';
            }
            $watch->terminate_app($app) unless ($r->{code} // '') eq '57014';
            1;
        };
        $r = { code => undef, ms => undef, detail => $@ } unless $ok;
        eval { $kind->{close}->($sess) } if $sess;
        eval { PgNearFleet::nudge($HA) for 1 .. $after };
        if (($r->{code} // '') eq '57014' && defined $r->{ms} && $r->{ms} < $CANCEL_WAIT * 1000) {
            $st->{reached}++;
            push @{ $st->{ms} }, $r->{ms};
            push @{ $st->{by}{ $r->{via} } }, $r->{ms};
        } else {
            push @{ $st->{failures} }, sprintf('round %d: code %s after %s ms (%s) via %s: %s', $i, $r->{code} // 'none',
                                                defined $r->{ms} ? sprintf('%.0f', $r->{ms}) : '?', $app,
                                                $r->{via} // '?', $r->{detail} // '');
            $watch->terminate_app($app);
            # Bounded: after 3 failures, the rest of this kind counts as failed.
            if (++$failures >= 3) {
                push @{ $st->{failures} }, "gave up after 3 failures, $i rounds in";
                last;
            }
        }
    }
    is $st->{reached}, $ROUNDS, "$kind->{name}: $st->{reached} of $ROUNDS cancels through HAProxy ended their query "
                              . "with 57014 within ${CANCEL_WAIT}s"
      or diag join("\n", @{ $st->{failures} }[0 .. min(9, $#{ $st->{failures} })]);
    if ($PEERING) {
        my ($nl, $nf) = map { scalar @{ $st->{by}{$_} // [] } } qw(local forwarded);
        ok $nf > 0 && $nl > 0, "$kind->{name}: cancels both forwarded to the owner ($nf) and taken by the owner itself ($nl)";
    }
}
for my $n (values %NODE_PROC) {
    $n->{in} .= qq{{"op":"quit"}\n};
    eval { $n->{h}->finish; 1 } or eval { $n->{h}->kill_kill(grace => 1) };
}

# The keys the clients got.
{
    my @raw30 = map { @{ $stats{$_}{keys} } } grep { /^(?:raw 3\.0|DBD::Pg|node-postgres)/ } keys %stats;
    my @raw32 = map { @{ $stats{$_}{keys} } } grep { /^raw 3\.2/ } keys %stats;
    if ($PEERING) {
        my @bad = grep { !defined PgNearFleet::peer_of_pid($_->{pid}) || PgNearFleet::peer_of_pid($_->{pid}) < 1
                         || PgNearFleet::peer_of_pid($_->{pid}) > $N || $_->{pid} == $_->{server_pid} } @raw30;
        is scalar(@bad), 0, 'protocol 3.0 (raw, DBD::Pg, node-postgres): all ' . scalar(@raw30) . ' process IDs are '
                          . 'synthetic (bit 30 set, bits 29..16 a configured peer_id), none the server\'s real pid'
          or diag explain [@bad[0 .. min(4, $#bad)]];
        my %owners = map { (PgNearFleet::peer_of_pid($_->{pid}) // 0) => 1 } @raw30;
        is_deeply [sort keys %owners], [1 .. $N], 'sessions were held by every instance';
    } else {
        my @bad = grep { $_->{pid} != $_->{server_pid} } @raw30;
        is scalar(@bad), 0, 'without peer_id, the process ID is the server\'s real pid';
    }
    my @bad32 = grep { $_->{pid} != $_->{server_pid} || length($_->{key}) != 32
                       || ($PEERING && (ord($_->{key}) != 0x01 || (PgNearFleet::peer_of_key32($_->{key}) // 0) < 1
                                        || PgNearFleet::peer_of_key32($_->{key}) > $N)) } @raw32;
    is scalar(@bad32), 0, 'protocol 3.2: all ' . scalar(@raw32) . ' process IDs are the server\'s real pid'
                        . ($PEERING ? ', the 32-byte keys start with format 0x01 and a configured peer_id' : '')
      or diag explain [map { { %$_, key => unpack('H*', $_->{key}) } } @bad32[0 .. min(4, $#bad32)]];
}

# The latencies, for the release note.
{
    my $fmt = sub {
        my ($l) = @_;
        return sprintf '%3d  %7s %7s %7s %7s', 0, '-', '-', '-', '-' unless $l && @$l;
        my @s = sort { $a <=> $b } @$l;
        return sprintf '%3d  %7.1f %7.1f %7.1f %7.1f', scalar(@s), $s[0], $s[int($#s / 2)],
                       $s[min($#s, int(0.95 * @s))], $s[-1];
    };
    my @lines = ('cancel latency, ms from sending the cancel to the 57014 (HAProxy roundrobin in front of '
                 . "$N pgnear; one PostgreSQL 15 on the same machine)",
                 sprintf('%-20s %-7s %5s | %-36s | %-36s | %s', 'client', 'cancel', 'ok', 'all: n   min  median  p95   max',
                         'local (cancel on the owner)', 'forwarded (cancel on another peer)'));
    for my $kind (@KINDS) {
        my $st = $stats{ $kind->{name} };
        push @lines, sprintf('%-20s %-7s %2d/%-2d | %s | %s | %s', $kind->{name}, $kind->{cancel_tls} ? 'tls' : 'plain',
                             $st->{reached}, $st->{tried}, $fmt->($st->{ms}), $fmt->($st->{by}{local}),
                             $fmt->($st->{by}{forwarded}));
    }
    diag join "\n", @lines;
}

my $snap_part2 = settled_snapshot();
if ($PEERING) {
    my $d = result_delta($snap_part2_start, $snap_part2);
    my $total = sum(map { $stats{$_}{reached} } keys %stats);
    note 'cancel results over the client kinds: ' . join(', ', map { "$_ $d->{$_}" } @RESULTS);
    is $d->{rate_limited} + $d->{no_session} + $d->{bad_key} + $d->{peer_failed} + $d->{busy} + $d->{misrouted}, 0,
        'no cancel of a live session was refused, dropped or lost';
    # The log lines: "forwarded to peer N" on the forwarder, "from peer" on the owner.
    my @fwd_lines = map { scalar(() = $_->log_contents =~ /cancel request .*forwarded to peer \d+/g) } @p;
    my @from_lines = map { scalar(() = $_->log_contents =~ /cancel request from peer/g) } @p;
    my $fwd_metric = results($snap_part2, 'forwarded');
    is sum(@fwd_lines), $fwd_metric, "forwarders logged 'forwarded to peer N' as often as result=\"forwarded\" counts ($fwd_metric; per instance @fwd_lines)";
    is sum(@from_lines), $fwd_metric, "owners logged 'cancel request from peer' once per forward (per instance @from_lines)";
}

# ---------------------------------------------------------------- 2. forged keys

# Victims: a session on each instance, under 3.0 and 3.2, running a long pg_sleep.
sub victim {
    my ($i, $proto, $app) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port[$i], timeout => 10);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret', protocol => $proto,
                        params => [application_name => $app]);
    die "victim $app: " . ($r->{error} ? $r->{error}{M} : 'eof') . "\n" unless $r->{ok};
    $w->send_query('SELECT pg_sleep(300)');
    my $server_pid = $watch->wait_active($app, timeout => 10) or die "victim $app: its pg_sleep does not run\n";
    return { w => $w, pid => $r->{pid}, key => $r->{key}, server_pid => $server_pid, app => $app, instance => $i + 1 };
}

# Still running, and nothing came back to the client.
sub survives {
    my ($v) = @_;
    return 0 unless $watch->is_active($v->{server_pid});
    return 0 if length $v->{w}{buf} || IO::Select->new($v->{w}->socket)->can_read(0);
    return 1;
}

sub cancel_victim_via_ha {
    my ($v) = @_;
    my $t0 = time;
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $HA, pid => $v->{pid}, key => $v->{key});
    $v->{w}{timeout} = $CANCEL_WAIT;
    my $res = eval { $v->{w}->read_result };
    return (($res ? sqlstate($res->{error}) : undef) // 'none', (time - $t0) * 1000);
}

if ($PEERING) {
    my @v30 = map { victim($_, [3, 0], "victim30-" . ($_ + 1)) } 0 .. $N - 1;
    my @v32 = map { victim($_, [3, 2], "victim32-" . ($_ + 1)) } 0 .. $N - 1;
    is_deeply [map { PgNearFleet::peer_of_pid($_->{pid}) } @v30], [1 .. $N], 'each 3.0 victim\'s process ID names its instance';
    is_deeply [map { PgNearFleet::peer_of_key32($_->{key}) } @v32], [1 .. $N], 'each 3.2 victim\'s key names its instance';
    my %real = map { ($_->{pid} . unpack('H*', $_->{key}) => 1) } @v30, @v32;
    is scalar(grep { ord(substr($_->{key}, 3, 1)) & 1 } @v30, @v32), 0,
       'the keys handed out have the forwarded flag (bit 0 of byte 3) clear';

    # --- the 3.2 key's HMAC, computed here from the secret file
    is scalar(grep { substr($_->{key}, 20, 12) ne mac32($_->{key}) } @v32), 0,
       '3.2 keys end with the first 12 bytes of HMAC-SHA256 over bytes 0-2 and 4-19 with the fleet\'s secret';

    # --- keys that must not travel: forwarded once already, or naming no peer
    {
        my $s0 = settled_snapshot();
        my ($a30, $a32) = ($v30[1], $v32[1]);    # sessions on instance 2
        my $k30 = $a30->{key};
        substr($k30, 3, 1) = chr(ord(substr($k30, 3, 1)) | 1);
        my $k32 = $a32->{key};
        substr($k32, 3, 1) = chr(ord(substr($k32, 3, 1)) | 1);    # outside the HMAC: still signed
        my $k7 = sign32(PgNearFleet::key32(7, random => substr($a32->{key}, 4, 16)));    # peer 7 is not in peers
        PgNearTest::Wire->cancel(host => '127.0.0.1', port => $port[0], pid => $a30->{pid}, key => $k30);
        PgNearTest::Wire->cancel(host => '127.0.0.1', port => $port[0], pid => $a32->{pid}, key => $k32);
        PgNearTest::Wire->cancel(host => '127.0.0.1', port => $port[0], pid => $a32->{pid}, key => $k7);
        my $s1 = settled_snapshot();
        my $d = result_delta($s0, $s1);
        is $d->{misrouted}, 2, 'the keys of two live sessions on instance 2, 3.0 and 3.2 (still signed), with the '
                             . 'forwarded flag set and sent to instance 1: dropped as misrouted, not forwarded again';
        is $d->{bad_key}, 1, 'a signed 3.2 key naming peer 7, which peers does not list: dropped as bad_key';
        is $d->{forwarded} + $d->{local}, 0, 'none of the three was forwarded or cancelled anything';
        is peer_out($s1, 0) - peer_out($s0, 0), 0, 'instance 1: pgnear_peer_cancels_total{direction="out"} did not move';
        ok survives($a30) && survives($a32), 'both sessions on instance 2 still run their query';
    }

    # --- 3.0: random keys naming a peer; one in ten with a victim's process ID
    my @pk30;
    while (@pk30 < $FORGED_EACH) {
        my $k = @pk30;
        my $pid = $k % 10 == 0 ? $v30[$k % $N]{pid} : PgNearFleet::synthetic_pid(1 + $k % $N);
        my $key = PgNearFleet::random_bytes(4);
        next if $real{ $pid . unpack('H*', $key) };
        push @pk30, PgNearFleet::cancel_packet($pid, $key);
    }
    my $s0 = settled_snapshot();
    my $f = PgNearFleet::flood(port => $HA, packets => \@pk30, window => 64, timeout => 60);
    my $s1 = settled_snapshot();
    my $d = result_delta($s0, $s1);
    note sprintf('3.0 flood: %d sent in %.1fs, %d closed by pgnear, %d reset, %d refused, %d timed out; results: %s',
                 @{$f}{qw(sent seconds closed reset refused timed_out)}, join(', ', map { "$_ $d->{$_}" } @RESULTS));
    is $f->{sent}, $FORGED_EACH, "all $FORGED_EACH forged 3.0 CancelRequests went out through HAProxy";
    is $f->{timed_out} + ($f->{answered} // 0), 0, 'pgnear closed every one without an answer';
    is scalar(grep { !survives($_) } @v30, @v32), 0, 'every victim\'s pg_sleep(300) still runs: the forged 3.0 keys cancelled nothing';
    is $d->{local}, 0, 'result="local" did not move';
    cmp_ok $d->{rate_limited}, '>', 0, "the rate limit shows: result=\"rate_limited\" grew by $d->{rate_limited}";
    my $named_other = int($FORGED_EACH * ($N - 1) / $N);
    note sprintf('3.0 flood: forwarded %d (about %d of the keys named another peer than the instance they reached); '
               . 'peer out per instance: %s', $d->{forwarded}, $named_other,
                 join(' ', map { peer_out($s1, $_) - peer_out($s0, $_) } 0 .. $N - 1));
    # Each forward of a key that cannot be verified costs its worker a token: at most
    # burst + rate x time per worker.
    my $bound = int($N * $WORKERS * $RATE * (2 + $f->{seconds} + 1));
    cmp_ok $d->{forwarded}, '<=', $bound, "the rate limit holds back the forwards of forged 3.0 keys too: $d->{forwarded} "
                                        . "forwarded, at most $bound ($N instances x $WORKERS workers x $RATE/s, burst "
                                        . (2 * $RATE) . sprintf(', %.1fs); %d named another peer', $f->{seconds}, $named_other);

    # --- 3.2: the right format byte and peer id, a wrong HMAC
    my @pk32;
    for my $k (0 .. $FORGED_EACH - 1) {
        my $v = $v32[$k % $N];
        my ($fmt, $peer, $flags) = unpack('C n C', $v->{key});
        my $random = $k % 2 ? substr($v->{key}, 4, 16) : PgNearFleet::random_bytes(16);
        my $mac;
        do { $mac = PgNearFleet::random_bytes(12) } while $mac eq substr($v->{key}, 20, 12);
        push @pk32, PgNearFleet::cancel_packet($v->{pid}, PgNearFleet::key32($peer, flags => $flags, random => $random, mac => $mac));
    }
    my $peers_before = [map { show_peers($_) } 0 .. $N - 1];
    $f = PgNearFleet::flood(port => $HA, packets => \@pk32, window => 64, timeout => 60);
    my $s2 = settled_snapshot();
    $d = result_delta($s1, $s2);
    note sprintf('3.2 flood: %d sent in %.1fs, %d closed by pgnear, %d reset, %d timed out; results: %s',
                 @{$f}{qw(sent seconds closed reset timed_out)}, join(', ', map { "$_ $d->{$_}" } @RESULTS));
    is $f->{sent}, $FORGED_EACH, "all $FORGED_EACH forged 3.2 CancelRequests went out through HAProxy";
    is $f->{timed_out} + ($f->{answered} // 0), 0, 'pgnear closed every one without an answer';
    is scalar(grep { !survives($_) } @v30, @v32), 0, 'every victim\'s pg_sleep(300) still runs: the forged 3.2 keys cancelled nothing';
    is $d->{forwarded}, 0, 'not one forged 3.2 key was forwarded (result="forwarded")';
    for my $i (0 .. $N - 1) {
        is peer_out($s2, $i) - peer_out($s1, $i), 0, 'instance ' . ($i + 1) . ': pgnear_peer_cancels_total{direction="out"} did not move';
    }
    my $peers_after = [map { show_peers($_) } 0 .. $N - 1];
    is_deeply [map { my $t = $_; [map { $t->{$_}{forwarded_out} } sort keys %$t] } @$peers_after],
              [map { my $t = $_; [map { $t->{$_}{forwarded_out} } sort keys %$t] } @$peers_before],
              'SHOW PEERS forwarded_out did not move on any instance';
    is $d->{local}, 0, 'result="local" did not move';
    is $d->{bad_key} + $d->{rate_limited} + $d->{no_session}, $FORGED_EACH,
        "each of the $FORGED_EACH was dropped as bad_key ($d->{bad_key}), rate_limited ($d->{rate_limited}) "
      . "or no_session ($d->{no_session})";
    cmp_ok $d->{bad_key}, '>', 0, 'wrong HMACs are counted as bad_key';

    # --- the victims' own keys still work, once the rate limit has let go
    sleep 2.5;    # burst 40 at 20 per second: full again after 2 s
    for my $v (@v30, @v32) {
        my ($code, $ms) = cancel_victim_via_ha($v);
        is $code, '57014', sprintf('%s (instance %d): its own key, through HAProxy after the floods, cancels it (%.0f ms)',
                                   $v->{app}, $v->{instance}, $ms);
        $v->{w}->terminate;
    }

    # ---------------------------------------------------------------- 4. consistency before the kill

    check_consistency([0 .. $N - 1], 'after the floods');
}

# Pairwise: a's forwarded_out on b's row = b's forwarded_in on a's row; the
# metrics say the same as SHOW PEERS.
sub check_consistency {
    my ($alive, $when) = @_;
    my ($tables, $snap);
    my $pairs_agree = sub {
        $tables = { map { ($_ => show_peers($_)) } @$alive };
        for my $x (@$alive) {
            for my $y (@$alive) {
                next if $x == $y;
                return 0 unless ($tables->{$x}{ $y + 1 }{forwarded_out} // -1) == ($tables->{$y}{ $x + 1 }{forwarded_in} // -2);
            }
        }
        return 1;
    };
    wait_until($pairs_agree, timeout => 5, interval => 0.1);
    $snap = scrape_all();
    for my $x (@$alive) {
        my $t = $tables->{$x};
        is_deeply [sort { $a <=> $b } keys %$t], \@IDS, "$when: SHOW PEERS on instance " . ($x + 1) . ' has a row per entry of peers';
        is_deeply [map { truthy($t->{$_}{self}) } @IDS], [map { $_ == $x + 1 ? 1 : 0 } @IDS],
            "$when: instance " . ($x + 1) . ': self is true on its own row only';
        is_deeply [map { $t->{$_}{address} } @IDS], [map { $ADDR{$_} } @IDS],
            "$when: instance " . ($x + 1) . ': the addresses of peers';
        for my $y (@$alive) {
            next if $x == $y;
            is $t->{ $y + 1 }{forwarded_out}, $tables->{$y}{ $x + 1 }{forwarded_in},
               sprintf('%s: %d -> %d: forwarded_out on %d (%s) = forwarded_in on %d (%s)', $when, $x + 1, $y + 1,
                       $x + 1, $t->{ $y + 1 }{forwarded_out}, $y + 1, $tables->{$y}{ $x + 1 }{forwarded_in});
        }
        for my $y (grep { $_ != $x + 1 } @IDS) {
            is PgNearFleet::metric($snap->[$x], 'pgnear_peer_cancels_total', peer => $y, direction => 'out'),
               $t->{$y}{forwarded_out}, "$when: instance " . ($x + 1) . ": pgnear_peer_cancels_total{peer=\"$y\",direction=\"out\"} = SHOW PEERS forwarded_out";
            is PgNearFleet::metric($snap->[$x], 'pgnear_peer_cancels_total', peer => $y, direction => 'in'),
               $t->{$y}{forwarded_in}, "$when: instance " . ($x + 1) . ": pgnear_peer_cancels_total{peer=\"$y\",direction=\"in\"} = SHOW PEERS forwarded_in";
            is PgNearFleet::metric($snap->[$x], 'pgnear_peer_cancel_failures_total', peer => $y),
               $t->{$y}{failed}, "$when: instance " . ($x + 1) . ": pgnear_peer_cancel_failures_total{peer=\"$y\"} = SHOW PEERS failed";
        }
        is PgNearFleet::metric($snap->[$x], 'pgnear_cancel_requests_total', result => 'forwarded'),
           sum(map { $t->{$_}{forwarded_out} } grep { $_ != $x + 1 } @IDS),
           "$when: instance " . ($x + 1) . ': result="forwarded" = the forwarded_out of its rows, summed';
        is PgNearFleet::metric($snap->[$x], 'pgnear_cancel_requests_total', result => 'peer_failed'),
           sum(map { $t->{$_}{failed} } grep { $_ != $x + 1 } @IDS),
           "$when: instance " . ($x + 1) . ': result="peer_failed" = the failed of its rows, summed';
    }
    my $out = sum(map { my $x = $_; map { $tables->{$x}{$_}{forwarded_out} } grep { $_ != $x + 1 } @IDS } @$alive);
    note "$when: forwarded_out summed over the instances: $out";
    return $tables;
}

# ---------------------------------------------------------------- 3. a peer that never answers (4)

if ($PEERING) {
    my $row = show_peers(0)->{4};
    ok !defined $row->{reachable} && !$row->{forwarded_out} && !$row->{failed},
       'before any forward to it, SHOW PEERS on instance 1 has peer 4 with reachable null and nothing counted'
      or diag explain $row;
    my $m0 = scrape_all();
    my $key = PgNearFleet::random_bytes(4);
    substr($key, 3, 1) = chr(ord(substr($key, 3, 1)) & 0xfe);
    my $t0 = time;
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $port[0], pid => PgNearFleet::synthetic_pid(4), key => $key,
                             timeout => 10);
    my $t_close = time - $t0;
    my $seen = wait_until(sub { $row = show_peers(0)->{4}; ($row->{failed} // 0) >= 1 },
                          timeout => $FORWARD_TIMEOUT + $SLACK + 2, interval => 0.02);
    my $t_seen = time - $t0;
    cmp_ok $t_close, '<=', $FORWARD_TIMEOUT + $SLACK,
           sprintf('a 3.0 key naming peer 4, which never answers, sent to instance 1: the client\'s cancel connection '
                 . 'is closed after %.3fs, when the forward is given up (cancel_forward_timeout %ds + %.1fs at most)',
                   $t_close, $FORWARD_TIMEOUT, $SLACK);
    cmp_ok $t_close, '>=', $FORWARD_TIMEOUT - 0.1, '... not before: it is held while the forward is under way';
    ok $seen, 'SHOW PEERS on instance 1 counts the failed forward to peer 4';
    cmp_ok $t_seen, '<=', $FORWARD_TIMEOUT + $SLACK, sprintf('it is given up after %.3fs: cancel_forward_timeout '
                                                          . '(%ds) + %.1fs at most', $t_seen, $FORWARD_TIMEOUT, $SLACK);
    cmp_ok $t_seen, '>=', $FORWARD_TIMEOUT - 0.1, '... and not before the timeout: the connect to peer 4 hung';
    is truthy($row->{reachable}), 0, 'peer 4 is then not reachable';
    like $row->{last_error} // '', qr/\S/, 'last_error: ' . ($row->{last_error} // 'null');
    diag sprintf('peer that never answers: cancel connection closed after %.0f ms, forward given up after %.0f ms '
               . '(cancel_forward_timeout %ds): last_error=%s', $t_close * 1000, $t_seen * 1000, $FORWARD_TIMEOUT,
                 $row->{last_error} // 'null');

    # Right after that failure, requests for peer 4 fail at once for
    # PEER_RETRY_MS (1 s): no connection, no slot, no rate-limit token.
    my $total = 64 * $WORKERS + 64;
    my @pk = map { PgNearFleet::cancel_packet(1000 + $_, sign32(PgNearFleet::key32(4))) } 1 .. $total;
    my $m1 = scrape_all();
    my $f = PgNearFleet::flood(port => $port[0], packets => \@pk, window => $total, timeout => 10);
    my $m2 = scrape_all();
    is $f->{closed}, $total, "$total signed 3.2 keys naming peer 4 sent to instance 1 at once, each connection closed "
                           . sprintf('(%.2fs)', $f->{seconds});
    my $fast = results($m2, 'peer_failed') - results($m1, 'peer_failed');
    cmp_ok $fast, '>=', 1, "within a second of its failure, $fast were dropped at once as peer_failed";
    is results($m2, 'forwarded') - results($m1, 'forwarded'), 0, '... none delivered';

    # After the retry window, a silent peer may take half the slots (64 a worker, 32 each for
    # one peer), no more: a cancel for a session on instance 2 sent to instance 1 meanwhile
    # is forwarded and ends its query.
    sleep 2.5;    # past PEER_RETRY_MS with room for a loaded machine (1.2 s was too close under ASan)
    my $v2 = victim(1, [3, 2], 'busy-on2');
    my $m3 = scrape_all();
    $f = PgNearFleet::flood(port => $port[0], packets => \@pk, window => $total, timeout => 10);
    my $m4 = scrape_all();
    my $busy = results($m4, 'busy') - results($m3, 'busy');
    my $under_way = $total - $busy - (results($m4, 'peer_failed') - results($m3, 'peer_failed'));
    cmp_ok $busy, '>=', $total - 32 * $WORKERS, "then, of $total for peer 4, $busy were dropped as busy";
    cmp_ok $under_way, '<=', 32 * $WORKERS, "... at most half of cancel_max_inflight under way for it ($under_way)";
    my $t0 = time;
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $port[0], pid => $v2->{pid}, key => $v2->{key});
    $v2->{w}{timeout} = $CANCEL_WAIT;
    my $res = eval { $v2->{w}->read_result };
    is $res && sqlstate($res->{error}), '57014',
       sprintf('meanwhile a cancel for a session on instance 2 sent to instance 1 ends its query (%.0f ms)',
               (time - $t0) * 1000);
    ok wait_until(sub { results(scrape_all(), 'peer_failed') - results($m3, 'peer_failed') >= $under_way },
                  timeout => $FORWARD_TIMEOUT + $SLACK + 2, interval => 0.05),
       "the $under_way under way for peer 4 all failed";
    my $m5 = scrape_all();
    is results($m5, 'rate_limited') - results($m1, 'rate_limited'), 0,
       'signed 3.2 forwards, busy drops and a failing peer cost no rate-limit token';
    is PgNearFleet::metric($m5->[0], 'pgnear_peer_cancel_failures_total', peer => 4),
       1 + results($m5, 'peer_failed') - results($m1, 'peer_failed'),
       'pgnear_peer_cancel_failures_total{peer="4"} on instance 1 counts every request for it that did not reach it';
}

# ---------------------------------------------------------------- 3b. a peer's address is not a trusted proxy

# HAProxy's address (127.0.0.1) is also the peers' own.  A PROXY header from
# there is believed ahead of a forwarded cancel request only, and with the
# fleet's secret only when it carries the MAC: a client cannot name another
# caller (to escape the rate limit) or pose as a peer.
sub proxy_v2 {
    my ($src, $dst_port, $tlv) = @_;
    my $addrs = pack('C4 C4 n n', split(/\./, $src), 127, 0, 0, 1, 4242, $dst_port);
    my $body = $addrs . ($tlv // '');
    return "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A" . pack('C C n', 0x21, 0x11, length $body) . $body;
}

if ($PEERING) {
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port[0],
                                      prelude => proxy_v2('203.0.113.7', $port[0]));
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    is $r->{error} && $r->{error}{C}, '28000',
       'a login behind a PROXY header sent from a peer\'s address (not in trusted_proxies) gets 28000';
    unlike $p[0]->log_contents, qr/login from 203\.0\.113\.7/, '... and is not taken for 203.0.113.7';

    my $v = victim(0, [3, 0], 'spoof-target');
    my $m0 = scrape_all();
    my $in0 = show_peers(0)->{2}{forwarded_in} // 0;
    my $c = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port[0],
                                      prelude => proxy_v2('198.51.100.9', $port[0], pack('C n n', 0xE8, 2, 2)));
    my $body = pack('NN', 80877102, $v->{pid}) . $v->{key};
    $c->send_raw(pack('N', 4 + length $body) . $body);
    eval { $c->read_bytes(1) };
    $c->hangup;
    ok wait_until(sub { results(scrape_all(), 'bad_key') > results($m0, 'bad_key') }, timeout => 5),
       'a cancel behind a client-made PROXY header posing as peer 2 (no MAC) is dropped as bad_key';
    is show_peers(0)->{2}{forwarded_in} // 0, $in0, '... not counted as forwarded by peer 2';
    sleep 0.5;
    ok survives($v), '... and cancels nothing';
    $watch->terminate_app('spoof-target');
}

# ---------------------------------------------------------------- 4. a peer killed with SIGKILL

if ($PEERING) {
    my $s30 = victim(2, [3, 0], 'on3-30');
    my $s32 = victim(2, [3, 2], 'on3-32');
    my $s2  = victim(1, [3, 0], 'on2-30');
    my $before = show_peers(0)->{3};
    is truthy($before->{reachable}), 1, 'before the kill, instance 1 says peer 3 is reachable'
      or diag explain $before;
    my $failed0 = $before->{failed} // 0;
    my $m0 = scrape_all();

    $p[2]->signal('KILL');
    is $p[2]->wait_for_exit(timeout => 10), 137, 'instance 3 killed with SIGKILL';
    $admin[2] = undef;
    ok $ha->wait_status({ p1 => 'UP', p2 => 'UP', p3 => 'DOWN' }), 'HAProxy marks instance 3 DOWN';

    for my $case (['3.0', $s30], ['3.2', $s32]) {
        my ($v, $s) = @$case;
        my $t0 = time;
        PgNearTest::Wire->cancel(host => '127.0.0.1', port => $port[0], pid => $s->{pid}, key => $s->{key}, timeout => 10);
        my $t_close = time - $t0;
        my $row;
        my $seen = wait_until(sub {
            $row = show_peers(0)->{3};
            ($row->{failed} // 0) > $failed0 && defined truthy($row->{reachable}) && !truthy($row->{reachable})
        }, timeout => $FORWARD_TIMEOUT + $SLACK + 2, interval => 0.02);
        my $t_seen = time - $t0;
        $failed0 = $row->{failed} // $failed0;
        cmp_ok $t_close, '<=', $FORWARD_TIMEOUT + $SLACK,
            sprintf('%s key of a session on the dead instance 3, sent to instance 1: the cancel connection is closed after %.3fs', $v, $t_close);
        ok $seen, "$v: SHOW PEERS on instance 1 then says peer 3 is not reachable and counts the failure";
        cmp_ok $t_seen, '<=', $FORWARD_TIMEOUT + $SLACK,
            sprintf('%s: the failed forward is known %.3fs after the cancel (cancel_forward_timeout %ds + %.1fs)', $v, $t_seen,
                    $FORWARD_TIMEOUT, $SLACK);
        like $row->{last_error} // '', qr/\S/, "$v: last_error says why: " . ($row->{last_error} // 'null');
        diag sprintf('dead peer: %s cancel via instance 1: connection closed after %.0f ms, failure known after %.0f ms; '
                   . 'SHOW PEERS row 3: reachable=%s failed=%s last_error=%s', $v, $t_close * 1000, $t_seen * 1000,
                     $row->{reachable} // 'null', $row->{failed} // 'null', $row->{last_error} // 'null');
    }
    my $m1 = scrape_all();
    cmp_ok results($m1, 'peer_failed') - results($m0, 'peer_failed'), '>=', 2, 'result="peer_failed" counts both';
    $watch->terminate_app($_) for qw(on3-30 on3-32);

    # Instances 1 and 2 go on: a session on 2 cancelled through 1, and sessions through HAProxy.
    {
        my $t0 = time;
        PgNearTest::Wire->cancel(host => '127.0.0.1', port => $port[0], pid => $s2->{pid}, key => $s2->{key});
        $s2->{w}{timeout} = $CANCEL_WAIT;
        my $res = eval { $s2->{w}->read_result };
        is sqlstate($res ? $res->{error} : undef), '57014',
           sprintf('after the kill, a session on instance 2 is cancelled through instance 1 (%.0f ms)', (time - $t0) * 1000);
        $s2->{w}->terminate;
    }
    my $raw = raw_kind([3, 0], 0);
    my ($ok, @ms) = (0);
    for my $i (1 .. 6) {
        my $app = "after-kill-$i";
        my $s = eval { $raw->{open}->($app) };
        next unless $s && $watch->wait_active($app, timeout => 10);
        PgNearFleet::nudge($HA) if $i % 2;
        my $r = $raw->{cancel}->($s);
        $raw->{close}->($s);
        $watch->terminate_app($app);
        if (($r->{code} // '') eq '57014') { $ok++; push @ms, $r->{ms} }
    }
    is $ok, 6, 'after the kill, 6 of 6 cancels through HAProxy (instances 1 and 2) reach their query'
        . (@ms ? sprintf(' (%.0f-%.0f ms)', min(@ms), max(@ms)) : '');

    # ---------------------------------------------------------------- 5. consistency after all this
    my $t = check_consistency([0, 1], 'after the kill');
    for my $a (0, 1) {
        my $row = $t->{$a}{3};
        note sprintf('instance %d, row 3: reachable=%s forwarded_out=%s failed=%s last_error=%s last_forward=%s', $a + 1,
                     map { $row->{$_} // 'null' } qw(reachable forwarded_out failed last_error last_forward));
    }
    cmp_ok $t->{0}{3}{failed} // 0, '>=', 2, 'instance 1 counts its failed forwards to peer 3';
    ok $p[$_]->is_running, 'instance ' . ($_ + 1) . ' still runs' for 0, 1;
}

ok $ha->running, 'HAProxy still runs';
$ha->stop;
$watch->{dbh}->disconnect;
note sprintf 'run time %.1f s', time - $T0;

done_testing;
