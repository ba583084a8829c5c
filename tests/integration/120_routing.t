# Locality routing against four real regions: every source of the caller's
# locality (startup hints, PROXY v1/v2 headers and their TLVs, GeoIP on the
# real caller address, TLS SNI), their order of precedence, the [cities]
# override, fallbacks, and the PROXY protocol rules (trusted_proxies,
# proxy_protocol = off | optional | required, LOCAL, split headers).
#
# The expected region of every city is computed here with an independent
# haversine over coordinates written in this file, not taken from pgnear.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IPC::Run ();
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';    # writes to a connection pgnear closed must not kill us

my $T0 = time;
my $SRCDIR = $ENV{PGNEAR_SRCDIR} // "$FindBin::RealBin/../..";
my $CITIES = "$SRCDIR/conf/cities.csv";
die "no city table at $CITIES\n" unless -r $CITIES;
my $PGNEAR = $ENV{PGNEAR} // die "PGNEAR is not set\n";

# ------------------------------------------------------------------ geography

# haversine_km (PgNearTest) computes distances without pgnear.

my %REGION = (
    'us-east'      => [39.04, -77.49],
    'us-west'      => [45.60, -121.18],
    'eu-west'      => [53.35, -6.26],
    'ap-northeast' => [35.68, 139.69],
);
my @REGION_ORDER = ('us-east', 'us-west', 'eu-west', 'ap-northeast');

sub nearest_region {
    my ($lat, $lon) = @_;
    my ($best, $best_km);
    for my $r (@REGION_ORDER) {
        my $km = haversine_km($lat, $lon, @{ $REGION{$r} });
        ($best, $best_km) = ($r, $km) if !defined $best_km || $km < $best_km;
    }
    return $best;
}

# hint: the name as sent (the city table's first "San Francisco" is the one in
# Argentina, see conf/cities.README.md, hence ", US"); ascii: the name in the
# test GeoIP databases; coordinates: city centres, written here by hand.
# Nine cities, each routed by every source below (a login apiece): every region at least
# twice, both hemispheres, the spellings that matter (a space, a ", US", a non-ASCII name),
# the close calls (Mexico City: us-east by 530 km over us-west; Mumbai: ap-northeast by
# 880 km over eu-west) and the cities the tests after the loops name.  The sixteen this once
# had (Toronto, New York, London, Berlin, Singapore, Sydney, Auckland too) were the same
# cases again, at six logins each.
my @CITIES = (
    { hint => 'Seattle',           ascii => 'Seattle',       cc => 'US', lat => 47.6062,  lon => -122.3321 },
    { hint => 'San Francisco, US', ascii => 'San Francisco', cc => 'US', lat => 37.7749,  lon => -122.4194 },
    { hint => 'Mexico City',       ascii => 'Mexico City',   cc => 'MX', lat => 19.4326,  lon => -99.1332 },
    { hint => 'São Paulo',         ascii => 'Sao Paulo',     cc => 'BR', lat => -23.5505, lon => -46.6333 },
    { hint => 'Paris',             ascii => 'Paris',         cc => 'FR', lat => 48.8566,  lon => 2.3522 },
    { hint => 'Lagos',             ascii => 'Lagos',         cc => 'NG', lat => 6.5244,   lon => 3.3792 },
    { hint => 'Nairobi',           ascii => 'Nairobi',       cc => 'KE', lat => -1.2921,  lon => 36.8219 },
    { hint => 'Mumbai',            ascii => 'Mumbai',        cc => 'IN', lat => 19.0760,  lon => 72.8777 },
    { hint => 'Tokyo',             ascii => 'Tokyo',         cc => 'JP', lat => 35.6762,  lon => 139.6503 },
);
for my $i (0 .. $#CITIES) {
    my $c = $CITIES[$i];
    $c->{expect} = nearest_region($c->{lat}, $c->{lon});
    $c->{ip4}    = '203.0.113.' . (10 + $i);     # maxmind layout database
    $c->{ip4b}   = '198.51.100.' . (10 + $i);    # dbip layout database
}
my %CITY = map { $_->{ascii} => $_ } @CITIES;

# The spread the test relies on: every region gets some cities.
{
    my %seen = map { $_->{expect} => 1 } @CITIES;
    is_deeply [sort keys %seen], [sort @REGION_ORDER], 'the test cities cover all four regions'
      or BAIL_OUT('city list does not spread over the regions');
}
# A hard-coded sanity check of the haversine itself (London - Paris ~ 343.5 km).
cmp_ok abs(haversine_km(51.5074, -0.1278, 48.8566, 2.3522) - 343.5), '<', 1.5, 'haversine sanity';

# ------------------------------------------------------------------ GeoIP databases

my $dir = tmpdir(name => 'geo', mode => 0755);
my $mm_db   = "$dir/test-city-v6.mmdb";    # GeoLite2-City layout
my $dbip_db = "$dir/test-city-v4.mmdb";    # ip-location-db flat layout
{
    my @mm = (
        '127.0.0.5/32=Tokyo,JP,35.6762,139.6503',
        '127.0.0.7/32=Sydney,AU,-33.8688,151.2093',
        '2001:db8::10/128=Auckland,NZ,-36.8485,174.7633',
        map { "$_->{ip4}/32=$_->{ascii},$_->{cc},$_->{lat},$_->{lon}" } @CITIES,
    );
    my @db = map { "$_->{ip4b}/32=$_->{ascii},$_->{cc},$_->{lat},$_->{lon}" } @CITIES;
    my $mk = "$SRCDIR/tests/lib/make_mmdb.pl";
    my ($rc, $out, $err) = run_cmd([$^X, $mk, '--layout', 'maxmind', '--ip-version', 6, '--out', $mm_db, @mm],
                                   timeout => 60);
    is $rc, 0, 'test GeoIP database (MaxMind layout) written' or diag $err;
    ($rc, $out, $err) = run_cmd([$^X, $mk, '--layout', 'dbip', '--ip-version', 4, '--out', $dbip_db, @db],
                                timeout => 60);
    is $rc, 0, 'test GeoIP database (DB-IP layout) written' or diag $err;
}

# ------------------------------------------------------------------ regions and proxies

my $ca = PgNearTest::CA->new;
my $tls = $ca->issue(name => 'pgnear', cn => 'pgnear.db.example', owner => undef,
                     san => ['DNS:*.db.example', 'DNS:localhost', 'IP:127.0.0.1']);

my @clusters = map { PgNearTest::Cluster->new(name => $_) } @REGION_ORDER;
is_deeply [map { [map { $_ + 0 } split /\s*,\s*/, $_->location] } @clusters], [map { $REGION{$_} } @REGION_ORDER],
    'the clusters sit where this test thinks the regions are';

my %BASE = (
    auth                  => 'passthrough',
    server_tls            => 'disable',
    cities_file           => $CITIES,
    trusted_proxies       => '127.0.0.1/32',
    proxy_protocol        => 'optional',
    geoip_db              => "$mm_db, $dbip_db",
    default_region        => 'us-east',
    health_check_interval => '1s',
    # Nothing here is about a check that hangs; a loaded machine can take over 1 s for one,
    # and three such in a row would mark a healthy region down.
    health_check_timeout  => '5s',
);
# Deliberately not the nearest regions (eu-west for both), and not both the default.
my $CITIES_INI = "[cities]\namsterdam = us-east\nReykjavík = ap-northeast\n";


my $since = time;
my $p = PgNearTest::Proxy->new(regions => \@clusters, extra_ini => $CITIES_INI,
    settings => { %BASE, client_tls => 'allow',
                  client_tls_cert_file => $tls->{cert}, client_tls_key_file => $tls->{key} });
my $p_nohints = PgNearTest::Proxy->new(regions => \@clusters, extra_ini => $CITIES_INI,
    settings => { %BASE, client_hints => 'off' });
my $p_required = PgNearTest::Proxy->new(regions => \@clusters, extra_ini => $CITIES_INI,
    settings => { %BASE, proxy_protocol => 'required' });
my $p_off = PgNearTest::Proxy->new(regions => \@clusters, extra_ini => $CITIES_INI,
    settings => { %BASE, proxy_protocol => 'off' });

$_->wait_healthy($since, @clusters) for $p, $p_nohints, $p_required, $p_off;

# ------------------------------------------------------------------ helpers

# Escapes a value for the server's options word splitting (backslash before
# whitespace and backslashes).
sub opt_escape { my $s = shift; $s =~ s/([\\\s])/\\$1/g; return $s }

sub pp_v1 {
    my ($src, $dst, $sport, $dport) = @_;
    my $fam = $src =~ /:/ ? 'TCP6' : 'TCP4';
    return "PROXY $fam $src $dst $sport $dport\r\n";
}

sub inet_bytes {
    my ($a) = @_;
    require Socket;
    if ($a =~ /:/) { return Socket::inet_pton(Socket::AF_INET6(), $a) // die "bad address $a" }
    return Socket::inet_pton(Socket::AF_INET(), $a) // die "bad address $a";
}

# PROXY v2, written byte by byte from proxy-protocol.txt section 2.2.
#   pp_v2(src => ADDR, dst => ADDR, sport =>, dport =>, tlvs => [[type, bytes], ...], local => 1)
sub pp_v2 {
    my (%o) = @_;
    my $sig = "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A";
    my ($ver_cmd, $fam, $body);
    if ($o{local}) {
        ($ver_cmd, $fam, $body) = (0x20, 0x00, '');
    } else {
        my $v6 = $o{src} =~ /:/;
        $ver_cmd = 0x21;
        $fam = $v6 ? 0x21 : 0x11;
        $body = inet_bytes($o{src}) . inet_bytes($o{dst}) . pack('nn', $o{sport}, $o{dport});
    }
    my $crc_at;
    if ($o{crc}) {    # PP2_TYPE_CRC32C first, its value zero while the sum is computed
        $crc_at = 16 + length($body) + 3;
        $body .= pack('C n', 0x03, 4) . "\0\0\0\0";
    }
    for my $t (@{ $o{tlvs} // [] }) {
        $body .= pack('C n', $t->[0], length $t->[1]) . $t->[1];
    }
    my $hdr = $sig . pack('C C n', $ver_cmd, $fam, length $body) . $body;
    if ($o{crc}) {
        my $crc = crc32c($hdr);
        $crc ^= 1 if $o{crc} eq 'bad';
        substr($hdr, $crc_at, 4) = pack('N', $crc);
    }
    return $hdr;
}

# CRC32c (Castagnoli, reflected polynomial 0x82F63B78), bit by bit.
sub crc32c {
    my ($data) = @_;
    my $crc = 0xFFFFFFFF;
    for my $b (unpack 'C*', $data) {
        $crc ^= $b;
        $crc = ($crc & 1) ? (($crc >> 1) ^ 0x82F63B78) : ($crc >> 1) for 1 .. 8;
    }
    return $crc ^ 0xFFFFFFFF;
}
is sprintf('%08x', crc32c('123456789')), 'e3069283', 'crc32c check value (RFC 3720)';
my ($TLV_CITY, $TLV_REGION, $TLV_LOCATION) = (0xE3, 0xE4, 0xE5);

my $sport = 40000;
sub v2_from {
    my ($src, @tlvs) = @_;
    return pp_v2(src => $src, dst => ($src =~ /:/ ? '2001:db8::1' : '127.0.0.1'),
                 sport => $sport++, dport => $p->port, tlvs => \@tlvs);
}

# A whole session with the raw client: (cluster_name or undef, startup result).
#   wire_session(port =>, prelude =>, local_addr =>, params => [...], bytewise => BYTES,
#                sql => 'SELECT ...' (its first value in $r->{sql}))
sub wire_session {
    my (%o) = @_;
    my ($name, $r);
    my $ok = eval {
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $o{port} // $p->port, timeout => 10,
                                          (defined $o{prelude} ? (prelude => $o{prelude}) : ()),
                                          ($o{local_addr} ? (local_addr => $o{local_addr}) : ()));
        if (defined $o{bytewise}) {
            for my $b (split //, $o{bytewise}) { $w->send_raw($b); sleep 0.005 }
        }
        $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                         params => $o{params} // []);
        if ($r->{ok}) {
            my $q = $w->query('SHOW cluster_name');
            $name = $q->{rows}[0][0];
            $r->{sql} = $w->query($o{sql})->{rows}[0][0] if defined $o{sql};
        }
        $w->terminate;
        1;
    };
    $r //= { error => { M => "client died: $@" } } unless $ok;
    return ($name, $r);
}

# The first message pgnear sends back after the prelude alone, as fields.
sub wire_reply {
    my (%o) = @_;
    my $res = eval {
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $o{port} // $p->port, timeout => 10,
                                          ($o{local_addr} ? (local_addr => $o{local_addr}) : ()));
        eval { $w->send_raw($o{bytes}) };
        my ($t, $m) = $w->read_msg;
        my %r = (type => $t // 'EOF');
        $r{fields} = PgNearTest::Wire::parse_fields($m) if defined $t && $t eq 'E';
        my @more = eval { $w->read_msg };
        $r{closed} = (!@more || $@) ? 1 : 0;
        close $w->socket;
        \%r;
    };
    return $res // { type => "died: $@" };
}

sub where { my ($px, $options) = @_; return scalar psql($px->conninfo(options => $options), 'SHOW cluster_name') }

# Runs $code, returns what pgnear logged meanwhile.
sub logged {
    my ($px, $code) = @_;
    my $off = $px->log_size;
    my @r = $code->();
    # the route line is written before the server is even contacted
    return (substr($px->log_contents, $off), @r);
}

sub route_re {
    my ($region, $source, $reason) = @_;
    return qr/route: region \Q$region\E(?:, \d+ km away)? \(\Q$source\E: \Q$reason\E/;
}

my %got;    # "city" => region the session landed in, for --explain

# ------------------------------------------------------------------ (1) city hint, psql

for my $c (@CITIES) {
    my ($log, $got) = logged($p, sub { where($p, '-c pgnear.city=' . opt_escape($c->{hint})) });
    is $got, $c->{expect}, "city hint $c->{hint} -> $c->{expect}";
    like $log, route_re($c->{expect}, 'city', qq{city "$c->{hint}" (startup hint) is }),
        "  log: decided by the city hint";
    $got{ $c->{ascii} } = $got;
}
is where($p, '-c pgnear.city=sao\ paulo'), $CITY{'Sao Paulo'}{expect}, 'city names are folded (sao paulo)';
is where($p, '-c pgnear.city=TOKYO'), 'ap-northeast', 'city names ignore case';

# ------------------------------------------------------------------ (2) location hint

for my $c (@CITIES) {
    my ($log, $got) = logged($p, sub { where($p, "-c pgnear.location=$c->{lat},$c->{lon}") });
    is $got, $c->{expect}, "location hint of $c->{ascii} ($c->{lat},$c->{lon}) -> $c->{expect}";
    like $log, route_re($c->{expect}, 'location', 'coordinates '), '  log: decided by the coordinates';
}

# ------------------------------------------------------------------ (3) PROXY v2 city TLV

for my $c (@CITIES) {
    # 192.0.2.x is in no GeoIP database: only the TLV can place the caller.
    my ($log, $got, $r) = logged($p, sub { wire_session(prelude => v2_from('192.0.2.1', [$TLV_CITY, $c->{hint}])) });
    is $got, $c->{expect}, "PROXY v2 city TLV $c->{hint} -> $c->{expect}"
      or diag explain $r->{error};
    like $log, route_re($c->{expect}, 'city', qq{city "$c->{hint}" (PROXY TLV) is }), '  log: decided by the TLV';
}

# ------------------------------------------------------------------ (4) GeoIP on the PROXY source address

for my $c (@CITIES) {
    my ($log, $got, $r) = logged($p, sub {
        wire_session(prelude => pp_v1($c->{ip4}, '127.0.0.1', $sport++, $p->port)) });
    is $got, $c->{expect}, "PROXY v1 from $c->{ip4} (GeoIP: $c->{ascii}) -> $c->{expect}"
      or diag explain $r->{error};
    like $log, qr/PROXY v1 header from 127\.0\.0\.1:\d+: caller \Q$c->{ip4}\E:\d+/, '  log: the real caller';
    like $log, route_re($c->{expect}, 'geoip', "GeoIP places the caller in $c->{ascii}, $c->{cc} at"),
        '  log: decided by GeoIP';

    ($log, $got, $r) = logged($p, sub { wire_session(prelude => v2_from($c->{ip4b})) });
    is $got, $c->{expect}, "PROXY v2 from $c->{ip4b} (DB-IP layout: $c->{ascii}) -> $c->{expect}"
      or diag explain $r->{error};
    like $log, route_re($c->{expect}, 'geoip', "GeoIP places the caller in $c->{ascii}, $c->{cc} at"),
        '  log: decided by GeoIP (flat layout)';
}
{
    # IPv4-mapped IPv6 source: only the IPv4 (DB-IP layout) database knows it.
    my $c = $CITY{Nairobi};
    my ($log, $got, $r) = logged($p, sub { wire_session(prelude => v2_from("::ffff:$c->{ip4b}")) });
    is $got, $c->{expect}, "PROXY v2 TCP6 from ::ffff:$c->{ip4b} (v4-mapped, GeoIP: Nairobi) -> $c->{expect}"
      or diag explain $r->{error};
    like $log, route_re($c->{expect}, 'geoip', 'GeoIP places the caller in Nairobi'), '  log: GeoIP on the IPv4 address';
}
{
    my ($log, $got, $r) = logged($p, sub { wire_session(prelude => v2_from('2001:db8::10')) });
    is $got, 'ap-northeast', 'PROXY v2 TCP6 from 2001:db8::10 (GeoIP: Auckland) -> ap-northeast'
      or diag explain $r->{error};
    like $log, route_re('ap-northeast', 'geoip', 'GeoIP places the caller in Auckland'), '  log: GeoIP on IPv6';
}

# ------------------------------------------------------------------ (5) --pgnear.city spelling

for my $c (@CITIES) {
    is where($p, '--pgnear.city=' . opt_escape($c->{hint})), $c->{expect},
        "--pgnear.city=$c->{hint} -> $c->{expect}";
}

# ------------------------------------------------------------------ other TLVs

{
    my ($got) = wire_session(prelude => v2_from('192.0.2.1', [$TLV_REGION, 'us-west']));
    is $got, 'us-west', 'PROXY v2 region TLV';
    ($got) = wire_session(prelude => v2_from('192.0.2.1', [$TLV_LOCATION, '-33.8688,151.2093']));
    is $got, 'ap-northeast', 'PROXY v2 location TLV';
    ($got) = wire_session(prelude => v2_from('192.0.2.1', [0x04, 'noop'], [$TLV_CITY, 'Lagos'], [0xEA, 'vpce-0123']));
    is $got, $CITY{Lagos}{expect}, 'unknown TLVs around the city TLV are skipped';
    ($got) = wire_session(prelude => v2_from('192.0.2.1', [$TLV_CITY, 'Amsterdam']));
    is $got, 'us-east', '[cities] override applies to a TLV city too';
}

# ------------------------------------------------------------------ header forms

{
    my ($got, $r) = wire_session(prelude => pp_v2(src => '192.0.2.1', dst => '127.0.0.1', sport => 1, dport => $p->port,
                                                  crc => 'good', tlvs => [[$TLV_CITY, 'Berlin']]));
    is $got, 'eu-west', 'PROXY v2 with a correct CRC32C TLV' or diag explain $r->{error};
    my $e = wire_reply(bytes => pp_v2(src => '192.0.2.1', dst => '127.0.0.1', sport => 1, dport => $p->port,
                                      crc => 'bad', tlvs => [[$TLV_CITY, 'Berlin']]));
    is $e->{fields}{C}, '08P01', 'PROXY v2 with a wrong CRC32C: 08P01';
    like join(' ', grep { defined } @{ $e->{fields} }{qw(M D)}), qr/CRC/i, '  the error mentions the checksum';

    $e = wire_reply(bytes => "PROXY TCP4 nonsense here\r\n");
    is $e->{fields}{C}, '08P01', 'malformed PROXY v1 line: 08P01';
    $e = wire_reply(bytes => v2_from('192.0.2.1', [$TLV_CITY, "Tok\xFFyo"]));
    is $e->{fields}{C}, '08P01', 'PROXY v2 city TLV that is not UTF-8: 08P01';

    # Header and StartupMessage in a single write (one TCP segment).
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 10);
    $w->{pending} = v2_from('192.0.2.1', [$TLV_CITY, 'Singapore']);
    {
        no warnings 'redefine';
        my $orig = \&PgNearTest::Wire::send_raw;
        local *PgNearTest::Wire::send_raw = sub {
            my ($self, $bytes) = @_;
            $bytes = delete($self->{pending}) . $bytes if defined $self->{pending};
            $orig->($self, $bytes);
        };
        $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    }
    is $r->{ok} && $w->query('SHOW cluster_name')->{rows}[0][0], 'ap-northeast',
        'PROXY header and StartupMessage in one segment';
    $w->terminate;

    SKIP: {
        skip 'no ::1 on this machine', 2 unless have_ipv6();
        my $w6 = PgNearTest::Wire->connect(host => '::1', port => $p->port, timeout => 10);
        $w6->send_raw(v2_from('192.0.2.1', [$TLV_CITY, 'Tokyo']));
        my ($t, $m) = $w6->read_msg;
        is $t, 'E', 'PROXY header over ::1 (not in trusted_proxies = 127.0.0.1/32): refused';
        is PgNearTest::Wire::parse_fields($m // '')->{C}, '28000', '  SQLSTATE 28000';
        close $w6->socket;
    }

    # A header that never ends is not waited for forever.
    my $t0 = time;
    my $ev = eval {
        my $ws = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 12);
        $ws->send_raw('PROXY TCP4 192.0.2');
        my ($t) = $ws->read_msg;
        $t // 'EOF';
    } // "died: $@";
    like $ev, qr/^(?:E|EOF)$/, 'an unfinished PROXY header: the connection ends (error or close)';
    cmp_ok time - $t0, '<', 10, '  within the PROXY header timeout';
}

# ------------------------------------------------------------------ repeated and odd hint spellings

{
    is where($p, '-c pgnear.city=Tokyo -c pgnear.city=London'), 'eu-west', 'the last city hint wins, as for GUCs';
    is where($p, '-c pgnear.city=Tokyo -c pgnear.city='), 'us-east', 'an empty city hint clears the earlier one';
    my @out = split /\n/, scalar psql($p->conninfo(options => '-cpgnear.city=Tokyo -csearch_path=bar'),
                                      ['SHOW cluster_name', "SELECT coalesce(current_setting('pgnear.city', true), '<null>')",
                                       'SHOW search_path']), -1;
    is $out[0], 'ap-northeast', '-cpgnear.city=Tokyo (no space after -c) is a hint';
    ok $out[1] eq '<null>' || $out[1] eq '', '  and is stripped' or diag "server has pgnear.city = $out[1]";
    is $out[2], 'bar', '  -csearch_path=bar still reaches the server';
    is scalar psql($p->conninfo, 'SHOW cluster_name', env => { PGOPTIONS => '-c pgnear.city=Sydney' }), 'ap-northeast',
        'hint through PGOPTIONS';
}

# ------------------------------------------------------------------ precedence

{
    my ($log, $got) = logged($p, sub { where($p, '-c pgnear.region=eu-west -c pgnear.city=Tokyo') });
    is $got, 'eu-west', 'region hint beats city hint';
    like $log, route_re('eu-west', 'region', 'region eu-west named by startup hint'), '  log: region hint';

    is where($p, '-c pgnear.city=Tokyo -c pgnear.region=eu-west'), 'eu-west', 'region hint wins whatever the order';
    is where($p, '-c pgnear.region=AP-NORTHEAST'), 'ap-northeast', 'region hint ignores case';
    is where($p, '-c pgnear.city=Tokyo -c pgnear.location=51.5074,-0.1278'), 'ap-northeast',
        'city hint beats location hint';
    is where($p, '-c pgnear.location=51.5074,-0.1278 -c pgnear.city=Tokyo'), 'ap-northeast',
        'city hint beats location hint whatever the order';

    # GeoIP puts 127.0.0.7 in Sydney.
    ($log, $got) = logged($p, sub { wire_session(local_addr => '127.0.0.7') });
    is $got, 'ap-northeast', 'no hint from 127.0.0.7: GeoIP on the socket peer (Sydney)';
    like $log, route_re('ap-northeast', 'geoip', 'GeoIP places the caller in Sydney'), '  log: GeoIP';
    ($got) = wire_session(local_addr => '127.0.0.7', params => [options => '-c pgnear.location=51.5074,-0.1278']);
    is $got, 'eu-west', 'location hint beats GeoIP';
    ($got) = wire_session(local_addr => '127.0.0.7', params => [options => '-c pgnear.city=Seattle']);
    is $got, 'us-west', 'city hint beats GeoIP';

    # Source address in Tokyo (203.0.113.x), TLV city Seattle: the city wins.
    ($got) = wire_session(prelude => v2_from($CITY{Tokyo}{ip4}, [$TLV_CITY, 'Seattle']));
    is $got, 'us-west', 'PROXY TLV city beats GeoIP of the PROXY source';
    ($got) = wire_session(prelude => v2_from('192.0.2.1', [$TLV_REGION, 'ap-northeast']),
                          params => [options => '-c pgnear.city=London']);
    is $got, 'ap-northeast', 'PROXY TLV region beats a city hint';
    ($got) = wire_session(prelude => v2_from('192.0.2.1', [$TLV_CITY, 'Tokyo']),
                          params => [options => '-c pgnear.city=London']);
    is $got, 'eu-west', 'a city hint beats a PROXY TLV city';
    ($got) = wire_session(prelude => v2_from($CITY{Tokyo}{ip4}),
                          params => [options => '-c pgnear.location=47.6062,-122.3321']);
    is $got, 'us-west', 'location hint beats GeoIP of the PROXY source';
}

# ------------------------------------------------------------------ [cities] override

{
    my ($log, $got) = logged($p, sub { where($p, '-c pgnear.city=Amsterdam') });
    is $got, 'us-east', '[cities] amsterdam = us-east beats the nearest region (eu-west)';
    like $log, route_re('us-east', 'city', 'city "Amsterdam" (startup hint) is mapped to region us-east in [cities]'),
        '  log: the override decided';
    cmp_ok haversine_km(52.3676, 4.9041, @{ $REGION{'eu-west'} }), '<',
           haversine_km(52.3676, 4.9041, @{ $REGION{'us-east'} }), '  (Amsterdam really is nearer eu-west)';
    $got{Amsterdam} = $got;
    is where($p, '-c pgnear.city=AMSTERDAM'), 'us-east', 'override names are folded like lookups';
    ($log, $got) = logged($p, sub { where($p, '-c pgnear.city=reykjavik') });
    is $got, 'ap-northeast', '[cities] Reykjavík = ap-northeast: "reykjavik" finds the folded override key';
    like $log, route_re('ap-northeast', 'city', 'city "reykjavik" (startup hint) is mapped to region ap-northeast in [cities]'),
        '  log: the override decided';
    cmp_ok nearest_region(64.1466, -21.9426), 'ne', 'ap-northeast', '  (Reykjavik is nowhere near ap-northeast)';
}

# ------------------------------------------------------------------ unknown cities and regions

{
    my ($log, $got) = logged($p, sub { where($p, '-c pgnear.city=Xyzzyville') });
    is $got, 'us-east', 'unknown city, nothing else: default_region';
    like $log, route_re('us-east', 'default',
                        'city "Xyzzyville" from startup hint is not in the city table; no locality known: default_region us-east'),
        '  log: says why';

    ($log, $got) = logged($p, sub { where($p, '-c pgnear.city=Xyzzyville -c pgnear.location=35.6762,139.6503') });
    is $got, 'ap-northeast', 'unknown city falls back to the location hint';
    like $log, route_re('ap-northeast', 'location', 'coordinates 35.6762, 139.6503'), '  log: location decided';

    ($got) = wire_session(local_addr => '127.0.0.7', params => [options => '-c pgnear.city=Xyzzyville']);
    is $got, 'ap-northeast', 'unknown city falls back to GeoIP (127.0.0.7 = Sydney)';

    ($log, $got) = logged($p, sub { where($p, '-c pgnear.region=mars -c pgnear.city=London') });
    is $got, 'eu-west', 'unknown region hint falls back to the city hint';

    ($log, $got) = logged($p, sub { where($p, '-c pgnear.region=mars') });
    is $got, 'us-east', 'unknown region alone: default_region';
    like $log, route_re('us-east', 'default', 'region "mars" from startup hint is not configured; no locality known'),
        '  log: says why';

    ($log, $got) = logged($p, sub { where($p, '-c pgnear.location=north') });
    is $got, 'us-east', 'malformed location: default_region';
    like $log, qr/location "north" from startup hint is not "lat,lon"; no locality known/, '  log: says why';
}

# ------------------------------------------------------------------ bad hints

{
    my (undef, $r) = wire_session(params => [options => '-c pgnear.bogus=1']);
    ok !$r->{ok}, 'pgnear.bogus=1 is refused';
    is sqlstate($r->{error}), '42704', '  SQLSTATE 42704 (undefined object), like an unknown GUC';
    like $r->{error}{M} // '', qr/unrecognized configuration parameter "pgnear\.bogus"/, '  message names it';
    is $r->{error}{H}, 'pgnear knows pgnear.city, pgnear.region, pgnear.location, pgnear.target_session_attrs, '
                     . 'pgnear.min_lsn, pgnear.report_fence and pgnear.movable.', '  the hint names every hint pgnear knows';

    (undef, $r) = wire_session(params => ['pgnear.bogus' => '1']);
    is sqlstate($r->{error}), '42704', 'pgnear.bogus as a startup parameter: 42704 too';

    my $got;
    ($got, $r) = wire_session(params => ['pgnear.city' => 'Nairobi'],
                              sql => "SELECT coalesce(current_setting('pgnear.city', true), '<null>')");
    is $got, 'eu-west', 'pgnear.city as a plain startup parameter is a hint too';
    ok defined $r->{sql} && ($r->{sql} eq '<null>' || $r->{sql} eq ''),
        '  and that parameter never reaches the server' or diag 'server has pgnear.city = ' . ($r->{sql} // 'undef');
}

# ------------------------------------------------------------------ hints never reach the server

{
    my @out = split /\n/, psql($p->conninfo(options => '-c pgnear.city=Tokyo -c search_path=foo'),
                               ['SHOW cluster_name', "SELECT coalesce(current_setting('pgnear.city', true), '<null>')",
                                'SHOW search_path'], timeout => 30), -1;
    is $out[0], 'ap-northeast', 'hint and another setting in one options: hint used';
    ok $out[1] eq '<null>' || $out[1] eq '', 'the server never saw pgnear.city' or diag "server has pgnear.city = $out[1]";
    is $out[2], 'foo', 'the other setting (search_path) reached the server';
}

# ------------------------------------------------------------------ client_hints = off

{
    my ($log, $out) = logged($p_nohints, sub {
        scalar psql($p_nohints->conninfo(options => '-c pgnear.city=Tokyo -c search_path=foo'),
             ['SHOW cluster_name', "SELECT coalesce(current_setting('pgnear.city', true), '<null>')",
              'SHOW search_path'], timeout => 30) });
    my @out = split /\n/, $out, -1;
    is $out[0], 'us-east', 'client_hints = off: the city hint is ignored (default region)';
    ok $out[1] eq '<null>' || $out[1] eq '', 'client_hints = off: the hint is still stripped'
      or diag "server has pgnear.city = $out[1]";
    is $out[2], 'foo', 'client_hints = off: other options still reach the server';
    like $log, route_re('us-east', 'default', 'no locality known: default_region us-east'), '  log: default';
    is where($p_nohints, '-c pgnear.region=eu-west'), 'us-east', 'client_hints = off: region hint ignored';
    is where($p_nohints, '-c pgnear.location=35.6762,139.6503'), 'us-east', 'client_hints = off: location ignored';
    my ($got) = wire_session(port => $p_nohints->port,
                             prelude => pp_v2(src => '192.0.2.1', dst => '127.0.0.1', sport => 4242,
                                              dport => $p_nohints->port, tlvs => [[$TLV_CITY, 'Tokyo']]));
    is $got, 'ap-northeast', 'client_hints = off: a trusted PROXY TLV still counts';
}

# ------------------------------------------------------------------ trusted_proxies

{
    my $off = $p->log_size;
    my $r = wire_reply(local_addr => '127.0.0.5', bytes => v2_from('192.0.2.1', [$TLV_CITY, 'Seattle']));
    is $r->{type}, 'E', 'PROXY header from untrusted 127.0.0.5: ErrorResponse';
    is $r->{fields}{C}, '28000', '  SQLSTATE 28000';
    like $r->{fields}{M} // '', qr/untrusted/, '  message says why';
    ok $r->{closed}, '  and the connection is closed';
    ok $p->wait_for_log(qr/PROXY header from 127\.0\.0\.5:\d+, which is not in trusted_proxies/, offset => $off),
        '  log names the untrusted sender';

    $r = wire_reply(local_addr => '127.0.0.5', bytes => pp_v1('203.0.113.10', '127.0.0.1', 1234, $p->port));
    is $r->{fields}{C}, '28000', 'PROXY v1 header from untrusted 127.0.0.5: 28000';

    # GeoIP puts 127.0.0.5 in Tokyo.
    my ($got, $sr) = wire_session(local_addr => '127.0.0.5');
    is $got, 'ap-northeast', 'the same caller without a header logs in (GeoIP of 127.0.0.5: Tokyo)'
      or diag explain $sr->{error};
}

# ------------------------------------------------------------------ proxy_protocol = required / off

{
    my (undef, $r) = wire_session(port => $p_required->port);
    ok !$r->{ok}, 'proxy_protocol = required: a plain client is refused';
    is sqlstate($r->{error}), '08P01', '  SQLSTATE 08P01';
    like $r->{error}{M} // '', qr/expected a PROXY protocol header/, '  message says why';

    my $got;
    ($got, $r) = wire_session(port => $p_required->port,
                              prelude => pp_v2(src => $CITY{Paris}{ip4}, dst => '127.0.0.1', sport => 5555,
                                               dport => $p_required->port));
    is $got, 'eu-west', 'proxy_protocol = required: a PROXY v2 client logs in (GeoIP: Paris)';
    ($got, $r) = wire_session(port => $p_required->port, prelude => pp_v2(local => 1));
    is $got, 'us-east', 'proxy_protocol = required: PROXY v2 LOCAL then a normal login';
    ($got, $r) = wire_session(port => $p_required->port, prelude => "PROXY UNKNOWN\r\n",
                              params => [options => '-c pgnear.city=Sydney']);
    is $got, 'ap-northeast', 'proxy_protocol = required: PROXY v1 UNKNOWN, hints still work';

    for my $h (['v2', v2_from('192.0.2.1', [$TLV_CITY, 'Tokyo'])],
               ['v1', pp_v1('203.0.113.10', '127.0.0.1', 1234, $p_off->port)]) {
        my $e = wire_reply(port => $p_off->port, bytes => $h->[1]);
        is $e->{type}, 'E', "proxy_protocol = off: PROXY $h->[0] header gets an ErrorResponse";
        is $e->{fields}{C}, '08P01', '  SQLSTATE 08P01';
        is $e->{fields}{M}, 'received a PROXY protocol header, but proxy_protocol = off', '  the explicit message';
    }
    is where($p_off, '-c pgnear.city=Berlin'), 'eu-west', 'proxy_protocol = off: plain clients work';
}

# ------------------------------------------------------------------ LOCAL and split headers

{
    my ($got, $r) = wire_session(prelude => pp_v2(local => 1));
    is $got, 'us-east', 'PROXY v2 LOCAL (health check) then a normal login: default region (127.0.0.1)'
      or diag explain $r->{error};
    ($got) = wire_session(prelude => pp_v2(local => 1), params => [options => '-c pgnear.city=Auckland']);
    is $got, 'ap-northeast', 'PROXY v2 LOCAL then a login with a city hint';
    # What TLVs on a LOCAL header mean is not specified; the login must work.
    ($got) = wire_session(prelude => pp_v2(local => 1, tlvs => [[0x04, 'noop'], [$TLV_CITY, 'Toronto']]));
    ok defined $got, 'PROXY v2 LOCAL with TLVs: the login works';

    # A health check that connects, sends LOCAL and hangs up disturbs nothing.
    for (1 .. 3) {
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, prelude => pp_v2(local => 1));
        close $w->socket;
    }
    ok $p->is_running, 'LOCAL-only connections that hang up: pgnear still runs';

    my $hdr = v2_from('192.0.2.1', [$TLV_CITY, 'Sydney']);
    ($got, $r) = wire_session(bytewise => $hdr);
    is $got, 'ap-northeast', 'PROXY v2 header sent one byte at a time' or diag explain $r->{error};
    ($got, $r) = wire_session(bytewise => pp_v1($CITY{Mumbai}{ip4}, '127.0.0.1', 1234, $p->port));
    is $got, $CITY{Mumbai}{expect}, 'PROXY v1 header sent one byte at a time' or diag explain $r->{error};
}

# ------------------------------------------------------------------ TLS SNI as a region hint

# PgNearTest::TlsWire (openssl s_client -starttls postgres) with a server name.
{
    package SniWire;
    our @ISA = ('PgNearTest::TlsWire');
    sub connect {
        my ($class, %o) = @_;
        my $self = bless { in => '', out => '', err => '', timeout => $o{timeout} // 10, buf => '' }, $class;
        my @cmd = (PgNearTest::require_tool('openssl'), 's_client', '-connect', "$o{host}:$o{port}",
                   '-starttls', 'postgres', '-quiet', '-nocommands', '-verify_return_error',
                   '-CAfile', $o{ca}, '-verify_hostname', 'localhost', '-servername', $o{servername});
        $self->{h} = IPC::Run::start(\@cmd, '<', \$self->{in}, '>', \$self->{out}, '2>', \$self->{err},
                                     IPC::Run::timeout(60));
        return $self;
    }
}

{
    # (region the session landed in, route line pgnear logged)
    my $sni_session = sub {
        my ($servername, $options) = @_;
        my $off = $p->log_size;
        my ($got, $err);
        eval {
            my $w = SniWire->connect(host => '127.0.0.1', port => $p->port, ca => $ca->cert,
                                     servername => $servername, timeout => 15);
            my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                                params => [defined $options ? (options => $options) : ()]);
            if ($r->{ok}) { $got = $w->query('SHOW cluster_name')->{rows}[0][0] }
            else          { $err = $r->{error}{M} // 'login failed'; $err .= ' / ' . $w->stderr }
            $w->terminate;
            1;
        } or $err = "client died: $@";
        diag "SNI $servername: $err" if defined $err;
        my ($route) = substr($p->log_contents, $off) =~ /(route: region [^\n]*)/;
        return ($got // '', $route // '');
    };
    my ($got, $route) = $sni_session->('eu-west.db.example');
    is $got, 'eu-west', 'TLS SNI eu-west.db.example: the session lands in eu-west';
    like $route, qr/^route: region eu-west(?:, \d+ km away)? \(region: region eu-west named by TLS SNI\)/,
        '  log: region named by TLS SNI';
    ($got, $route) = $sni_session->('ap-northeast.db.example', '-c pgnear.city=Seattle');
    is $got, 'ap-northeast', 'TLS SNI region beats a city hint';
    ($got, $route) = $sni_session->('ap-northeast.db.example', '-c pgnear.region=us-west');
    is $got, 'us-west', 'a region startup hint beats the TLS SNI region';
    ($got, $route) = $sni_session->('pg.db.example', '-c pgnear.city=Seattle');
    is $got, 'us-west', 'TLS SNI that names no region is no hint (the city hint decides)';
    ($got, $route) = $sni_session->('US-West.DB.example');
    is $got, 'us-west', 'TLS SNI is case-insensitive, like DNS';
}

# ------------------------------------------------------------------ pgnear --explain

for my $city ('Tokyo', 'Amsterdam', 'Nairobi') {
    my $arg = $city eq 'Amsterdam' ? 'Amsterdam' : $CITY{$city}{hint};
    my ($rc, $out, $err) = run_cmd([$PGNEAR, '--explain', $p->config_path, "city=$arg"], timeout => 30);
    is $rc, 0, "pgnear --explain city=$arg exits 0" or diag $err;
    my ($region) = $out =~ /^region: (\S+)$/m;
    is $region, $got{$city}, "  --explain says $got{$city}, where the session went";
}
{
    my ($rc, $out) = run_cmd([$PGNEAR, '--explain', $p->config_path, "ip=$CITY{Lagos}{ip4}"], timeout => 30);
    like $out, qr/^region: \Q$CITY{Lagos}{expect}\E$/m, '--explain ip= agrees with the GeoIP sessions';
}

ok $_->is_running, 'pgnear on port ' . $_->port . ' is still running' for $p, $p_nohints, $p_required, $p_off;
for my $px ($p, $p_nohints, $p_required, $p_off) {
    unlike $px->log_contents, qr/ UTC (?:ERROR|FATAL) /, 'no ERROR lines in the log of pgnear on port ' . $px->port;
}
note sprintf 'run time %.1f s', time - $T0;

done_testing;
