# HAProxy (the Debian package) in front of pgnear as a real TCP load
# balancer: PROXY v2, PROXY v1 and PROXY v2 with a CRC32C TLV, each with
# its own frontend and backend.  Callers connect to HAProxy from distinct
# loopback addresses; the test GeoIP database puts each address on another
# continent, so the sessions must land in different regions, which only
# works if pgnear reads the real caller address from HAProxy's header.
# HAProxy's health checks (TCP checks carrying a PROXY header, and a
# pgsql-check) run all along and must disturb nothing.
#
# HAProxy 2.6 (Debian 12) cannot add custom TLVs to its PROXY v2 header
# (set-proxy-v2-tlv-fmt needs HAProxy 2.9 or later), so the city TLV 0xE3
# is covered by 120_routing.t with a hand-built header, not here.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IO::Socket::UNIX;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';

my $T0 = time;
my $SRCDIR = $ENV{PGNEAR_SRCDIR} // "$FindBin::RealBin/../..";
my $HAPROXY = require_tool('haproxy');    # dies loudly when missing

# ------------------------------------------------------------------ geography (independent of pgnear)

# haversine_km (PgNearTest) computes distances without pgnear.
my %REGION = ('us-east' => [39.04, -77.49], 'us-west' => [45.60, -121.18],
              'eu-west' => [53.35, -6.26],  'ap-northeast' => [35.68, 139.69]);
my @REGION_ORDER = ('us-east', 'us-west', 'eu-west', 'ap-northeast');
sub nearest {
    my ($lat, $lon) = @_;
    my @by = sort { $a->[1] <=> $b->[1] } map { [$_, haversine_km($lat, $lon, @{ $REGION{$_} })] } @REGION_ORDER;
    return $by[0][0];
}

# Callers: a loopback address each, placed by the test GeoIP database.
my @CALLERS = (
    { addr => '127.0.0.5',  city => 'Tokyo',     cc => 'JP', lat => 35.6762,  lon => 139.6503 },
    { addr => '127.0.0.6',  city => 'Paris',     cc => 'FR', lat => 48.8566,  lon => 2.3522 },
    { addr => '127.0.0.7',  city => 'Seattle',   cc => 'US', lat => 47.6062,  lon => -122.3321 },
    { addr => '127.0.0.8',  city => 'Sao Paulo', cc => 'BR', lat => -23.5505, lon => -46.6333 },
    { addr => '127.0.0.9',  city => 'Sydney',    cc => 'AU', lat => -33.8688, lon => 151.2093 },
    { addr => '127.0.0.10', city => 'Nairobi',   cc => 'KE', lat => -1.2921,  lon => 36.8219 },
);
$_->{expect} = nearest($_->{lat}, $_->{lon}) for @CALLERS;
{
    my %r = map { $_->{expect} => 1 } @CALLERS;
    is_deeply [sort keys %r], [sort @REGION_ORDER], 'the callers spread over all four regions';
}
# Default region: where a session goes if pgnear wrongly took HAProxy's own
# address (127.0.0.1, in no database).  us-east: São Paulo's region, so the
# log check below (source geoip, city named) is what proves it for that one.
my $DEFAULT = 'us-east';

my $dir = tmpdir(name => 'haproxy', mode => 0755);
my $mmdb = "$dir/callers.mmdb";
{
    my ($rc, $out, $err) = run_cmd([$^X, "$SRCDIR/tests/lib/make_mmdb.pl", '--layout', 'maxmind', '--ip-version', 6,
                                    '--out', $mmdb, map { "$_->{addr}/32=$_->{city},$_->{cc},$_->{lat},$_->{lon}" } @CALLERS],
                                   timeout => 60);
    is $rc, 0, 'test GeoIP database written' or BAIL_OUT("make_mmdb.pl: $err");
}

# ------------------------------------------------------------------ regions and pgnear

my @clusters = map { PgNearTest::Cluster->new(name => $_) } @REGION_ORDER;

my $since = time;
my $p = PgNearTest::Proxy->new(regions => \@clusters, settings => {
    auth                  => 'passthrough',
    server_tls            => 'disable',
    cities_file           => "$SRCDIR/conf/cities.csv",
    trusted_proxies       => '127.0.0.1/32',
    proxy_protocol        => 'required',    # everything comes through HAProxy
    geoip_db              => $mmdb,
    default_region        => $DEFAULT,
    health_check_interval => '1s',
});
$p->wait_healthy($since, @clusters);

# ------------------------------------------------------------------ HAProxy

my %fe = (v2 => free_port(), v1 => free_port(), crc => free_port());
my $stats = "$dir/haproxy.sock";
my $pg = '127.0.0.1:' . $p->port;
my $cfg = "$dir/haproxy.cfg";
write_file($cfg, <<"EOF");
global
    maxconn 200
    stats socket $stats mode 600 level admin
    log stdout format raw local0 info

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout check 2s

# PROXY v2; TCP health checks carry a PROXY v2 LOCAL header (check-send-proxy).
frontend fe_v2
    bind 127.0.0.1:$fe{v2}
    default_backend be_v2
backend be_v2
    server p $pg send-proxy-v2 check check-send-proxy inter 300ms rise 1 fall 1

# PROXY v1 ("send-proxy"), TCP checks with a PROXY line too.
frontend fe_v1
    bind 127.0.0.1:$fe{v1}
    default_backend be_v1
backend be_v1
    server p $pg send-proxy check check-send-proxy inter 300ms rise 1 fall 1

# PROXY v2 with a CRC32C TLV; pgsql-check: a StartupMessage through pgnear
# to a real server, which must answer with an authentication request.
frontend fe_crc
    bind 127.0.0.1:$fe{crc}
    default_backend be_crc
backend be_crc
    option pgsql-check user app
    server p $pg send-proxy-v2 proxy-v2-options crc32c check check-send-proxy inter 500ms rise 1 fall 1
EOF
{
    my ($rc, $out, $err) = run_cmd([$HAPROXY, '-c', '-f', $cfg], timeout => 30);
    is $rc, 0, 'haproxy -c accepts the configuration' or BAIL_OUT("haproxy -c: $out$err");
}

my $hlog = "$dir/haproxy.log";
my $hpid = fork;
die "fork: $!" unless defined $hpid;
if ($hpid == 0) {
    open STDIN, '<', '/dev/null';
    open STDOUT, '>>', $hlog or POSIX::_exit(126);
    open STDERR, '>&', \*STDOUT;
    { no warnings 'exec'; exec { $HAPROXY } $HAPROXY, '-db', '-f', $cfg; }
    POSIX::_exit(127);
}
# Let the harness's guardian stop HAProxy too if this test is killed.
PgNearTest::_reg_add("pid $hpid");

my $haproxy_status;
sub haproxy_running {
    return 0 if defined $haproxy_status;
    my $r = waitpid($hpid, WNOHANG);
    return 1 if $r == 0;
    $haproxy_status = $r == $hpid ? $? : -1;
    return 0;
}
sub stop_haproxy {
    return $haproxy_status unless haproxy_running();
    kill 'TERM', $hpid;
    wait_until(sub { !haproxy_running() }, timeout => 10, interval => 0.05);
    if (haproxy_running()) { kill 'KILL', $hpid; wait_until(sub { !haproxy_running() }, timeout => 5) }
    PgNearTest::_reg_del("pid $hpid");
    return $haproxy_status;
}
END { stop_haproxy() if $hpid && $$ == $PgNearTest::OWNER_PID }

sub stats_cmd {
    my ($cmd) = @_;
    my $s = IO::Socket::UNIX->new(Peer => $stats, Type => SOCK_STREAM) or return undef;
    print $s "$cmd\n";
    local $/;
    my $r = <$s>;
    close $s;
    return $r;
}

# {backend => {status, check_status, chkfail, chkdown}} for server "p".
sub server_stats {
    my $csv = stats_cmd('show stat') // return {};
    my @lines = split /\n/, $csv;
    my $hdr = shift @lines // return {};
    $hdr =~ s/^# //;
    my @cols = split /,/, $hdr;
    my %out;
    for my $l (@lines) {
        my %row;
        @row{@cols} = split /,/, $l, -1;
        next unless ($row{svname} // '') eq 'p';
        # The last check's status, "* " before it while the next check runs (HAProxy's management.txt).
        $row{check_status} =~ s/^\* // if defined $row{check_status};
        $out{ $row{pxname} } = \%row;
    }
    return \%out;
}

ok wait_until(sub { -S $stats && haproxy_running() }, timeout => 15), 'HAProxy runs (stats socket up)'
  or BAIL_OUT("HAProxy did not start:\n" . (-e $hlog ? slurp_file($hlog) : ''));
my $healthy = wait_until(sub {
    my $s = server_stats();
    return 3 == grep { ($s->{$_}{status} // '') eq 'UP' && ($s->{$_}{check_status} // '') =~ /^L[47]OK$/ }
                qw(be_v2 be_v1 be_crc);
}, timeout => 15, interval => 0.2);
ok $healthy, 'HAProxy health checks pass for all three backends'
  or diag explain server_stats();
{
    my $s = server_stats();
    is $s->{be_v2}{check_status},  'L4OK', 'be_v2: TCP check with PROXY v2 LOCAL passes';
    is $s->{be_v1}{check_status},  'L4OK', 'be_v1: TCP check with a PROXY v1 line passes';
    is $s->{be_crc}{check_status}, 'L7OK', 'be_crc: pgsql-check through pgnear gets an authentication request';
}

# ------------------------------------------------------------------ sessions through HAProxy

# One session from $addr through frontend $kind: {region, sport, error}.
sub via_haproxy {
    my ($kind, $addr, %o) = @_;
    my %r;
    eval {
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $fe{$kind}, local_addr => $addr, timeout => 10);
        $r{sport} = $w->socket->sockport;
        my $st = $w->startup(user => 'app', database => 'movr', password => 'app-secret', params => $o{params} // []);
        if ($st->{ok}) {
            $r{region} = $w->query('SHOW cluster_name')->{rows}[0][0];
        } else {
            $r{error} = $st->{error};
        }
        $w->terminate;
        1;
    } or $r{error} = { M => "client died: $@" };
    return \%r;
}

my %landed;
for my $round (1, 2) {
    for my $kind (qw(v2 v1 crc)) {
        for my $c (@CALLERS) {
            my $off = $p->log_size;
            my $r = via_haproxy($kind, $c->{addr});
            my $what = "round $round, HAProxy $kind, caller $c->{addr} ($c->{city})";
            is $r->{region}, $c->{expect}, "$what -> $c->{expect}" or diag explain $r->{error};
            $landed{ $r->{region} // 'none' }++;
            next unless $round == 1;
            my $log = substr($p->log_contents, $off);
            my $v = $kind eq 'v1' ? 1 : 2;
            like $log, qr/PROXY v$v header from 127\.0\.0\.1:\d+: caller \Q$c->{addr}\E:$r->{sport}\b/,
                "  pgnear's log: PROXY v$v from HAProxy (127.0.0.1), caller $c->{addr}:$r->{sport}";
            like $log, qr/login from \Q$c->{addr}\E:$r->{sport}: user=app database=movr/,
                "  pgnear's log: the login is from $c->{addr}, not from HAProxy";
            like $log, qr/route: region \Q$c->{expect}\E(?:, \d+ km away)? \(geoip: GeoIP places the caller in \Q$c->{city}\E, $c->{cc}/,
                "  pgnear's log: routed by GeoIP on $c->{addr}";
            # HAProxy's own pgsql-check (be_crc) logs in from 127.0.0.1 at
            # any moment, so look only at this caller's connection id.
            my ($cid) = $log =~ /\bc(\d+): PROXY v$v header from 127\.0\.0\.1:\d+: caller \Q$c->{addr}\E:$r->{sport}\b/;
            my @mine = defined $cid ? ($log =~ /^.* c$cid: (.*)$/mg) : ();
            ok @mine && !grep(/login from 127\.0\.0\.1:/, @mine),
                "  pgnear's log: no login from HAProxy's own address on this caller's connection";
        }
    }
    # Let HAProxy run several rounds of health checks between the rounds.
    sleep 2 if $round == 1;
}
cmp_ok scalar(keys %landed), '>=', 4, 'sessions landed in four different regions: ' . join(', ', sort keys %landed);

# A startup hint still works through HAProxy and beats GeoIP (Tokyo caller, city London).
{
    my $r = via_haproxy('v2', '127.0.0.5', params => [options => '-c pgnear.city=London']);
    is $r->{region}, 'eu-west', 'through HAProxy, a city hint beats GeoIP of the caller';
}

# Concurrent sessions from several callers at once, held open together.
{
    my @open;
    for my $c (@CALLERS) {
        for my $kind (qw(v2 v1 crc)) {
            my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $fe{$kind}, local_addr => $c->{addr});
            my $st = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
            push @open, [$w, $c, $kind, $st->{ok}];
        }
    }
    my $bad = 0;
    for my $o (@open) {
        my ($w, $c, $kind, $ok) = @$o;
        my $got = $ok ? $w->query('SHOW cluster_name')->{rows}[0][0] : undef;
        $bad++ unless defined $got && $got eq $c->{expect};
        $w->terminate;
    }
    is $bad, 0, scalar(@open) . ' sessions open at once through HAProxy, each in its caller\'s region';
}

# ------------------------------------------------------------------ what the health checks did

{
    my $s = server_stats();
    for my $be (qw(be_v2 be_v1 be_crc)) {
        is $s->{$be}{status}, 'UP', "$be: still UP after all this";
        is $s->{$be}{chkfail}, 0, "$be: no failed health check";
        is $s->{$be}{chkdown}, 0, "$be: never went DOWN";
    }
    my $log = $p->log_contents;
    unlike $log, qr/not in trusted_proxies|invalid PROXY|CRC32c mismatch/, 'pgnear refused no header from HAProxy';
    unlike $log, qr/ UTC (?:ERROR|FATAL) /, 'no ERROR lines in pgnear\'s log';
    my $hl = slurp_file($hlog);
    unlike $hl, qr/Server be_\w+\/p is DOWN/, 'HAProxy never saw pgnear DOWN';
    # The checks really reached pgnear, each kind several times: group the
    # log by client id.
    my %by_id;
    push @{ $by_id{$1} }, $2 while $log =~ /^\S+ \S+ UTC \w+ c(\d+): (.*)$/mg;
    my ($v2_local, $v1_check, $pgsql_check) = (0, 0, 0);
    for my $lines (values %by_id) {
        my $all = join "\n", @$lines;
        next unless $all =~ /^connection from 127\.0\.0\.1:(\d+)$/m;
        my $port = $1;
        if ($all =~ /PROXY v1 header from 127\.0\.0\.1:$port: caller 127\.0\.0\.1:$port\b/) { $v1_check++ }
        elsif ($all =~ /login from 127\.0\.0\.1:$port: user=app\b/ && $all !~ /PROXY v/)  { $pgsql_check++ }
        elsif ($all !~ /PROXY v|login from/)                                               { $v2_local++ }
    }
    cmp_ok $v2_local,    '>=', 5, "be_v2 TCP checks (PROXY v2 LOCAL) reached pgnear: $v2_local";
    cmp_ok $v1_check,    '>=', 5, "be_v1 TCP checks (PROXY v1 line with HAProxy's own address) reached pgnear: $v1_check";
    cmp_ok $pgsql_check, '>=', 3, "be_crc pgsql-checks (LOCAL + StartupMessage) logged in through pgnear: $pgsql_check";
}

# A client that bypasses HAProxy is refused (proxy_protocol = required).
{
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, local_addr => '127.0.0.5');
    my $st = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    is sqlstate($st->{error}), '08P01', 'a direct client without a PROXY header is refused (08P01)';
}

ok $p->is_running, 'pgnear still runs';
ok haproxy_running(), 'HAProxy still runs';
my $st = stop_haproxy();
ok defined $st, 'HAProxy stopped';
note sprintf 'run time %.1f s', time - $T0;

done_testing;
