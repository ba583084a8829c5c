# Every login answered, whatever its route waits for: the sources of a
# user's secret (auth_file, auth_query, both, passthrough) crossed with what
# the route does (settles at once, waits for a standby to replay
# pgnear.min_lsn and gets it, waits in vain, finds nothing that fits, sees
# its region disabled while it waits, waits for a standby to come back)
# and with what the client does (the right password, a wrong one, hangs up
# as soon as its startup packet is out, once its password is proved while
# the route waits, or at AuthenticationOk).  Each login ends in
# a session or an ErrorResponse, and pgnear stays up: under auth = scram
# with auth_query, a session whose route had not settled used to crash the
# whole process while its user's secret was looked up.
#
# A primary (us-east) and a streaming standby (eu-west); four pgnear in
# front of them, one per source of secrets, two of them with a WebSocket
# listener whose logins go through the same rounds; the logins of each
# round run at once, one process each.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use PgNearTest;
use PgNearWs;

$SIG{PIPE} = 'IGNORE';
require_tool('psql');
require_tool('pg_basebackup');

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin("SET password_encryption = 'scram-sha-256'; CREATE ROLE carol LOGIN PASSWORD 'carol-pw'");
$us->psql_admin('CREATE TABLE marks (id int)', dbname => 'movr');
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');

my $dir = PgNearTest::tmpdir(name => 'login-waits');
write_file("$dir/users.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
                             . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});
write_file("$dir/admins.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
my $AUTH_QUERY = 'SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1';

my %common = (server_tls => 'disable', health_check_interval => '1s', health_check_timeout => '5s',
              failover_wait => '1500ms', min_lsn_wait => '6s', admin_users => 'admin',  # 6s: a login waits through 40 forks and a 1 s pause
              auth_failure_threshold => 0, client_login_timeout => '20s');
my %source = (
    auth_file   => { auth => 'scram', auth_file => "$dir/users.txt" },
    auth_query  => { auth => 'scram', auth_file => "$dir/admins.txt", auth_query => $AUTH_QUERY },
    both        => { auth => 'scram', auth_file => "$dir/users.txt", auth_query => $AUTH_QUERY },
    passthrough => { auth => 'passthrough', auth_file => "$dir/admins.txt" },
);
my @regions = ({ name => 'us-east', hosts => [$us] }, { name => 'eu-west', hosts => [$eu] });
# auth_query and passthrough take WebSocket logins too (SCRAM inside, as over TCP).
my %ws_port = map { $_ => PgNearTest::free_port() } qw(auth_query passthrough);
my %proxy = map {
    $_ => PgNearTest::Proxy->new(regions => \@regions, settings => {
        %common, %{ $source{$_} },
        ($ws_port{$_} ? (websocket_port => $ws_port{$_}, websocket_auth => 'scram') : ()) })
} sort keys %source;
for my $name (sort keys %proxy) {
    ok wait_until(sub { $proxy{$name}->log_contents =~ /region eu-west is up: it is a standby/ }, timeout => 20),
      "$name: the health checks know eu-west is a standby";
}

# Who logs in through each pgnear: under "both", app is in the file and carol only in the database.
my @logins = (['auth_file', 'app'], ['auth_query', 'app'], ['auth_query', 'carol'], ['both', 'app'],
              ['both', 'carol'], ['passthrough', 'app'], ['auth_query', 'carol', 'ws'],
              ['passthrough', 'app', 'ws']);
my %password = (app => 'app-secret', carol => 'carol-pw');

# One login in a child process: "us-east", "eu-west" (where the session landed), "error SQLSTATE",
# "hung up" or "eof".
sub login_once {
    my ($name, $user, $options, $client, $transport) = @_;
    my $out = eval {
        my $w = ($transport // '') eq 'ws'
              ? PgNearWs::Pg->connect(port => $ws_port{$name}, timeout => 30, path => '/v2')
              : PgNearTest::Wire->connect(host => '127.0.0.1', port => $proxy{$name}->port, timeout => 30);
        my $r = $w->startup(user => $user, database => 'movr', params => { options => $options },
                            password => $client eq 'wrong' ? 'not-the-password' : $password{$user},
                            ($client =~ /^hangup_(.*)/ ? (hangup_at => $1) : ()));
        my $res = $r->{hung_up} ? 'hung up'
                : $r->{ok}      ? $w->query("SELECT current_setting('cluster_name')")->{rows}[0][0]
                : $r->{error}   ? "error $r->{error}{C}"
                :                 'eof';
        $w->terminate if $r->{ok};
        $res;
    };
    return $out // "died: $@";
}

# Runs every (source, user) x client for one route at once; returns { "source user client" => result }.
sub round {
    my ($options, $clients, $during) = @_;
    return rounds([$options], $clients, $during)->[0];
}

# The same for several routes at once, all their logins together; returns a result hash per route.
sub rounds {
    my ($routes, $clients, $during) = @_;
    my (%pid, @result);
    pipe(my $rd, my $wr) or die "pipe: $!";
    for my $i (0 .. $#$routes) {
        for my $l (@logins) {
            for my $c (@$clients) {
                my $key = join(' ', grep { defined } $l->[0], $l->[1], $l->[2], $c);
                my $pid = fork // die "fork: $!";
                if ($pid == 0) {
                    close $rd;
                    my $res = login_once($l->[0], $l->[1], $routes->[$i], $c, $l->[2]);
                    $res =~ s/\n/ /g;
                    syswrite $wr, "$i\t$key\t$res\n";
                    POSIX::_exit(0);
                }
                $pid{$pid} = "$i $key";
            }
        }
    }
    close $wr;
    $during->() if $during;
    my $deadline = time + 60 * @$routes;
    while (%pid && time < $deadline) {
        my $pid = waitpid(-1, WNOHANG);
        if ($pid > 0) { delete $pid{$pid}; next }
        sleep 0.05;
    }
    kill 'KILL', keys %pid;
    waitpid($_, 0) for keys %pid;
    while (my $line = <$rd>) {
        chomp $line;
        my ($i, $k, $v) = split /\t/, $line, 3;
        $result[$i]{$k} = $v;
    }
    return [map { $result[$_] // {} } 0 .. $#$routes];
}

# What each client gets, by source: under scram pgnear checks the password before the route
# waits; under passthrough the server does, so a wrong password is found only where a server is.
sub expect {
    my ($source, $client, $served) = @_;
    # pgnear proves a password before the route waits, and sends AuthenticationOk after it.
    return 'hung up' if $client eq 'hangup_sent';
    return $source eq 'passthrough' && $served =~ /^error/ ? $served : 'hung up' if $client eq 'hangup_sasl_final';
    return $served =~ /^error/ ? $served : 'hung up' if $client eq 'hangup_auth_ok';
    return $served if $client eq 'right';
    return 'error 28P01' if $source ne 'passthrough' || $served !~ /^error/;
    return $served;
}

my $tests_before = Test::More->builder->current_test;
sub check_round {
    my ($what, $served, $results, $clients) = @_;
    for my $l (@logins) {
        for my $c (@$clients) {
            my $key = join(' ', grep { defined } $l->[0], $l->[1], $l->[2], $c);
            my $want = expect($l->[0], $c, $served);
            is $results->{$key} // 'no answer', $want, "$what: $key";
        }
    }
}

sub all_up {
    my ($what) = @_;
    for my $name (sort keys %proxy) {
        ok $proxy{$name}->is_running, "$what: ${name}'s pgnear is still running";
        is login_once($name, 'app', '', 'right'), 'us-east', "$what: $name still logs a plain session in";
    }
}

my @clients = qw(right wrong hangup_sent hangup_sasl_final hangup_auth_ok);
my $NEVER = '00000001/FF/0';

# -------------------------------------------------------------- routes that settle or fail alone

my %routes = (
    'at once'                    => ['-c pgnear.target_session_attrs=read-write', 'us-east'],
    'a position never replayed'  => ["-c pgnear.target_session_attrs=standby -c pgnear.min_lsn=$NEVER", 'error 08001'],
    'read-only, never replayed'  => ["-c pgnear.target_session_attrs=read-only -c pgnear.min_lsn=$NEVER", 'error 08001'],
    'prefer-standby, never'      => ["-c pgnear.target_session_attrs=prefer-standby -c pgnear.min_lsn=$NEVER", 'us-east'],
    'nothing fits (timeline 9)'  => ['-c pgnear.target_session_attrs=standby -c pgnear.min_lsn=00000009/0/1', 'error 08001'],
);
# The routes that wait min_lsn_wait (6 s) in vain run together, the others after them; each
# route's logins are checked as its own round.
my %results;
my @waiting = grep { $routes{$_}[0] =~ /min_lsn=\Q$NEVER\E/ } sort keys %routes;
@results{@waiting} = @{ rounds([map { $routes{$_}[0] } @waiting], \@clients) };
$results{$_} //= round($routes{$_}[0], \@clients) for sort keys %routes;
for my $what (sort keys %routes) {
    check_round($what, $routes{$what}[1], $results{$what}, \@clients);
}
all_up('after the routes that settle alone');

# What a fenced read that no standby could serve is told: the position is missing, not the role.
{
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $proxy{auth_query}->port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { options => "-c pgnear.target_session_attrs=read-only -c pgnear.min_lsn=$NEVER" });
    is $r->{error}{C}, '08001', 'a read-only session with a position no standby has: 08001';
    is $r->{error}{M}, "no read-only server has replayed pgnear.min_lsn $NEVER yet", '... saying the position is missing';
    like $r->{error}{D}, qr/eu-west: no host known to have replayed pgnear\.min_lsn/, '... region by region';
    like $r->{error}{H}, qr/^Retry; or connect with pgnear\.target_session_attrs=prefer-standby.*min_lsn_wait/,
      '... and what to do';
    $w->hangup;
}

# -------------------------------------------------------------- a position replayed while the login waits

{
    $eu->pause_replay;
    $us->psql_admin('INSERT INTO marks VALUES (1)', dbname => 'movr');
    my $lsn = $us->psql_admin('SELECT pg_current_wal_lsn()');
    my $options = "-c pgnear.target_session_attrs=standby -c pgnear.min_lsn=00000001/$lsn";
    my $results = round($options, \@clients, sub { sleep 1; $eu->resume_replay });
    check_round('a position replayed while waiting', 'eu-west', $results, \@clients);
}
all_up('after the replay wait');

# -------------------------------------------------------------- the region disabled while the login waits

{
    my $admin = $proxy{auth_query}->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');
    my $disable = sub {
        sleep 0.7;
        for my $name (sort keys %proxy) {
            psql($proxy{$name}->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret'),
                 'DISABLE "eu-west"');
        }
    };
    my $results = round("-c pgnear.target_session_attrs=standby -c pgnear.min_lsn=$NEVER", \@clients, $disable);
    check_round('eu-west disabled while waiting', 'error 08001', $results, \@clients);
    $results = round('-c pgnear.target_session_attrs=standby', \@clients);
    check_round('eu-west disabled, a standby asked for', 'error 08001', $results, \@clients);
    for my $name (sort keys %proxy) {
        psql($proxy{$name}->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret'),
             'ENABLE "eu-west"');
    }
}
all_up('after DISABLE and ENABLE');

# -------------------------------------------------------------- a standby that comes back while the login waits

{
    $eu->stop;
    for my $name (sort keys %proxy) {
        ok wait_until(sub { $proxy{$name}->log_contents =~ /host \S+ of region eu-west is down|region eu-west is down/ },
                      timeout => 20), "$name: eu-west's standby is seen down";
    }
    $proxy{$_}->update_config(settings => { failover_wait => '20s' }) for keys %proxy;
    $proxy{$_}->signal('HUP') for keys %proxy;
    sleep 0.5;
    my $results = round('-c pgnear.target_session_attrs=standby', \@clients, sub { sleep 1; $eu->start });
    check_round('a standby back while waiting', 'eu-west', $results, \@clients);
}
all_up('after the standby came back');

# A failed login is counted once, whatever refused it, and the classes add up to the total
# (hung-up clients are no failures; the admin logins of this test are counted by class too).
for my $name (sort keys %proxy) {
    my $admin = $proxy{$name}->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');
    my %st = map { my @f = split /\|/; ($f[0] => $f[1]) } split /\n/, psql($admin, 'SHOW STATS');
    my $classes = 0;
    $classes += $st{$_} for grep { /^login_errors_/ } keys %st;
    cmp_ok $st{login_failures}, '>', 0, "$name: SHOW STATS counts failed logins ($st{login_failures})";
    is $classes, $st{login_failures}, "$name: ... and login_errors by class add up to login_failures";
    cmp_ok $st{login_errors_28}, '>', 0, "$name: ... the wrong passwords among them, class 28" if $name ne 'passthrough';
}

my $checks = Test::More->builder->current_test - $tests_before;
note "$checks checks of logins whose route waits";
unlike join('', map { $proxy{$_}->log_contents } sort keys %proxy), qr/runtime error|AddressSanitizer|SIGSEGV/,
  'no sanitizer report in any pgnear log';

done_testing;
