# The admin console (database pgnear): who may log in, every SHOW command
# through psql (aligned, \x, csv, \gset) and through DBD::Pg's prepared
# statements (the extended protocol), SHOW ROUTE against --explain,
# DISABLE/ENABLE moving new sessions, KILL, RELOAD moving a city while an
# open session stays usable, bad input answered with errors while the
# console stays up, and raw protocol misuse.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';

my $PGNEAR = $ENV{PGNEAR} // die "PGNEAR is not set\n";
my $us = PgNearTest::Cluster->new(name => 'us-east');
my $uw = PgNearTest::Cluster->new(name => 'us-west');
my $eu = PgNearTest::Cluster->new(name => 'eu-west');

my $auth_dir = PgNearTest::tmpdir(name => 'admin-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n}
  . qq{"other" "} . make_scram_verifier('other-secret') . qq{"\n});

my $p = PgNearTest::Proxy->new(regions => [$us, $uw, $eu],
    settings => { auth => 'passthrough', server_tls => 'disable', auth_file => $userlist,
                  admin_users => 'admin', health_check_interval => '1500ms',
                  cities_file => ($ENV{PGNEAR_SRCDIR} // "$FindBin::RealBin/../..") . '/conf/cities.csv' },
    extra_ini => "\n[cities]\nboston = us-east\n");

sub admin_ci { $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret', @_) }
sub admin { psql(admin_ci(), @_) }

sub admin_err {
    my ($sql, %o) = @_;
    my ($rc, $out, $err) = psql($o{conninfo} // admin_ci(), $sql, verbose => 1);
    return ($rc, sqlstate($err), $err, $out);
}

# ------------------------------------------------------------------ access

like admin('SHOW VERSION'), qr/^pgnear \d/, 'admin_users logs in with SCRAM over TCP';
# The SQLSTATE of a failed console login, read off the wire.
sub login_error {
    my ($user, $password) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    my $r = $w->startup(user => $user, database => 'pgnear', password => $password);
    return $r->{ok} ? 'ok' : ($r->{error} // {})->{C} // 'none';
}
is login_error('admin', 'wrong'), '28P01', 'a wrong password is refused with 28P01';
is login_error('other', 'other-secret'), '28P01',
    'a user in auth_file but not in admin_users gets 28P01 (no hint of why)';
is login_error('app', 'app-secret'), '28P01', 'an application user cannot reach the console';
like psql($p->conninfo(host => $p->socket_dir, dbname => 'pgnear', user => 'anyone',
                       password => undef), 'SHOW VERSION'),
    qr/^pgnear/, 'the OS user pgnear runs as is trusted over the Unix socket';
is psql($p->conninfo, 'SHOW cluster_name'), 'us-east', 'application sessions still reach servers';
unlike $us->log_contents, qr/database "pgnear"/, 'the admin database never reached a server';

# ------------------------------------------------------------------ SHOW

my $help = admin('SHOW HELP');
for my $c ('SHOW CLIENTS', 'SHOW ROUTE FOR CITY', 'PAUSE [region]', 'DISABLE region', 'KILL client_id',
           'RELOAD', 'SHUTDOWN') {
    like $help, qr/^\Q$c\E/m, "SHOW HELP lists $c";
}
my %config = map { my @f = split /\|/; ($f[0] => [$f[1], $f[2]]) } split /\n/, admin('SHOW CONFIG');
is $config{admin_users}[0], 'admin', 'SHOW CONFIG: admin_users';
is $config{health_check_interval}[0], '1500ms', 'SHOW CONFIG: a duration as it was written';
is $config{workers}[1], 'f', 'SHOW CONFIG: workers needs a restart';
is $config{auth}[1], 't', 'SHOW CONFIG: auth is reloadable';

# A session that stays open, placed by a city hint.
my $open = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
ok $open->startup(user => 'app', database => 'movr', password => 'app-secret',
                  params => { options => '-c pgnear.city=Boston' })->{ok}, 'an application session stays open';
is $open->query('SHOW cluster_name')->{rows}[0][0], 'us-east', '... in us-east';

my @clients = grep { /\|app\|/ } split /\n/, admin('SHOW CLIENTS');
is scalar(@clients), 1, 'SHOW CLIENTS: one application client';
my @c = split /\|/, $clients[0];
my $client_id = $c[0];
like $client_id, qr/^\d+$/, 'SHOW CLIENTS: the id';
is $c[5], 'idle', 'SHOW CLIENTS: idle between queries';
is $c[7], 'us-east', 'SHOW CLIENTS: the region';
is $c[8], $us->hostport, 'SHOW CLIENTS: the server';
is $c[9], 'city', 'SHOW CLIENTS: placed by its city';
like $c[10], qr/^Boston/, 'SHOW CLIENTS: the city';
like $c[14], qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00$/, 'SHOW CLIENTS: connected_at is a timestamptz';

my $backend_pid = $open->query('SELECT pg_backend_pid()')->{rows}[0][0];
sub server_of_client {
    my ($id) = @_;
    my @rows = grep { (split /\|/)[3] eq $id } split /\n/, admin('SHOW SERVERS');
    return @rows == 1 ? [split /\|/, $rows[0], -1] : undef;
}
my $sv = server_of_client($client_id);
ok $sv, 'SHOW SERVERS: the client\'s server connection, one row';
is_deeply [@$sv[0, 1, 2]], ['us-east', $us->hostport, 'active'], 'SHOW SERVERS: region, server, state';
like $sv->[4], qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00$/, 'SHOW SERVERS: connected_at';
cmp_ok $sv->[5], '>', 0, 'SHOW SERVERS: bytes from the server';
cmp_ok $sv->[6], '>', 0, 'SHOW SERVERS: bytes to the server';
is $sv->[9], $backend_pid, 'SHOW SERVERS: pid is the backend\'s (pg_backend_pid)';
is $sv->[10], 'f', 'SHOW SERVERS: not TLS (server_tls = disable)';
is_deeply [@$sv[11, 12, 13]], ['idle', 0, 't'], 'SHOW SERVERS: idle, nothing outstanding, at a safe point';
like $sv->[14], qr/^15\./, 'SHOW SERVERS: the server_version it reported';
is $sv->[15], 1, 'SHOW SERVERS: one client served';
# The transaction status is the server's, the request count the relay's.
$open->query('BEGIN');
is_deeply [@{ server_of_client($client_id) }[11, 12, 13]], ['in transaction', 0, 'f'],
    'SHOW SERVERS: in transaction after BEGIN';
$open->send_query('SELECT pg_sleep(0.6)');
ok wait_until(sub { (server_of_client($client_id) // [])->[12] eq '1' }, timeout => 5),
    'SHOW SERVERS: one request outstanding while the server works on it';
$open->read_result;
$open->query('ROLLBACK');
is_deeply [@{ server_of_client($client_id) }[11, 12, 13]], ['idle', 0, 't'],
    'SHOW SERVERS: idle again after ROLLBACK';

my %regions;
for (split /\n/, admin('SHOW REGIONS')) { my @f = split /\|/; $regions{ $f[0] } = \@f }
is_deeply [sort keys %regions], ['eu-west', 'us-east', 'us-west'], 'SHOW REGIONS: every region';
is $regions{'us-east'}[1], 'enabled', 'SHOW REGIONS: enabled';
is $regions{'us-east'}[12], 1, 'SHOW REGIONS: us-east serves the open session';
is $regions{'eu-west'}[12], 0, 'SHOW REGIONS: eu-west serves none';
ok wait_until(sub { (split /\|/, (grep { /^us-west\|/ } split /\n/, admin('SHOW REGIONS'))[0])[7] eq 't' }, timeout => 10),
    'SHOW REGIONS: health shows up';

# SHOW RTT: the checks on kept connections are the samples; five make an estimate.
sub show_rtt { return { map { my @f = split /\|/, $_, -1; ($f[0] => \@f) } split /\n/, admin('SHOW RTT') } }
like((split /\n/, admin('SHOW RTT'))[0] // '', qr/^(?:us-east|us-west|eu-west)\|127\.0\.0\.1\|\d+\|/,
     'SHOW RTT: region, host, port');
is scalar(grep { ($_->[5] < 5) != ($_->[6] eq 'cold') || ($_->[6] eq 'cold') != ($_->[4] eq '') } values %{ show_rtt() }),
    0, 'SHOW RTT: cold, with no avg_ms, exactly while fewer than five samples came';
ok wait_until(sub { my $r = show_rtt(); 3 == grep { $_->[5] >= 5 } values %$r }, timeout => 30),
    'SHOW RTT: five samples on every host';
my $rtt = show_rtt();
for my $r (sort keys %$rtt) {
    my @f = @{ $rtt->{$r} };
    like "$f[3] $f[4]", qr/^\d+\.\d{3} \d+\.\d{3}$/, "SHOW RTT $r: last_ms and avg_ms in ms";
    cmp_ok $f[4], '<', 50, "SHOW RTT $r: a local server answers in under 50 ms ($f[4])";
    like $f[6], qr/^(?:ok|slow)$/, "SHOW RTT $r: state ok once warm (slow while checks took long: $f[6])";
    # Under localhost round trips no challenger beats the nearest by route_deadband_min.
    is $f[7], $r, "SHOW RTT $r: its callers prefer it";
    like $f[8], qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00$/, "SHOW RTT $r: preferred_since";
    like $f[9], qr/^\d+\.\d{3}$/, "SHOW RTT $r: wire_ms in ms";
    cmp_ok $f[9], '<', $f[4], "SHOW RTT $r: wire_ms, the network's part, below avg_ms";
}

sub show_stats { return { map { my @f = split /\|/; ($f[0] => $f[1]) } split /\n/, admin('SHOW STATS') } }
# Queries and transactions: the open session's answers count while it is open.
my $before = show_stats();
$open->query("SELECT $_") for 1 .. 3;
$open->query($_) for 'BEGIN', 'SELECT 1', 'SELECT 2', 'COMMIT';
my $after = show_stats();
is $after->{queries} - $before->{queries}, 7, 'SHOW STATS: queries, each answered request once';
is $after->{transactions} - $before->{transactions}, 4,
    'SHOW STATS: transactions (three autocommit statements and one BEGIN ... COMMIT)';
my %stats = %{ show_stats() };
cmp_ok $stats{sessions_total}, '>=', 3, 'SHOW STATS: sessions counted';
cmp_ok $stats{routed_by_city}, '>=', 1, 'SHOW STATS: routing decisions by source';
cmp_ok $stats{bytes_client_to_server}, '>', 0, 'SHOW STATS: bytes';
cmp_ok $stats{login_errors_28}, '>=', 3, 'SHOW STATS: the refused admin logins, class 28';

my @pools = map { [split /\|/] } split /\n/, admin('SHOW POOLS');
is scalar(@pools), 1, 'SHOW POOLS: one pool (region, database, user)';
is_deeply $pools[0], ['us-east', 'movr', 'app', 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 'none'],
    'SHOW POOLS: cl_active 1, sv_active 1, nothing waiting or idle, pool_mode none';
my (undef, $out0, $err0) = psql(admin_ci(), 'RECONNECT us-east', verbose => 1);
is $out0, 'RECONNECT', 'RECONNECT us-east';
like $err0, qr/NOTICE:.*pool_mode = none/, '... says there is nothing to replace without pooling';

my %lists = map { my @f = split /\|/; ($f[0] => $f[1]) } split /\n/, admin('SHOW LISTS');
is $lists{clients_active}, 1, 'SHOW LISTS: one active client';
is $lists{clients_quiet}, 0, 'SHOW LISTS: no quiet client (no pooling: nothing to give back)';
is $lists{admin_sessions}, 1, 'SHOW LISTS: this admin session';
is $lists{servers_active}, 1, 'SHOW LISTS: one active server connection';
is $lists{servers_login}, 0, 'SHOW LISTS: no server connection logging in';
is $lists{hosts}, 3, 'SHOW LISTS: hosts';

# psql's own ways of showing results.
like admin(['\x on', 'SHOW VERSION']), qr/^version\|pgnear/m, 'expanded display (\x)';
like admin('SHOW HELP', args => ['--csv']), qr/^"SHOW ROUTE FOR CITY 'x' \| IP[^"]*",/m,
    'csv output (a value with commas and quotes, quoted)';
like admin(undef, stdin => "SHOW VERSION \\gset\n\\echo got :version\n"), qr/^got pgnear/m, '\gset';

{
    # \watch repeats until psql is stopped (psql 15 has no count): two seconds of it.
    my ($wrc, $wout) = PgNearTest::run_cmd([require_tool('psql'), '-X', '-A', '-t', '-d', admin_ci()],
                                           stdin => "SHOW LISTS \\watch 0.2\n", timeout => 2);
    my $n = () = $wout =~ /^workers\|/mg;
    cmp_ok $n, '>=', 3, "\\watch 0.2 repeats the command ($n times in 2 s)";
}

# ------------------------------------------------------------------ SHOW ROUTE

# --explain measures no round trip: every region is cold, which orders the
# nearest as distance does; SHOW ROUTE's measured order is checked below.
is admin("SET route_by = 'distance'"), 'SET', 'SET route_by = distance, to compare with --explain';
for my $case (['CITY', 'Tokyo', 'city=Tokyo'], ['LOCATION', '48.85,2.35', 'location=48.85,2.35'],
              ['REGION', 'us-west', 'region=us-west'], ['CITY', 'boston', 'city=boston']) {
    my ($what, $value, $arg) = @$case;
    my @rows = map { [split /\|/] } split /\n/, admin("SHOW ROUTE FOR $what '$value'");
    my ($rc, $out) = PgNearTest::run_cmd([$PGNEAR, '--explain', $p->config_path, $arg]);
    is $rc, 0, "--explain $arg runs";
    my @explained = $out =~ /^\s+\d+\.\s+(\S+)/mg;
    is_deeply [map { $_->[1] } @rows], \@explained, "SHOW ROUTE FOR $what '$value': the order of --explain";
    my ($reason) = $out =~ /^reason: (.*)$/m;
    $reason =~ s/command line/SHOW ROUTE/g;    # the channel the evidence came by
    is $rows[0][6], $reason, "SHOW ROUTE FOR $what '$value': the reason of --explain";
}
is admin("SET route_by = 'hybrid'"), 'SET', 'SET route_by = hybrid';

# Why the order is what it is (the hosts are warm: SHOW RTT above).  Boston's group is
# us-east's, which prefers itself; the other candidates follow by score (scores
# within route_deadband_min, 5 ms, of each other nearest first), each its
# measured round trip plus 2 ms and 16 ms per 1,000 km of the caller's distance.
{
    my @rows = map { [split /\|/, $_, -1] } split /\n/, admin("SHOW ROUTE FOR CITY 'Boston'");
    is_deeply [map { $_->[9] } @rows], [('hybrid') x 3], 'SHOW ROUTE: route_by on each row';
    is_deeply [map { $_->[12] . $_->[13] } @rows], ['tt', 'tf', 'tf'],
        'SHOW ROUTE: three candidates, the first preferred by its group';
    like $rows[0][14], qr/^named, first; candidate, preferred by callers nearest us-east: score /,
        'SHOW ROUTE: why the first is first';
    cmp_ok $rows[1][11], '<=', $rows[2][11] + 5, 'SHOW ROUTE: the others by score, lowest first (5 ms a tie)';
    for my $r (@rows) {
        cmp_ok abs($r->[11] - ($r->[10] + 2 + 0.016 * $r->[2])), '<', 0.15,
            "SHOW ROUTE $r->[1]: score $r->[11] = measured $r->[10] + the distance's $r->[2] km";
        my ($score, $measured) = $r->[14] =~ /score ([\d.]+) ms = ([\d.]+) ms measured \+ [\d.]+ ms for the caller's distance$/;
        ok defined($measured) && abs($measured - $r->[10]) < 0.051 && abs($score - $r->[11]) < 0.051,
            "SHOW ROUTE $r->[1]: why, with the numbers" or diag $r->[14];
    }
    is admin("SET route_by = 'distance'"), 'SET', 'SET route_by = distance';
    @rows = map { [split /\|/, $_, -1] } split /\n/, admin("SHOW ROUTE FOR CITY 'Tokyo'");
    is_deeply [map { join ',', @$_[9 .. 14] } @rows], [('distance,,,,,by distance (route_by = distance)') x 3],
        'SHOW ROUTE under route_by = distance: nothing scored';
    is admin("SET route_by = 'hybrid'"), 'SET', 'SET route_by = hybrid again';
}
my ($explain_rc, $explain) = PgNearTest::run_cmd([$PGNEAR, '--explain', $p->config_path, 'city=Boston']);
like $explain, qr/^route_by: hybrid \(route_candidates 3, route_candidate_km 1500\)/m, '--explain: route_by';
like $explain, qr/^  1\. us-east +\d+ km  named, first; candidate: score [\d.]+ ms = cold: prior [\d.]+ ms \+ /m,
    '--explain: the first region and why, cold (no health checks there)';

# ------------------------------------------------------------------ DISABLE, ENABLE

my $hint = $p->conninfo(options => '-c pgnear.city=Boston');
is admin('DISABLE "us-east"'), 'DISABLE', 'DISABLE us-east';
is psql($hint, 'SHOW cluster_name'), 'us-west', 'a Boston session now goes to the next nearest';
is $open->query('SELECT 1')->{rows}[0][0], 1, 'the open session in us-east goes on';
like((grep { /^us-east\|/ } split /\n/, admin('SHOW REGIONS'))[0], qr/^us-east\|disabled\|/,
     'SHOW REGIONS: disabled');
is admin('ENABLE us-east'), 'ENABLE', 'ENABLE us-east';
is psql($hint, 'SHOW cluster_name'), 'us-east', 'Boston sessions come back';
my ($rc, $state, $err) = admin_err('DISABLE nowhere');
is $state, '42704', 'DISABLE of an unknown region: 42704';
like $err, qr/us-east/, '... naming the regions there are';

# ------------------------------------------------------------------ RELOAD

$p->update_config(extra_ini => "\n[cities]\nboston = eu-west\n");
is admin('RELOAD'), 'RELOAD', 'RELOAD';
is psql($hint, 'SHOW cluster_name'), 'eu-west', 'after RELOAD Boston goes where the file now says';
is $open->query('SHOW cluster_name')->{rows}[0][0], 'us-east', 'the open session stays usable where it was';
$p->update_config(settings => { workers => 3 });
($rc, my $out, $err) = psql(admin_ci(), 'RELOAD', verbose => 1);
is $rc, 0, 'RELOAD with a restart-only change succeeds';
like $err, qr/NOTICE:.*"workers" changed but takes effect only after a restart/, '... and says what waits for a restart';
$p->update_config(settings => { workers => $ENV{PGNEAR_TEST_WORKERS} || undef });
$p->update_config(extra_ini => "\n[cities]\nboston = no-such-region\n");
($rc, $state, $err) = admin_err('RELOAD');
is $state, 'F0000', 'a broken configuration: RELOAD fails with F0000';
like $err, qr/no-such-region/, '... saying why';
is psql($hint, 'SHOW cluster_name'), 'eu-west', '... and the running configuration stays';
$p->update_config(extra_ini => "\n[cities]\nboston = us-east\n");
admin('RELOAD');

# ------------------------------------------------------------------ SET

sub config_value {
    my ($name) = @_;
    my ($line) = grep { /^\Q$name\E\|/ } split /\n/, admin('SHOW CONFIG');
    return (split /\|/, $line)[1];
}
is admin("SET default_region = 'us-west'"), 'SET', 'SET default_region';
is config_value('default_region'), 'us-west', 'SHOW CONFIG shows the value SET';
is psql($p->conninfo, 'SHOW cluster_name'), 'us-west', 'new sessions without hints follow it';
is admin('SET pause_timeout TO 2s'), 'SET', 'SET pause_timeout TO 2s';
is config_value('default_region'), 'us-west', 'a second SET keeps the first';
($rc, $state, $err) = admin_err("SET pause_timeout = 'forever'");
is $state, '22023', 'SET to a bad value: 22023';
like $err, qr/pause_timeout/, '... naming the setting';
is config_value('pause_timeout'), '2000ms', '... and the value before it stays (2s)';
($rc, $state, $err) = admin_err('SET workers = 4');
is $state, '55P02', 'SET of a setting that needs a restart: 55P02';
like $err, qr/cannot be changed without restarting/, '... saying so';
($rc, $state) = admin_err('SET no_such_setting = 1');
is $state, '42704', 'SET of an unknown setting: 42704';
($rc, $out, $err) = psql(admin_ci(), 'SET extra_float_digits = 3', verbose => 1);
is $rc, 0, 'SET extra_float_digits (as JDBC sends it) is accepted';
like $err, qr/NOTICE:.*session parameter.*changes nothing/, '... saying it changes nothing';
admin('RELOAD');
is config_value('default_region'), 'us-east', 'RELOAD ends what SET changed';
is psql($p->conninfo, 'SHOW cluster_name'), 'us-east', '... for new sessions too';

# ------------------------------------------------------------------ KILL

is admin("KILL $client_id"), 'KILL', 'KILL the open session';
my $r = eval { $open->query('SELECT 1') };
ok !$r || $r->{eof} || ($r->{error} && $r->{error}{C} eq '57P01'), 'the killed session is gone';
($rc, $state) = admin_err('KILL 999999999');
is $state, '42704', 'KILL of no such client: 42704';
($rc, $state) = admin_err('KILL bob');
is $state, '22023', 'KILL of a word: 22023';

# ------------------------------------------------------------------ bad input

($rc, $state, $err) = admin_err('SHOW CLEINTS');
is $state, '42601', 'a misspelt command: 42601';
like $err, qr/HINT:\s+Did you mean "SHOW CLIENTS"\?/, '... with a hint naming the closest';
($rc, $state, $err) = admin_err('SELECT 1');
is $state, '0A000', 'SQL: 0A000';
like $err, qr/does not run SQL/, '... saying the console does not run SQL';
($rc, $state) = admin_err('SHOW STATS; SHOW CLIENTS');
is $state, '0A000', 'two commands in one query: 0A000';
{
    # Through stdin: a 1 MB argument is more than the kernel passes to psql.
    my ($rc1, $out1, $err1) = psql(admin_ci(), undef, args => ['-v', 'VERBOSITY=verbose'],
                                   stdin => 'SHOW ' . ('x' x (1024 * 1024)) . ";\n");
    is sqlstate($err1), '54000', 'a 1 MB query: 54000';
}
($rc, $state) = admin_err("SHOW ROUTE FOR LOCATION '91,0'");
is $state, '22023', 'a location off the globe: 22023';
($rc, $state, $err) = admin_err('\d');
isnt $rc, 0, 'psql\'s \d gets an error';
{
    my $u = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    $u->startup(user => 'admin', database => 'pgnear', password => 'admin-secret');
    my $r = $u->query("SHOW CITY \xff\xfe");
    is(($r->{error} // {})->{C}, '22021', 'a query that is not UTF-8: 22021');
    is $u->query('SHOW VERSION')->{rows}[0][0] =~ /^pgnear/ ? 1 : 0, 1, '... and the session goes on';
    $u->terminate;
}
like admin('SHOW VERSION'), qr/^pgnear/, 'the console is still up after all that';

# ------------------------------------------------------------------ extended protocol

my $dbh = dbi_connect(admin_ci());
ok $dbh, 'DBD::Pg logs in';
my $sth = $dbh->prepare('SHOW STATS');
ok $sth->execute, 'a prepared SHOW STATS executes';
my $rows = $sth->fetchall_arrayref;
ok((grep { $_->[0] eq 'sessions_total' && $_->[1] >= 3 } @$rows), 'its rows arrive, numbers as numbers');
is_deeply $sth->{NAME}, ['stat', 'value', 'description', 'p50_ms', 'p99_ms'], 'Describe gave the column names';
is $sth->{pg_type}[1], 'int8', '... and types';
ok $sth->execute, 'executing the same prepared statement again';
my $again = $sth->fetchall_arrayref;
is scalar(@$again), scalar(@$rows), '... gives the same rows';
my $bad = $dbh->prepare('SHOW NOTHING');
ok !$bad->execute, 'preparing an unknown command fails';
is $dbh->state, '42601', '... with 42601';
my $ver = $dbh->selectrow_array('SHOW VERSION');
like $ver, qr/^pgnear/, 'the session goes on after an extended-protocol error';
$dbh->disconnect;

# Every command through libpq's prepared statements (PQprepare, PQexecPrepared: named
# statements, Describe, Bind, Execute, Sync).
{
    my $h = dbi_connect(admin_ci(), PrintWarn => 0);
    for my $c ('SHOW HELP', 'SHOW VERSION', 'SHOW CONFIG', 'SHOW REGIONS', 'SHOW RTT', 'SHOW CLIENTS',
               'SHOW SERVERS', 'SHOW POOLS', 'SHOW STATS', 'SHOW LISTS', 'SHOW USERS',
               "SHOW ROUTE FOR CITY 'Boston'", "SHOW ROUTE FOR IP '127.0.0.1'",
               "SHOW ROUTE FOR LOCATION '40,-74'", "SHOW ROUTE FOR REGION 'eu-west'",
               'DISABLE eu-west', 'ENABLE eu-west', 'PAUSE eu-west', 'RESUME eu-west',
               'DRAIN eu-west', 'ENABLE eu-west', "SET pause_timeout = '3s'", 'RECONNECT',
               'RELOAD') {
        my $st = $h->prepare($c);
        my $ok = $st && $st->execute;
        ok $ok, "prepared and executed: $c" or diag $h->errstr;
        $st->fetchall_arrayref if $ok && $st->{NUM_OF_FIELDS};
    }
    $h->disconnect;
}

# Extended-protocol misuse, message by message: each gets its error, then Sync sets things right.
{
    my $m = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    ok $m->startup(user => 'admin', database => 'pgnear', password => 'admin-secret')->{ok},
        'raw login for extended-protocol misuse';
    my $round = sub {
        my (@msgs) = @_;
        $m->send_msg(@$_) for @msgs, ['S', ''];
        my ($err, @types);
        for (1 .. 50) {
            my ($t, $b) = $m->read_msg;
            last unless defined $t;
            push @types, $t;
            $err //= PgNearTest::Wire::parse_fields($b)->{C} if $t eq 'E';
            last if $t eq 'Z';
        }
        return ($err, join '', @types);
    };
    my ($code, $seq) = $round->(['B', "\0nosuch\0\0\0\0\0\0\0"]);
    is $code, '26000', 'Bind to a statement that does not exist: 26000';
    is $seq, 'EZ', '... then ReadyForQuery at Sync';
    ($code, $seq) = $round->(['E', "nosuch\0\0\0\0\0"]);
    is $code, '34000', 'Execute of a portal that does not exist: 34000';
    ($code) = $round->(['P', "s1\0SHOW VERSION\0\0\1\0\0\0\x17"]);
    is $code, '0A000', 'Parse with a parameter type: 0A000 (commands take no parameters)';
    ($code, $seq) = $round->(['P', "s2\0SHOW VERSION\0\0\0"], ['P', "s2\0SHOW VERSION\0\0\0"]);
    is $code, '42P05', 'the same statement name twice: 42P05';
    ($code) = $round->(['P', "\0SHOW VERSION\0\0\0"], ['B', "\0\0\0\0\0\1x\0\0\0\0\0\0"]);
    is $code, '08P01', 'Bind with a parameter value: 08P01';
    ($code) = $round->(['P', "\0SHOW VERSION\0\0\0"], ['B', "\0\0\0\0\0\0\0\1\0\7"]);
    is $code, '22023', 'Bind with a result format code of 7: 22023';
    ($code, $seq) = $round->(['P', "\0SHOW VERSION\0\0\0"], ['B', "\0\0\0\0\0\0\0\0"],
                             ['D', "P\0"], ['E', "\0\0\0\0\0"]);
    is $code, undef, 'then a well-formed round works';
    is $seq, '12TDCZ', '... ParseComplete, BindComplete, RowDescription, DataRow, CommandComplete, ReadyForQuery';
    ($code, $seq) = $round->(['P', "\0SHOW HELP\0\0\0"], ['B', "\0\0\0\0\0\0\0\0"],
                             ['E', "\0\0\0\0\2"], ['E', "\0\0\0\0\2"]);
    is $seq, '12DDsDDsZ', 'Execute with a row limit: PortalSuspended, then more rows';
    $m->terminate;
}

# Raw messages: an unknown frontend message type ends the session with 08P01.
my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
ok $w->startup(user => 'admin', database => 'pgnear', password => 'admin-secret')->{ok}, 'raw login';
$w->send_msg('d', 'copy data where none belongs');
my ($type, $body) = $w->read_msg;
is $type, 'E', 'an unexpected message type gets an error';
like $body, qr/C08P01/, '... 08P01';
like admin('SHOW VERSION'), qr/^pgnear/, 'the console serves others after that';

done_testing;
