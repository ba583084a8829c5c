# What a newcomer trips on, through real psql and pgnear:
#
# - a startup hint pgnear cannot use (pgnear.city=Seatle, pgnear.region=mars,
#   pgnear.location=north) comes back to the client as a WARNING notice
#   (SQLSTATE 01000) after AuthenticationOk and before ReadyForQuery, naming
#   the hint, where the session went and, for a city, the closest names;
#   a PROXY TLV that cannot be used is logged, not sent to the client;
# - a city with a space: "New\ York" (the server's own escaping in options),
#   New_York and New+York all work; "-c pgnear.city=New York" fails at
#   pgnear with an explanation instead of at the server;
# - the route log gives no distance when none is known;
# - pgnear --check lists every problem of a file, and passes on
#   conf/pgnear.example.ini, whose sessions need nearest (--check and
#   --explain with no need= say so); --explain needs no credentials, says
#   when ip= has no GeoIP database, and that it does not know health.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';

my $T0 = time;
my $SRCDIR = $ENV{PGNEAR_SRCDIR} // "$FindBin::RealBin/../..";
my $CITIES = "$SRCDIR/conf/cities.csv";
die "no city table at $CITIES\n" unless -r $CITIES;
my $PGNEAR = $ENV{PGNEAR} // die "PGNEAR is not set\n";

# Three regions; the default is eu-west, so that a city that resolves to
# us-east or us-west is told apart from one that fell back to the default.
my @clusters = map { PgNearTest::Cluster->new(name => $_) } qw(us-east us-west eu-west);
my $since = time;
my $p = PgNearTest::Proxy->new(regions => \@clusters,
    settings => { auth => 'passthrough', server_tls => 'disable', cities_file => $CITIES,
                  default_region => 'eu-west', proxy_protocol => 'optional',
                  trusted_proxies => '127.0.0.1/32', health_check_interval => '1s' });
$p->wait_healthy($since, @clusters);

# psql through pgnear with these options: (exit code, cluster_name, stderr, what pgnear logged).
sub via {
    my ($options, %o) = @_;
    my $off = $p->log_size;
    my ($rc, $out, $err) = psql($o{conninfo} // $p->conninfo(defined $options ? (options => $options) : ()),
                                'SHOW cluster_name', env => $o{env});
    return ($rc, $out, $err, substr($p->log_contents, $off));
}

# ------------------------------------------------------------------ (1) notices for hints

{
    my ($rc, $out, $err, $log) = via('-c pgnear.city=Seatle');
    is $rc, 0, 'pgnear.city=Seatle: the session still works' or diag $err;
    is $out, 'eu-west', '  in the default region';
    like $err, qr/^WARNING:  pgnear\.city "Seatle" is not in pgnear's city table$/m,
        '  psql prints a WARNING naming the hint';
    like $err, qr/^DETAIL:  The session went to region eu-west, the default region \(default_region\)\.$/m,
        '  DETAIL says where the session went';
    like $err, qr/^HINT:  Did you mean Seattle \(US\)/m, '  HINT names the closest city, Seattle';
    like $log, qr/route: region eu-west \(default: city "Seatle" from startup hint is not in the city table/,
        '  the log says why too';
    unlike $log, qr/km away/, '  and gives no distance for the default route';
}
{
    my ($rc, $out, $err) = via('-c pgnear.region=mars');
    is $out, 'eu-west', 'pgnear.region=mars: default region';
    like $err, qr/^WARNING:  pgnear\.region "mars" is not a configured region$/m, '  WARNING names the region';
    like $err, qr/^HINT:  Configured regions: us-east, us-west, eu-west\.$/m, '  HINT lists the regions';
}
{
    my ($rc, $out, $err) = via('-c pgnear.region=mars -c pgnear.city=Seattle');
    is $out, 'us-west', 'pgnear.region=mars with pgnear.city=Seattle: the city decides';
    my @w = $err =~ /^WARNING:  (.*)$/mg;
    is_deeply \@w, ['pgnear.region "mars" is not a configured region'], '  one WARNING, for the region';
    like $err, qr/^DETAIL:  The session went to region us-west, chosen by city "Seattle" \(startup hint\)\.$/m,
        '  DETAIL says the city chose';
}
{
    my ($rc, $out, $err) = via('-c pgnear.location=north -c pgnear.city=Nowhereville');
    is $out, 'eu-west', 'bad location and unknown city: default region';
    my @w = $err =~ /^WARNING:  (.*)$/mg;
    is scalar(@w), 2, '  two WARNINGs' or diag $err;
    like $err, qr/^WARNING:  pgnear\.location "north" is not "latitude,longitude"$/m, '  one for the location';
    like $err, qr/^WARNING:  pgnear\.city "Nowhereville" is not in pgnear's city table$/m, '  one for the city';
}
{
    my ($rc, $out, $err, $log) = via('-c pgnear.city=Seattle');
    is $out, 'us-west', 'pgnear.city=Seattle: us-west';
    unlike $err, qr/WARNING/, '  no WARNING for a hint that worked';
    like $log, qr/route: region us-west, \d+ km away \(city:/, '  the log gives the distance from Seattle';
}
{
    my ($rc, $out, $err, $log) = via('-c pgnear.region=us-west');
    is $out, 'us-west', 'pgnear.region=us-west';
    like $log, qr/route: region us-west \(region: region us-west named by startup hint\)/,
        '  the log gives no distance for a named region (the caller is nowhere in particular)';
}
{
    my ($rc, $out, $err, $log) = via(undef);
    is $out, 'eu-west', 'no hint: default region';
    unlike $err, qr/WARNING/, '  and no WARNING';
    like $log, qr/route: region eu-west \(default: no locality known: default_region eu-west\)/,
        '  the log says default, with no "0 km away"';
}

# The order on the wire: AuthenticationOk, ..., NoticeResponse, ReadyForQuery.
# login_seen($proxy, $options): the startup result, with the cluster and the message types seen.
sub login_seen {
    my ($px, $options) = @_;
    my (@seen, $r);
    no warnings 'redefine';
    my $orig = \&PgNearTest::Wire::read_msg;
    local *PgNearTest::Wire::read_msg = sub {
        my @m = $orig->(@_);
        push @seen, !defined $m[0] ? 'EOF' : $m[0] eq 'R' ? 'R' . unpack('N', $m[1]) : $m[0];
        return @m;
    };
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $px->port, timeout => 10);
    $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                     params => [options => $options]);
    if ($r->{ok}) {
        my $q = $w->query('SHOW cluster_name');
        $r->{cluster} = $q->{rows}[0][0];
    }
    $w->terminate;
    $r->{seen} = join ' ', @seen;
    my ($ok_at, $n_at, $z_at) = map { my $t = $_; (grep { $seen[$_] eq $t } 0 .. $#seen)[0] // -1 } qw(R0 N Z);
    $r->{in_order} = $ok_at >= 0 && $n_at > $ok_at && $z_at > $n_at;
    return $r;
}
{
    my $r = login_seen($p, '-c pgnear.city=Seatle');
    ok $r->{ok}, 'raw client: login with pgnear.city=Seatle succeeds';
    is $r->{cluster}, 'eu-west', '  in the default region';
    is scalar(@{ $r->{notices} }), 1, '  one NoticeResponse during login';
    my $n = $r->{notices}[0] // {};
    is $n->{S}, 'WARNING', '  severity WARNING';
    is $n->{V}, 'WARNING', '  non-localized severity WARNING';
    is $n->{C}, '01000', '  SQLSTATE 01000 (warning: the login succeeded)';
    like $n->{M} // '', qr/^pgnear\.city "Seatle"/, '  message names the hint';
    like $n->{D} // '', qr/region eu-west/, '  detail names the region';
    like $n->{H} // '', qr/Seattle \(US\)/, '  hint names Seattle';
    ok $r->{in_order}, "  order: AuthenticationOk, then the notice, then ReadyForQuery ($r->{seen})";
}
# auth = scram: pgnear does the SASL exchange itself; the notice still comes after AuthenticationOk.
{
    my $udir = PgNearTest::tmpdir(name => 'users', mode => 0755);
    PgNearTest::write_file("$udir/userlist.txt", sprintf(qq{"app" "%s"\n}, $clusters[0]->scram_verifier('app')));
    my $ps = PgNearTest::Proxy->new(regions => [$clusters[0]],
        settings => { auth => 'scram', auth_file => "$udir/userlist.txt", server_tls => 'disable' });
    my $r = login_seen($ps, '-c pgnear.region=mars');
    ok $r->{ok}, 'auth = scram: login with pgnear.region=mars succeeds';
    is $r->{cluster}, 'us-east', '  in the default region';
    is_deeply [map { $_->{M} } @{ $r->{notices} }], ['pgnear.region "mars" is not a configured region'],
        '  one notice, for the region';
    ok $r->{in_order}, "  order: AuthenticationOk, then the notice, then ReadyForQuery ($r->{seen})";
    my ($rc, $out, $err) = psql($ps->conninfo(options => '-c pgnear.region=mars'), 'SHOW cluster_name');
    is $out, 'us-east', '  psql logs in too';
    like $err, qr/^WARNING:  pgnear\.region "mars" is not a configured region$/m, '  and prints the WARNING';
    $ps->stop;
}

# ------------------------------------------------------------------ (2) PROXY TLVs: the log, not the client

sub pp_v2_tlv {
    my ($type, $value) = @_;
    require Socket;
    my $sig  = "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A";
    my $body = Socket::inet_aton('127.0.0.1') . Socket::inet_aton('127.0.0.1') . pack('nn', 40001, $p->port)
             . pack('C n', $type, length $value) . $value;
    return $sig . pack('C C n', 0x21, 0x11, length $body) . $body;
}
for my $t ([0xE3, 'Seatle', qr/PROXY TLV city "Seatle" is not in the city table \(closest: Seattle \(US\)/],
           [0xE4, 'mars',   qr/PROXY TLV region "mars" is not a configured region/]) {
    my ($type, $value, $re) = @$t;
    my $off = $p->log_size;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 10,
                                      prelude => pp_v2_tlv($type, $value));
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    my $q = $r->{ok} ? $w->query('SHOW cluster_name') : {};
    $w->terminate;
    ok $r->{ok}, sprintf('PROXY TLV 0x%02X "%s": login succeeds', $type, $value);
    is $q->{rows}[0][0], 'eu-west', '  in the default region';
    is scalar(@{ $r->{notices} }), 0, '  no notice to the client: it did not send the TLV';
    like substr($p->log_contents, $off), qr/WARNING.*$re/, '  a WARNING in the log, for whoever runs the balancer';
}

# ------------------------------------------------------------------ (3) cities with a space

{
    my ($rc, $out, $err) = via('-c pgnear.city=New\ York');
    is $out, 'us-east', 'options=\'-c pgnear.city=New\\ York\' (the server\'s escaping): us-east' or diag $err;
    unlike $err, qr/WARNING/, '  without a WARNING';
    ($rc, $out, $err) = via('-c pgnear.city=New_York');
    is $out, 'us-east', 'pgnear.city=New_York: us-east' or diag $err;
    ($rc, $out, $err) = via('-c pgnear.city=New+York');
    is $out, 'us-east', 'pgnear.city=New+York: us-east' or diag $err;
    ($rc, $out, $err) = via(undef, env => { PGOPTIONS => '-c pgnear.city=New\ York' });
    is $out, 'us-east', 'PGOPTIONS=\'-c pgnear.city=New\\ York\': us-east' or diag $err;
    my $uri = sprintf('postgresql://%s:%s@127.0.0.1:%d/%s?sslmode=disable&options=%s', $PgNearTest::APP_USER,
                      $PgNearTest::APP_PASSWORD, $p->port, $PgNearTest::APP_DB, '-c%20pgnear.city%3DNew+York');
    ($rc, $out, $err) = via(undef, conninfo => $uri);
    is $out, 'us-east', 'a URI with options=-c%20pgnear.city%3DNew+York (libpq keeps the +): us-east' or diag $err;
}
{
    my ($rc, $out, $err, $log) = via('-c pgnear.city=New York');
    isnt $rc, 0, '-c pgnear.city=New York (unescaped space): the login fails';
    like $err, qr/FATAL:  unescaped space in the value of pgnear\.city in options/, '  pgnear says why';
    like $err, qr/DETAIL:  Options are split at spaces: pgnear\.city was "New", and the server would refuse "York"/,
        '  DETAIL says how the options were split';
    like $err, qr/HINT:  Escape the space with a backslash \(-c pgnear\.city=New\\ York\), or write the city as New_York\./,
        '  HINT says how to write it';
    unlike $err, qr/invalid command-line argument for server process/, '  not the server\'s puzzling error';
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 10);
    my $r = $w->startup(user => 'app', database => 'movr', params => [options => '-c pgnear.location=47.6, -122.3']);
    is $r->{error}{C}, '42601', '-c pgnear.location=47.6, -122.3: SQLSTATE 42601, like the server\'s own';
    like $r->{error}{H} // '', qr/-c pgnear\.location=47\.6,\\ -122\.3/, '  HINT escapes the space';
}

# ------------------------------------------------------------------ (4) --check and --explain

{
    my ($rc, $out, $err) = run_cmd([$PGNEAR, '--check', 'conf/pgnear.example.ini'], cwd => $SRCDIR, timeout => 60);
    is $rc, 0, 'pgnear --check conf/pgnear.example.ini passes' or diag $err;
    like $out, qr/configuration OK/, '  configuration OK';
    ($rc, $out, $err) = run_cmd([$PGNEAR, '--explain', 'conf/pgnear.example.ini', 'city=Seattle'], cwd => $SRCDIR,
                                timeout => 60);
    is $rc, 0, 'pgnear --explain on the example' or diag $err;
    like $out, qr/^region: us-west$/m, '  Seattle goes to us-west';
    # The example's sessions need nearest, and both say so with no need= given.
    ($rc, $out, $err) = run_cmd([$PGNEAR, '--check', 'conf/pgnear.example.ini'], cwd => $SRCDIR, timeout => 60);
    like $out, qr/^need: target_session_attrs = nearest: each transaction on the nearest host/m,
      '  --check: the example\'s sessions need nearest';
    ($rc, $out, $err) = run_cmd([$PGNEAR, '--explain', 'conf/pgnear.example.ini', 'city=Dublin'], cwd => $SRCDIR,
                                timeout => 60);
    like $out, qr/^needing: nearest\nregion: eu-west\n(?:.*\n)*^writes: /m,
      '  --explain city=Dublin: needing nearest, reads from eu-west, then where writes go' or diag $out;
    # Why that order: each region's score, cold (--explain measures nothing), and the candidates.
    like $out, qr/^route_by: hybrid \(route_candidates \d+, route_candidate_km \d+\)/m, '  --explain: route_by';
    like $out, qr/^  1\. eu-west +\d+ km  candidate: score [\d.]+ ms = cold: prior [\d.]+ ms \+ [\d.]+ ms for the caller's distance$/m,
      '  --explain: eu-west first, its score the distance prior twice (cold)' or diag $out;
    like $out, qr/^  \d\. ap-northeast +\d+ km  not a candidate /m, '  --explain: Tokyo\'s region is no candidate for Dublin';
}
{
    my $dir = PgNearTest::tmpdir(name => 'check', mode => 0755);
    my $ini = "$dir/broken.ini";
    PgNearTest::write_file($ini, <<"INI");
[pgnear]
auth = scram
auth_file = $dir/no-such-userlist.txt
client_tls = require
listen_port = 99999
cities_file = $CITIES
default_region = eu
route_by = distance

[region eu]
location = 53.35, -6.26
hosts = 127.0.0.1:1

[region us]
location = 39.04, -77.49
hosts = 127.0.0.1:2
INI
    my ($rc, $out, $err) = run_cmd([$PGNEAR, '--check', $ini], timeout => 60);
    is $rc, 1, 'pgnear --check on a file with three problems exits 1';
    my @lines = grep { /^pgnear: \Q$ini\E:\d+: / } split /\n/, $err;
    is scalar(@lines), 3, '  and lists all three, each with its line' or diag $err;
    like $err, qr/\Q$ini\E:5: listen_port must be between 1 and 65535/, '  listen_port, line 5';
    like $err, qr/\Q$ini\E:3: could not open auth_file "\Q$dir\E\/no-such-userlist.txt"/, '  the missing auth_file, line 3';
    like $err, qr/\Q$ini\E:4: client_tls needs client_tls_cert_file/, '  client_tls, line 4';
    like $err, qr/has 3 problems/, '  and counts them';

    ($rc, $out, $err) = run_cmd([$PGNEAR, '--explain', $ini, 'city=Chicago'], timeout => 60);
    is $rc, 0, 'pgnear --explain on the same file: credentials and TLS files are not needed' or diag $err;
    like $out, qr/^region: us$/m, '  Chicago goes to us';
    like $out, qr/^route_by: distance\n(?:.*\n)*^  1\. us +\d+ km  by distance \(route_by = distance\)$/m,
        '  by the file\'s route_by';
    like $out, qr/^note: health is not checked by --explain; the running proxy may pass over a region that is down$/m,
        '  and it says health is not checked';

    ($rc, $out, $err) = run_cmd([$PGNEAR, '--explain', $ini, 'ip=81.2.69.142'], timeout => 60);
    like $out, qr/^region: eu$/m, '--explain ip= without geoip_db: the default region';
    like $out, qr/^note: no GeoIP database is configured \(geoip_db is not set\)/m, '  and it says there is no GeoIP database';
    unlike $out, qr/\d+ km/, '  with no distances';

    ($rc, $out, $err) = run_cmd([$PGNEAR, '--explain', $ini, 'city=Seatle'], timeout => 60);
    like $out, qr/^note: did you mean Seattle \(US\)/m, '--explain city=Seatle suggests Seattle';
}

my $elapsed = time - $T0;
note sprintf('122_hints_notice took %.1f s', $elapsed);
ok $elapsed < 90, 'test file runs in under 90 s';
done_testing;
