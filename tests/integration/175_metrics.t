# Prometheus metrics on metrics_addr, scraped with curl: the exposition
# format, every metric in doc/pgnear.md's table (nearest's transactions by
# ran among them), counters that agree with SHOW STATS, sessions per
# region and the admin's region states, host health, the round-trip
# estimate and preference changes, reloads; only GET
# /metrics is served; scrapes during a pgbench run cost the run nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;

my $curl = require_tool('curl');
my $us = PgNearTest::Cluster->new(name => 'us-east');
my $eu = PgNearTest::Cluster->new(name => 'eu-west');
my $mport = free_port();
my $auth_dir = PgNearTest::tmpdir(name => 'metrics-auth');
write_file("$auth_dir/userlist.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
    settings => { auth => 'passthrough', server_tls => 'disable', admin_users => 'admin',
                  auth_file => "$auth_dir/userlist.txt", metrics_addr => "127.0.0.1:$mport",
                  health_check_interval => '1s', health_check_timeout => '5s' });
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');

sub scrape {
    my ($path, @extra) = @_;
    my ($rc, $out, $err) = run_cmd([$curl, '-s', '-S', '-i', @extra, "http://127.0.0.1:$mport" . ($path // '/metrics')],
                                   timeout => 10);
    return ($rc, $out, $err);
}

# The value of one sample ("name" or "name{labels}").
sub sample {
    my ($text, $series) = @_;
    return $text =~ /^\Q$series\E (\S+)$/m ? $1 : undef;
}

my ($rc, $out, $err) = scrape();
is $rc, 0, 'curl scrapes /metrics';
like $out, qr{^HTTP/1\.1 200}, '200 OK';
like $out, qr{^Content-Type: text/plain; version=0\.0\.4}mi, 'the exposition format\'s content type';
like $out, qr/^# TYPE pgnear_client_connections_total counter$/m, 'counters are typed';
like $out, qr/^# HELP pgnear_client_connections_total \S/m, '... and explained';
my @names = $out =~ /^(pgnear_\w+)/mg;
is scalar(grep { !/^pgnear_[a-z0-9_]+$/ } @names), 0, 'every metric name is lower-case with the pgnear_ prefix';
my @counters = $out =~ /^# TYPE (\S+) counter$/mg;
is scalar(grep { !/_total$/ } @counters), 0, 'every counter ends in _total';
{
    # Every metric served is in the reference's table (doc/pgnear.md, "Metrics").
    open my $fh, '<', "$FindBin::RealBin/../../doc/pgnear.md" or die "doc/pgnear.md: $!";
    my ($table) = do { local $/; <$fh> } =~ /^## Metrics\n(.*?)^## /ms;
    my %documented = map { $_ => 1 } ($table // '') =~ /`(pgnear_\w+)`/g;
    my @families = $out =~ /^# TYPE (\S+) /mg;
    my @undocumented = grep { !$documented{$_} } @families;
    is_deeply \@undocumented, [], 'every metric served is documented in pgnear.md' or diag "@undocumented";
}
is_deeply [map { sample($out, qq{pgnear_nearest_transactions_total{ran="$_"}}) } qw(near forwarded forward_failed)],
    [0, 0, 0], 'pgnear_nearest_transactions_total by ran: near, forwarded, forward_failed';

# Sessions: two to us-east, one to eu-west, left open.
my @open;
for my $city ('Boston', 'Boston', 'Dublin') {
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    ok $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                   params => { options => "-c pgnear.region=" . ($city eq 'Dublin' ? 'eu-west' : 'us-east') })->{ok},
        "a session for $city";
    push @open, $w;
}
ok wait_until(sub { my (undef, $o) = scrape(); ($o =~ /^pgnear_host_up\{region="eu-west".*\} 1$/m) }),
    'pgnear_host_up shows the health checks';
($rc, $out) = scrape();
is sample($out, 'pgnear_region_sessions{region="us-east"}'), 2, 'sessions of us-east';
is sample($out, 'pgnear_region_sessions{region="eu-west"}'), 1, 'sessions of eu-west';
is sample($out, 'pgnear_clients{state="active"}'), 3, 'active clients';
is sample($out, 'pgnear_server_connections{state="active"}'), 3, 'a server connection per active client';
is sample($out, 'pgnear_server_connections{state="login"}'), 0, 'no server connection logging in';
is sample($out, 'pgnear_routing_decisions_total{source="region_hint"}'), 3, 'routing decisions by source';
is sample($out, 'pgnear_region_state{region="us-east",state="enabled"}'), 1, 'region state';
like sample($out, 'pgnear_host_health_check_rtt_seconds{region="us-east",host="' . $us->hostport . '"}'),
    qr/^0\.\d+$/, 'health-check RTT in seconds';
# The estimate routing orders by: once five checks came (1 s apart), then under 50 ms locally.
my $est = 'pgnear_host_rtt_estimate_seconds{region="eu-west",host="' . $eu->hostport . '"}';
ok wait_until(sub { my (undef, $o) = scrape(); defined sample($o, $est) }, timeout => 20),
    'pgnear_host_rtt_estimate_seconds once the host is warm';
($rc, $out) = scrape();
cmp_ok sample($out, $est), '<', 0.05, '... in seconds: a local server\'s round trip';
is_deeply [map { sample($out, qq{pgnear_route_preference_changes_total{region="$_"}}) } 'us-east', 'eu-west'],
    [0, 0], 'pgnear_route_preference_changes_total per region: no change among local servers';

# The same counters as SHOW STATS, read at a quiet moment.
my %stats = map { my @f = split /\|/; ($f[0] => $f[1]) } split /\n/, psql($admin_ci, 'SHOW STATS');
($rc, $out) = scrape();
is sample($out, 'pgnear_client_connections_total'), $stats{sessions_total} + 0,
    'client connections: /metrics agrees with SHOW STATS (the scrape is no client)';
is sample($out, 'pgnear_client_read_bytes_total') >= $stats{bytes_client_to_server}, 1,
    'bytes read from clients: at least what SHOW STATS said a moment before';
is sample($out, 'pgnear_routing_decisions_total{source="region_hint"}'), $stats{routed_by_region_hint},
    'routing decisions: /metrics agrees with SHOW STATS';

psql($admin_ci, 'DISABLE "eu-west"');
($rc, $out) = scrape();
is sample($out, 'pgnear_region_state{region="eu-west",state="disabled"}'), 1, 'DISABLE shows';
my $reloads = sample($out, 'pgnear_reloads_total');
psql($admin_ci, 'RELOAD');
($rc, $out) = scrape();
is sample($out, 'pgnear_reloads_total'), $reloads + 1, 'a RELOAD counts';
is sample($out, 'pgnear_last_reload_success'), 1, '... and succeeded';
is sample($out, 'pgnear_region_state{region="eu-west",state="disabled"}'), 1, 'a reload keeps the admin\'s state';

($rc, $out) = scrape('/other');
like $out, qr{^HTTP/1\.1 404}, 'other paths: 404';
($rc, $out) = scrape('/metrics', '-X', 'POST');
like $out, qr{^HTTP/1\.1 405}, 'POST: 405';

# Scraping while sessions work costs them nothing.
my ($brc, $bout, $berr) = pgbench(['-i', '-s', '1', '-q'], $p->conninfo(dbname => 'movr'), timeout => 60);
is $brc, 0, 'pgbench -i through pgnear' or diag $berr;
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    for (1 .. 100) { scrape(); }
    exit 0;
}
($brc, $bout, $berr) = pgbench(['-n', '-c', '4', '-T', '3', '-S'], $p->conninfo(dbname => 'movr'));
diag $berr if $brc;
waitpid($pid, 0);
is $brc, 0, 'pgbench runs while /metrics is scraped 100 times';
my $r = parse_pgbench($bout);
is $r->{failed} // 0, 0, '... with no failed transaction';
cmp_ok $r->{processed}, '>', 0, '... and transactions done';
$_->terminate for @open;

done_testing;
