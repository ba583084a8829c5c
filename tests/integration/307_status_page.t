# The status page on metrics_addr, in a real browser: Debian's Chromium,
# headless, driven over WebDriver (chromedriver) from Perl.  GET /status is
# the page in proxy/admin/status_page.html, with a policy that lets nothing
# in from elsewhere; /status.json carries no secret; the page shows every
# region placed on the map with its state and hosts; a client's hostile
# city is shown as text (no element made, no script run); a PAUSE shows
# within one refresh, and a region whose only host stopped shows as down
# within a health check and a refresh.  A screenshot is kept in the build
# directory: tests/artifacts/status.png.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use File::Basename qw(dirname);
use File::Path qw(make_path);
use HTTP::Tiny;
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
my $chromium = require_tool('chromium');
my $chromedriver = require_tool('chromedriver');

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $eu = PgNearTest::Cluster->new(name => 'eu-west');
my $mport = free_port();
my $auth_dir = PgNearTest::tmpdir(name => 'status-auth');
write_file("$auth_dir/userlist.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
# A city whose name is markup meant to run: a place is shown as the city table
# writes it, once the client's hint matched it.
my $hostile = '<img src=x onerror=window.pw=1>';
write_file("$auth_dir/cities.csv", "name,country,lat,lon,population,admin1,alternates,prefer\n$hostile,US,40.71,-74.01,1000,,,\n");
my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
    settings => { auth => 'passthrough', server_tls => 'disable', admin_users => 'admin',
                  auth_file => "$auth_dir/userlist.txt", metrics_addr => "127.0.0.1:$mport",
                  health_check_interval => '1s', health_check_timeout => '2s',
                  cities_file => "$auth_dir/cities.csv" },
    extra_ini => "\n[cities]\nboston = us-east\ndublin = eu-west\n");
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');
my $json = JSON::PP->new;

# ------------------------------------------------------------------ the page and its JSON

my $http = HTTP::Tiny->new(timeout => 10);
my $page = $http->get("http://127.0.0.1:$mport/status");
my $body = $page->{content};
is $page->{status}, 200, 'GET /status on metrics_addr: 200';
my $source = slurp_file("$FindBin::RealBin/../../proxy/admin/status_page.html");
(my $land = slurp_file("$FindBin::RealBin/../../conf/world-land.txt")) =~ s/\n\z//;
$source =~ s/\@WORLD_LAND\@/$land/;
ok defined $body && $body eq $source,
    'the page served is proxy/admin/status_page.html with conf/world-land.txt (status_html.c is made from them)';
unlike $body // '', qr{\b(?:src|href)\s*=\s*["']?(?:https?:)?//}i, 'the page loads nothing from elsewhere';
like $page->{headers}{'content-security-policy'} // '', qr/default-src 'none'/, 'served with a policy that lets nothing in from elsewhere';
is $http->request('POST', "http://127.0.0.1:$mport/status.json")->{status}, 405, 'POST /status.json: 405';

# Callers: two from Boston, and one from the hostile city.
my @wires;
for my $city ('Boston', 'Boston', $hostile) {
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { 'pgnear.city' => $city });
    ok $r->{ok}, "a session from city '$city'" or diag explain $r;
    push @wires, $w;
}

my $snap;
wait_until(sub {
    my ($s, $b) = http_get($mport, '/status.json');
    $snap = eval { $json->decode($b) } if ($s // 0) == 200;
    $snap && 2 == grep { $_->{role} eq 'primary' && $_->{up} } map { @{ $_->{hosts} } } @{ $snap->{regions} };
}, timeout => 20);
ok $snap, '/status.json parses';
is_deeply [sort map { $_->{name} } @{ $snap->{regions} }], ['eu-west', 'us-east'], 'every region, once';
my ($usr) = grep { $_->{name} eq 'us-east' } @{ $snap->{regions} };
is_deeply [$usr->{lat}, $usr->{lon}], [39.04, -77.49], 'a region\'s location from the configuration';
is $usr->{hosts}[0]{host}, $us->hostport, '... its host';
is $usr->{hosts}[0]{role}, 'primary', '... its role';
my ($boston) = grep { $_->{place} =~ /^boston$/i } @{ $snap->{callers} };
is $boston->{sessions}, 2, 'callers by place: two from Boston';
my $raw = $http->get("http://127.0.0.1:$mport/status.json")->{content};
unlike $raw, qr/app-secret|admin-secret|password|SCRAM-SHA-256\$/i, 'nothing secret in /status.json';
unlike $raw, qr/[<>]/, 'markup\'s brackets only as \u escapes in /status.json';

# ------------------------------------------------------------------ Chromium

my $dport = free_port();
my $profile = PgNearTest::tmpdir(name => 'status-chromium');
my $driver = IPC::Run::start([$chromedriver, "--port=$dport"], '>', "$profile/driver.out", '2>&1');
END { local $?; $driver->kill_kill(grace => 2) if $driver }
my $wd = "http://127.0.0.1:$dport";
ok wait_until(sub { ($http->get("$wd/status")->{status} // 0) == 200 }, timeout => 30), 'chromedriver answers'
    or BAIL_OUT('no chromedriver: ' . slurp_file("$profile/driver.out"));

# WebDriver's calls wait for the browser: a navigation on a loaded machine takes seconds.
my $wd_http = HTTP::Tiny->new(timeout => 90);
sub wd {
    my ($method, $path, $data) = @_;
    my $res = $wd_http->request($method, "$wd$path",
        defined $data ? { content => $json->encode($data), headers => { 'Content-Type' => 'application/json' } } : {});
    my $v = eval { $json->decode($res->{content}) } // {};
    die "WebDriver $method $path: $res->{status} $res->{content}\n" unless $res->{success};
    return $v->{value};
}
my $session = $wd_http->request('POST', "$wd/session", {
    headers => { 'Content-Type' => 'application/json' },
    content => $json->encode({ capabilities => { alwaysMatch => { 'goog:chromeOptions' => {
        binary => $chromium,
        args => ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                 '--window-size=1280,1200', "--user-data-dir=$profile/profile"] } } } }) });
my $sid = eval { $json->decode($session->{content})->{value}{sessionId} };
ok $sid, 'a headless Chromium session' or BAIL_OUT("chromedriver: $session->{status} $session->{content}");
END { local $?; $http->request('DELETE', "$wd/session/$sid") if $sid && $http }
sub js { wd('POST', "/session/$sid/execute/sync", { script => $_[0], args => [] }) }
sub refreshes { js('return Number(document.body.dataset.refreshes)') }
sub regions_shown {
    return { map { @$_ } @{ js(q{return [...document.querySelectorAll('section[data-region]')]
                                            .map(s => [s.dataset.region, s.dataset.state]);}) } };
}

wd('POST', "/session/$sid/url", { url => "http://127.0.0.1:$mport/status" });
ok wait_until(sub { refreshes() >= 1 }, timeout => 20), 'the page drew a snapshot';
is js('return document.title'), 'pgnear status', 'the title';
is_deeply regions_shown(), { 'us-east' => 'ok', 'eu-west' => 'ok' }, 'the DOM shows every region, each ok';
is_deeply js(q{return [...document.querySelectorAll('#map circle')].map(c => [c.dataset.region, +c.getAttribute('cx'), +c.getAttribute('cy')]).sort();}),
    [['eu-west', -6.26, -53.35], ['us-east', -77.49, -39.04]], 'each placed on the map by its location';
is js(q{return document.querySelector('#map path.land').getAttribute('d').split('M').length - 1;}),
    scalar(() = $land =~ /M/g), 'the continents\' outline drawn, every ring of conf/world-land.txt';
my $hosts = js(q{return [...document.querySelectorAll('tr[data-host]')].map(r => [r.dataset.host, r.dataset.role, r.dataset.up, r.dataset.fenced]);});
is_deeply [sort { $a->[0] cmp $b->[0] } @$hosts],
    [sort { $a->[0] cmp $b->[0] } [$eu->hostport, 'primary', 'true', 'false'], [$us->hostport, 'primary', 'true', 'false']],
    'each host with its role, up, not fenced';
my $text = js('return document.body.innerText');
like $text, qr/host\s+role\s+state\s+rtt\s+lag\s+sessions/, 'the host table: role, state, rtt, lag, sessions';
like $text, qr/forwarded writes/, 'forwarded writes shown';
like $text, qr/pins/, 'pins shown';
ok((grep { $_ eq $hostile } @{ js(q{return [...document.querySelectorAll('#callers tr[data-place] td:first-child')].map(td => td.textContent);}) }),
   'the hostile city is shown as its text');
is js('return typeof window.pw'), 'undefined', '... and its handler never ran';
is js('return document.querySelectorAll("img").length'), 0, '... nor made an element';

# A PAUSE shows within one refresh: the one that began after PAUSE returned.
my ($rc, $out, $err) = psql($admin_ci, 'PAUSE eu-west', verbose => 1);
is $rc, 0, 'PAUSE eu-west' or diag $err;
my $r0 = refreshes();
my $t0 = time;
ok wait_until(sub { regions_shown()->{'eu-west'} eq 'paused' }, timeout => 10), 'the page shows eu-west paused';
my $after = refreshes() - $r0;
ok $after <= 2, "... within one refresh ($after refreshes ended since, one may have been under way)";
note sprintf 'PAUSE shown after %.2f s', time - $t0;
is regions_shown()->{'us-east'}, 'ok', '... us-east still ok';
($rc, $out, $err) = psql($admin_ci, 'RESUME eu-west', verbose => 1);
is $rc, 0, 'RESUME eu-west' or diag $err;
ok wait_until(sub { regions_shown()->{'eu-west'} eq 'ok' }, timeout => 10), '... and ok again after RESUME';

# eu-west's only host stops: down within a health check (1 s) and a refresh (2 s).
$eu->stop;
$t0 = time;
ok wait_until(sub { regions_shown()->{'eu-west'} eq 'down' }, timeout => 15), 'a stopped host\'s region shows as down';
my $took = time - $t0;
ok $took < 1 + 2 + 3, sprintf('... within a health check and a refresh (%.1f s)', $took);
is js(sprintf(q{return document.querySelector('tr[data-host="%s"]').dataset.up}, $eu->hostport)), 'false', '... its host not up';

# The screenshot, kept in the build directory.
my $dir = dirname($ENV{PGNEAR}) . '/tests/artifacts';
make_path($dir);
my $png = decode_base64(wd('GET', "/session/$sid/screenshot"));
write_file("$dir/status.png", $png);
is substr($png, 0, 8), "\x89PNG\r\n\x1a\n", 'a screenshot of the page';
diag "status page screenshot: $dir/status.png";

$_->hangup for @wires;
done_testing;
