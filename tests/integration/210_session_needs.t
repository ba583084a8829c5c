# What a session needs of its server (target_session_attrs), against a real
# primary and two streaming standbys made with pg_basebackup -R, one of
# them replaying a second late (recovery_min_apply_delay): every need from
# callers near each region lands where an independent computation in this
# file says; the [database] and [user] sections; bad values; SHOW ROUTE
# ... NEEDING (nearest: where transactions start and where writes go, as
# --explain), SHOW REGIONS' roles and lag, SHOW CLIENTS; a standby whose
# replay is paused is passed over for reads once over max_standby_lag and
# takes them again only after a few good checks (once each way, no
# flapping); a quiet primary passes nobody over; and a promotion: a session
# that needs read-write while no primary is up waits (failover_wait) and
# lands on the promoted standby, or is refused with 08001 naming the need
# when the wait runs out.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IPC::Run ();
use PgNearTest;

require_tool('psql');
require_tool('pg_basebackup');

# ------------------------------------------------------------------ clusters

my %AT = (
    'us-east'      => [39.04, -77.49],
    'eu-west'      => [53.35, -6.26],
    'ap-southeast' => [1.35, 103.82],
);
my %ROLE = ('us-east' => 'primary', 'eu-west' => 'standby', 'ap-southeast' => 'standby');
my @ORDER = ('us-east', 'eu-west', 'ap-southeast');

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin(["SET password_encryption = 'scram-sha-256'; CREATE ROLE reader LOGIN PASSWORD 'reader-secret'",
                 'CREATE DATABASE reports OWNER app', 'CREATE TABLE marks (n int)'], dbname => 'movr');
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
my $ap = PgNearTest::Cluster->new_standby(primary => $us, name => 'ap-southeast', apply_delay => '1s');
ok $eu->is_in_recovery && $ap->is_in_recovery, 'two streaming standbys of us-east';
my %CLUSTER = ('us-east' => $us, 'eu-west' => $eu, 'ap-southeast' => $ap);

my $auth_dir = PgNearTest::tmpdir(name => 'needs-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist, qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
my $mport = free_port();
my %ADMIN = (auth_file => $userlist, admin_users => 'admin', metrics_addr => "127.0.0.1:$mport");

my $p = PgNearTest::Proxy->new(
    regions  => [map { { name => $_, location => join(', ', @{ $AT{$_} }), hosts => [$CLUSTER{$_}] } } @ORDER],
    settings => { auth => 'passthrough', server_tls => 'disable', health_check_interval => '1s',
                  health_check_timeout => '2s', max_standby_lag => '3s', failover_wait => '10s', %ADMIN },
    extra_ini => "[database reports]\ntarget_session_attrs = standby\n\n"
               . "[user reader]\ntarget_session_attrs = read-only\n");

sub log_since { my ($px, $off) = @_; substr($px->log_contents, $off) }

# Rows of an admin SHOW as hashes by column name.
sub show {
    my ($what) = @_;
    my ($rc, $out, $err) = psql($p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret'), $what,
                                args => ['-P', 'tuples_only=off', '-P', 'footer=off', '-F', '|']);
    die "$what: $err" if $rc != 0;
    my ($head, @rows) = split /\n/, $out;
    my @cols = split /\|/, $head, -1;
    return map { my @v = split /\|/, $_, -1; my %h; @h{@cols} = @v; \%h } @rows;
}

ok wait_until(sub { my @r = show('SHOW REGIONS'); 3 == grep { $_->{role} ne 'unknown' } @r },
              timeout => 20), 'the health checks know every role';
{
    my %role = map { $_->{region} => $_->{role} } show('SHOW REGIONS');
    is_deeply \%role, \%ROLE, 'SHOW REGIONS: us-east is the primary, the others standbys';
}
# The standbys have replayed the setup's writes: on a loaded machine that
# may take them over max_standby_lag, and they are passed over meanwhile.
ok wait_until(sub { !grep { $_->{passed_over} ne 'f' } show('SHOW REGIONS') }, timeout => 30),
  'no standby is passed over for lag before the needs are tried';

# ------------------------------------------------------------------ every need from every place

# Where a session of need from a caller at lat,lon should land, computed here.
my %FITS = (
    'any'            => [qw(primary standby)],
    'read-write'     => [qw(primary)],
    'primary'        => [qw(primary)],
    'prefer-primary' => [qw(primary)],
    'read-only'      => [qw(standby)],
    'standby'        => [qw(standby)],
    'prefer-standby' => [qw(standby)],
);
sub expected {
    my ($need, $lat, $lon) = @_;
    my %ok = map { $_ => 1 } @{ $FITS{$need} };
    my @cands = sort { haversine_km($lat, $lon, @{ $AT{$a} }) <=> haversine_km($lat, $lon, @{ $AT{$b} }) }
                grep { $ok{ $ROLE{$_} } } @ORDER;
    return $cands[0];
}

# Where a session lands: "cluster|in recovery", or the error.
sub lands {
    my (%o) = @_;
    my @opts = map { "-c pgnear.$_=$o{opts}{$_}" } sort keys %{ $o{opts} // {} };
    my ($rc, $out, $err) = psql($p->conninfo(options => join(' ', @opts), %{ $o{ci} // {} }),
        "SELECT current_setting('cluster_name') || '|' || pg_is_in_recovery()", verbose => 1);
    return $rc == 0 ? $out : "error: $err";
}

# The same, asked again while the checks see a region down or a standby passed over for lag (a
# loaded machine slows checks and replay): where it lands with every host up and none passed over,
# or, after 30 s of that, where it landed last.
sub lands_while_healthy {
    my (%o) = @_;
    my ($got, $deadline) = (undef, time + 30);
    while (1) {
        my @r = show('SHOW REGIONS');
        my $healthy = !grep { $_->{up} ne 't' || $_->{passed_over} ne 'f' } @r;
        $got = lands(%o);
        my $still = !grep { $_->{up} ne 't' || $_->{passed_over} ne 'f' } show('SHOW REGIONS');
        return $got if ($healthy && $still) || time > $deadline;
        diag "a region was down or passed over as a session was routed; asked again";
        sleep 0.5;
    }
}

my @CALLERS = (['Washington', 38.90, -77.04], ['London', 51.51, -0.13], ['Singapore', 1.29, 103.85],
               ['Tokyo', 35.68, 139.69], ['Lagos', 6.52, 3.38]);
for my $c (@CALLERS) {
    my ($city, $lat, $lon) = @$c;
    for my $need (sort keys %FITS) {
        my $want = expected($need, $lat, $lon);
        my $rec = $ROLE{$want} eq 'standby' ? 'true' : 'false';
        is lands_while_healthy(opts => { location => "$lat,$lon", target_session_attrs => $need }), "$want|$rec",
          "$city, needing $need: $want";
    }
}
is lands(opts => { location => '51.51,-0.13' }), 'eu-west|true',
  'no need given: target_session_attrs = any, the nearest host whatever its role';

# ------------------------------------------------------------------ sections and bad values

is lands(opts => { location => '38.90,-77.04' }, ci => { dbname => 'reports' }), 'eu-west|true',
  '[database reports] target_session_attrs = standby: a caller by us-east reads from the nearest standby';
is lands(opts => { location => '38.90,-77.04', target_session_attrs => 'primary' }, ci => { dbname => 'reports' }),
  'us-east|false', '... a startup hint overrides the section';
is lands(opts => { location => '38.90,-77.04' }, ci => { user => 'reader', password => 'reader-secret' }),
  'eu-west|true', '[user reader] target_session_attrs = read-only';
is lands(opts => { location => '38.90,-77.04' }, ci => { user => 'reader', password => 'reader-secret', dbname => 'reports' }),
  'eu-west|true', '... and the user section wins over the database section';
# A login's error, as the server's fields: (code, message, hint).
sub login_error {
    my ($px, $options) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $px->port, timeout => 15);
    my $r = eval { $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                               params => { options => $options }) } // { error => { M => $@ } };
    return $r->{ok} ? ('', 'logged in', '') : ($r->{error}{C} // '', $r->{error}{M} // '', $r->{error}{H} // '');
}
{
    my ($code, $msg, $hint) = login_error($p, '-c pgnear.target_session_attrs=writable');
    is $code, '22023', 'an unknown value: 22023';
    like $msg, qr/invalid value for parameter "pgnear\.target_session_attrs": "writable"/, '... naming it';
    like $hint, qr/read-write.*prefer-standby/, '... with the values it may take';
}
{
    my ($rc, $out, $err) = psql($p->conninfo(options => '-c pgnear.target_session_attrs=read-write'),
                                'CREATE TABLE written_through_pgnear (x int)', verbose => 1);
    is $rc, 0, 'a read-write session writes' or diag $err;
}

# ------------------------------------------------------------------ the admin's view

{
    my @r = show("SHOW ROUTE FOR LOCATION '51.51,-0.13' NEEDING read-write");
    is_deeply [map { $_->{region} } grep { $_->{rank} ne '' } @r], ['us-east'],
      'SHOW ROUTE ... NEEDING read-write from London: us-east only';
    is_deeply [sort map { "$_->{region}: $_->{fit}" } grep { $_->{rank} eq '' } @r],
      ['ap-southeast: passed over: no writable primary', 'eu-west: passed over: no writable primary'],
      '... the standbys are passed over, and why';
    is $r[0]{needing}, 'read-write', '... the needing column';
    my $near = "SHOW ROUTE FOR LOCATION '51.51,-0.13' NEEDING nearest";
    my @n = show($near);
    is_deeply [map { "$_->{rank}. $_->{region} $_->{needing}" } grep { $_->{rank} ne '' } @n],
      ['1. eu-west nearest', '2. us-east nearest', '3. ap-southeast nearest', '1. us-east read-write'],
      'SHOW ROUTE ... NEEDING nearest from London: transactions start on eu-west, writes go to us-east';
    is_deeply [sort map { "$_->{region} $_->{needing}: $_->{fit}" } grep { $_->{rank} eq '' } @n],
      ['ap-southeast read-write: passed over: no writable primary', 'eu-west read-write: passed over: no writable primary'],
      '... the standbys passed over for writes, and why';
    my (undef, undef, $notice) = psql($p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret'), $near);
    like $notice, qr/NOTICE:\s+nearest: transactions start in eu-west; writes go to us-east/, '... and a NOTICE sums it up';
    my @any = show("SHOW ROUTE FOR LOCATION '51.51,-0.13'");
    is_deeply [map { $_->{region} } @any], ['eu-west', 'us-east', 'ap-southeast'],
      'without NEEDING: every region, nearest first';
    my ($rc, $out, $err) = psql($p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret'),
                                "SHOW ROUTE FOR LOCATION '51.51,-0.13' NEEDING writable", verbose => 1);
    is sqlstate($err), '22023', 'SHOW ROUTE ... NEEDING an unknown value: 22023';
}
{
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { options => '-c pgnear.target_session_attrs=prefer-standby' });
    ok $r->{ok}, 'a session that prefers a standby stays connected';
    my ($row) = grep { $_->{user} eq 'app' && $_->{state} ne 'login' } show('SHOW CLIENTS');
    is $row->{needing}, 'prefer-standby', 'SHOW CLIENTS: what it needs';
    $w->terminate;
}
{
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--explain', $p->config_path,
                                    'location=51.51,-0.13', 'need=read-write']);
    is $rc, 0, '--explain need=read-write runs' or diag $err;
    like $out, qr/^needing: read-write$/m, '... and says what the session needs';
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--explain', $p->config_path, 'location=51.51,-0.13', 'need=nearest']);
    like $out, qr/^region: eu-west\n(?:  \d\. .*\n){3}writes: eu-west \(needing read-write\)\n(?:  \d\. .*\n){3}/m,
      '--explain need=nearest: the regions for reads, then those for writes' or diag $out, $err;
    like $out, qr/^note: which region's primary takes nearest's writes is known from health checks only/m,
      '... which health checks tell apart' or diag $out;
}

{
    my $dir = PgNearTest::tmpdir(name => 'needs-check');
    my $base = "[region us-east]\nhosts = 127.0.0.1:5432\nlocation = 39.04, -77.49\n";
    write_file("$dir/a.ini", "[pgnear]\ntarget_session_attrs = read-write\nhealth_check_interval = 0\n$base");
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', "$dir/a.ini"]);
    is $rc, 0, '--check: a read-write default loads';
    like $err, qr/WARNING: target_session_attrs asks for roles, but health_check_interval = 0/,
      '... with a warning that no role is learned without health checks';
    like $err, qr/WARNING: target_session_attrs = read-write for every session that names no need/,
      '... and one that such sessions wait, then fail, when no host is a primary';
    write_file("$dir/b.ini", "$base\n[database analytics]\ntarget_session_attrs = writable\n");
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', "$dir/b.ini"]);
    is $rc, 1, '--check: an unknown value in a [database] section fails';
    like $err, qr/b\.ini:\d+: invalid target_session_attrs "writable" \(one of: any, read-write/,
      '... at its line, with the values it may take';
    write_file("$dir/c.ini", "$base\n[user reporter]\npool_size = 3\n");
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', "$dir/c.ini"]);
    like $err, qr/\[user reporter\]: a user section takes target_session_attrs, movable, pool_mode, max_user_connections, max_user_client_connections, max_db_client_connections, query_timeout, transaction_timeout, idle_transaction_timeout and client_idle_timeout, nothing else/,
      '--check: a [user] section with another setting fails';
}

# ------------------------------------------------------------------ lag

# The writes above replayed everywhere first: on a loaded machine a standby
# may take seconds to, and is passed over meanwhile, as it should be.
my %passed;
wait_until(sub {
    %passed = map { $_->{region} => $_->{passed_over} } show('SHOW REGIONS');
    !grep { $_ ne 'f' } values %passed;
}, timeout => 30);
is_deeply \%passed, { 'us-east' => 'f', 'eu-west' => 'f', 'ap-southeast' => 'f' },
  'nobody is passed over for lag at first';
my $off = $p->log_size;
$eu->pause_replay;
$us->psql_admin('INSERT INTO marks VALUES (1)', dbname => 'movr');
my $t_paused = time;
ok wait_until(sub { (grep { $_->{region} eq 'eu-west' } show('SHOW REGIONS'))[0]{passed_over} eq 't' },
              timeout => 15), 'eu-west paused: passed over once its lag passes max_standby_lag (3 s)';
cmp_ok time - $t_paused, '>=', 2.5, '... not before';
is lands(opts => { location => '51.51,-0.13', target_session_attrs => 'read-only' }), 'ap-southeast|true',
  'a London reader goes to the next standby';
is lands(opts => { location => '51.51,-0.13', target_session_attrs => 'prefer-standby' }), 'ap-southeast|true',
  '... and so does one who prefers a standby';
is lands(opts => { location => '51.51,-0.13' }), 'eu-west|true',
  '... a session that needs nothing in particular still goes to eu-west';
{
    my ($r) = grep { $_->{region} eq 'eu-west' } show('SHOW REGIONS');
    cmp_ok $r->{lag_s}, '>=', 3, 'SHOW REGIONS: its lag in seconds';
    cmp_ok $r->{lag_bytes}, '>', 0, '... and in bytes';
    my ($rc, $m) = run_cmd([require_tool('curl'), '-s', "http://127.0.0.1:$mport/metrics"]);
    like $m, qr/^pgnear_host_passed_over_for_lag\{region="eu-west",host="[^"]+"\} 1$/m,
      '/metrics: eu-west is passed over';
    like $m, qr/^pgnear_host_standby\{region="us-east",host="[^"]+"\} 0$/m, '/metrics: us-east is a primary';
    like $m, qr/^pgnear_host_replay_lag_seconds\{region="eu-west",host="[^"]+"\} [3-9]\.\d+$/m,
      '/metrics: its lag in seconds';
}
$eu->resume_replay;
my $t_resumed = time;
ok wait_until(sub { (grep { $_->{region} eq 'eu-west' } show('SHOW REGIONS'))[0]{passed_over} eq 'f' },
              timeout => 15), 'replay resumed: eu-west takes reads again';
cmp_ok time - $t_resumed, '>=', 0.4, '... after several good checks, not the first';
is lands(opts => { location => '51.51,-0.13', target_session_attrs => 'read-only' }), 'eu-west|true',
  'a London reader is back on eu-west';
sleep 2;
my $lagline = () = log_since($p, $off) =~ /standby 127\.0\.0\.1:\d+ of region eu-west is .*passed over for reads/g;
my $backline = () = log_since($p, $off) =~ /standby 127\.0\.0\.1:\d+ of region eu-west is .*reads again/g;
is "$lagline/$backline", '1/1', 'the log says so once each way: no flapping';

# A quiet primary: nothing written for a while passes no standby over.
sleep 4;
%passed = map { $_->{region} => $_->{passed_over} } show('SHOW REGIONS');
is_deeply \%passed, { 'us-east' => 'f', 'eu-west' => 'f', 'ap-southeast' => 'f' },
  'a quiet primary: nobody is passed over';
unlike log_since($p, $off) =~ s/.*reads again//sr, qr/passed over for reads/, '... nor was since';

# ------------------------------------------------------------------ promotion

my $q = PgNearTest::Proxy->new(
    regions  => [map { { name => $_, location => join(', ', @{ $AT{$_} }), hosts => [$CLUSTER{$_}] } } @ORDER],
    settings => { auth => 'passthrough', server_tls => 'disable', health_check_interval => '1s',
                  health_check_timeout => '2s', failover_wait => '500ms', %ADMIN, metrics_addr => '' });
ok wait_until(sub { my @m = $q->log_contents =~ /region \S+ is up: it is a standby/g; @m == 2 }, timeout => 20),
  'a second pgnear, failover_wait = 500ms, knows the roles';
$off = $p->log_size;
my $t_stop = time;
$us->stop;
ok $p->wait_for_log(qr/host 127\.0\.0\.1:\d+ of region us-east is down/, offset => $off),
  'the primary stops: its health check fails';
{
    my $t = time;
    my ($code, $msg) = login_error($q, '-c pgnear.target_session_attrs=read-write');
    my $waited = time - $t;
    is $code, '08001', 'no primary anywhere: a session that needs read-write gets 08001';
    like $msg, qr/no server that is read-write is available/, '... naming what it needs';
    cmp_ok $waited, '>=', 0.45, '... after waiting failover_wait (500 ms)';
    cmp_ok $waited, '<', 5, '... and not much longer';
}
# A writer that arrives while there is no primary waits for the promotion.
my ($wout, $werr) = ('', '');
my $writer = IPC::Run::start(
    [require_tool('psql'), '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c',
     "INSERT INTO marks VALUES (2) RETURNING current_setting('cluster_name')",
     '-d', $p->conninfo(options => '-c pgnear.target_session_attrs=read-write')],
    '<', \undef, '>', \$wout, '2>', \$werr, IPC::Run::timeout(30));
sleep 0.5;
$eu->promote;
$writer->finish;
my $t_written = time;
is +($writer->results)[0], 0, 'a writer that came during the switchover waited, then wrote' or diag $werr;
like $wout, qr/^eu-west$/m, '... on the promoted standby';
note sprintf 'switchover: %.2f s from the primary stop to the first write', $t_written - $t_stop;
cmp_ok $t_written - $t_stop, '<', 10, 'the first write after the stop came within failover_wait';
ok $p->wait_for_log(qr/host 127\.0\.0\.1:\d+ of region eu-west is up: it is a primary now/, offset => $off),
  'the log says eu-west is a primary now';
is lands(opts => { location => '1.29,103.85', target_session_attrs => 'read-write' }), 'eu-west|false',
  'a Singapore writer now goes to eu-west';
ok $p->is_running && $q->is_running, 'both pgnear processes run';

done_testing;
