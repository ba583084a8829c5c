# Moving live sessions between servers (MOVE CLIENT, MOVE CLIENTS, DRAIN):
# a raw-protocol client that SET settings, SET ROLE, PREPAREd statements in
# SQL and by the extended protocol, and LISTENs, is moved back and forth
# between two regions; after each move it is on the other backend, every
# setting, statement and channel is there, and a notification reaches it;
# a cancel after the moves reaches the new backend, directly and through a
# peer of the fleet.  Unmovable sessions (temporary tables, advisory locks,
# WITH HOLD cursors, pgnear.movable=off, movable = off for a user) are
# named and left alone; a session in a transaction moves at its end, or
# stays when move_timeout passes first; a target that refuses the state
# or the login (a differing SCRAM secret; a pg_hba.conf reject line, whose
# SQLSTATE and words are the reason; SHOW USERS shows the key that does
# not fit), or whose link is cut mid-replay, leaves the session
# unharmed on its old server (a login that fails does so before the
# session is held); an old server that dies mid-move (its state read, the
# replay waiting on the target for a lock the test holds) does not end a
# session the target takes, and ends it as it would have when the target
# fails too; a read-write session never lands
# on a standby, and a standby that has not replayed what the session wrote
# is waited for and refused, or taken once it has; DRAIN, MOVE CLIENTS HOME
# and MOVE CLIENTS FROM REGION under pgbench -M prepared -c 16 lose no
# transaction; SHOW CLIENTS, SHOW STATS and /metrics count the moves.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pgbench);

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $uw = PgNearTest::Cluster->new(name => 'us-west');
# Both regions know app by the same SCRAM secret: pgnear logs in for it with one ClientKey.
my $app_secret = $us->scram_verifier('app');
$uw->psql_admin("ALTER ROLE app PASSWORD '$app_secret'");
$_->psql_admin('CREATE ROLE reader NOLOGIN; GRANT reader TO app') for $us, $uw;

# A standby of us-east in a region of its own, and a region behind a relay that can cut the link.
my $ro = PgNearTest::Cluster->new_standby(primary => $us, name => 'sa-east');
my $relay = PgNearTest::Relay->new(to => $uw->port);
# A distant region: us-west's server again, 150 ms away each way (bench/delay_relay.pl).
my $slow_port = free_port();
my $slow_log = tmpdir(name => 'slow') . '/relay.log';
my $slow_pid = fork // die "fork: $!";
if ($slow_pid == 0) {
    no warnings 'exec';
    exec { $^X } $^X, "$ENV{PGNEAR_SRCDIR}/bench/delay_relay.pl", '--listen', "127.0.0.1:$slow_port",
        '--target', '127.0.0.1:' . $uw->port, '--delay-ms', 150, '--log', $slow_log;
    POSIX::_exit(127);
}
END { kill 'TERM', $slow_pid if $slow_pid }
PgNearTest::wait_until(sub { -e $slow_log && slurp_file($slow_log) =~ /^listening/m }, timeout => 10)
  or BAIL_OUT('the delay relay did not start');

my $dir = tmpdir(name => 'move');
write_file("$dir/users.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
                           . qq{"app" "$app_secret"\n"nomove" "$app_secret"\n});
$_->psql_admin("CREATE ROLE nomove LOGIN PASSWORD '$app_secret'; GRANT ALL ON DATABASE movr TO nomove")
  for $us, $uw;

my $workers = $ENV{PGNEAR_TEST_WORKERS} // 2;
my $metrics_port = free_port();
# A second pgnear, a peer of the fleet: a cancel sent there reaches a moved session's backend too.
my @fleet_port = (free_port(), free_port());
write_file("$dir/peer_secret", unpack('H*', join('', map { chr(int(rand(256))) } 1 .. 32)) . "\n", mode => 0600);
my %FLEET = (peers => "1\@127.0.0.1:$fleet_port[0], 2\@127.0.0.1:$fleet_port[1]",
             peer_secret_file => "$dir/peer_secret");
my $p = PgNearTest::Proxy->new(port => $fleet_port[0], regions => [$us, $uw, $ro,
                                           { name => 'ap-flaky', location => '-33.87, 151.21',
                                             hosts => [$relay->hostport] },
                                           { name => 'eu-slow', location => '53.35, -6.26',
                                             hosts => ["127.0.0.1:$slow_port"] }],
    settings => { auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                  server_tls => 'disable', workers => $workers, move_timeout => '3s',
                  health_check_interval => '1s', health_check_timeout => '3s',
                  min_lsn_wait => '2500ms',
                  metrics_addr => "127.0.0.1:$metrics_port", peer_id => 1, %FLEET },
    extra_ini => "\n[cities]\nboston = us-east\nseattle = us-west\n\n[user nomove]\nmovable = off\n");
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');
my $peer = PgNearTest::Proxy->new(port => $fleet_port[1], regions => [$us, $uw],
    settings => { auth => 'scram', auth_file => "$dir/users.txt", server_tls => 'disable',
                  workers => $workers, peer_id => 2, %FLEET });

sub login {
    my (%o) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
    my $app = "mv-$$-" . int(rand(1e9));
    my $r = $w->startup(user => $o{user} // 'app', database => 'movr', password => 'app-secret',
                        params => [application_name => $app,
                                   options => '-c pgnear.city=' . ($o{city} // 'Boston')
                                              . ($o{options} ? " $o{options}" : '')]);
    die 'login failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n" unless $r->{ok};
    $w->{startup} = $r;
    $w->{app} = $app;
    return $w;
}

sub one { my ($w, $sql) = @_; my $r = $w->query($sql); $r->{error} ? "ERROR: $r->{error}{M}" : $r->{rows}[0][0] }

# The client id pgnear gave the session of backend $pid.
sub client_of {
    my ($w) = @_;
    my ($row) = grep { ($_->{application_name} // '') eq $w->{app} } $p->admin_rows('SHOW CLIENTS', errors => 'row');
    return $row;
}

# Extended protocol: Parse a named statement.
sub parse_named {
    my ($w, $name, $sql, @types) = @_;
    $w->send_msg('P', "$name\0$sql\0" . pack('n', scalar @types) . join('', map { pack('N', $_) } @types));
    $w->send_msg('S', '');
    return $w->read_result;
}

# Extended protocol: Bind + Execute a named statement with text params, then Sync.
sub exec_named {
    my ($w, $name, @params) = @_;
    my $b = "\0$name\0" . pack('n', 0) . pack('n', scalar @params)
          . join('', map { pack('N', length $_) . $_ } @params) . pack('n', 0);
    $w->send_msg('B', $b);
    $w->send_msg('E', "\0" . pack('N', 0));
    $w->send_msg('S', '');
    return $w->read_result;
}

sub move_one {
    my ($id, $to) = @_;
    my @rows = $p->admin_rows("MOVE CLIENT $id TO REGION $to", errors => 'row');
    return $rows[0] // {};
}

# ------------------------------------------------------------------ state carried, back and forth

my $w = login();
my $c = client_of($w);
ok $c && $c->{id}, 'the client is listed' or BAIL_OUT('no client row');
is $c->{region}, 'us-east', 'it starts in us-east';
is $c->{movable}, 'yes', 'SHOW CLIENTS: movable';
my $id = $c->{id};

$w->query(q{SET search_path = public, pg_catalog});
$w->query(q{SET statement_timeout = '42s'});
$w->query(q{SET DateStyle = 'SQL, DMY'});
$w->query(q{SELECT set_config('application_name', 'it''s "quoted"', false)});
$w->query(q{SET ROLE reader});
is $w->query(q{PREPARE sql_stmt(int) AS SELECT $1 + 1})->{error}, undef, 'PREPARE in SQL';
is parse_named($w, 'proto_stmt', 'SELECT $1::text || $2', 25, 25)->{error}, undef, 'Parse of a named statement';
is parse_named($w, 'proto_untyped', 'SELECT $1::int * 2')->{error}, undef, 'Parse without types';
$w->query(q{LISTEN "Chan One"});
$w->query(q{LISTEN two});
my $key_before = $w->{startup}{key};
my $pid_seen = $w->{startup}{pid};

my ($moves, $hold_total) = (0, 0);
my @regions = ('us-west', 'us-east');
for my $round (1 .. 6) {
    my $to = $regions[($round - 1) % 2];
    my $backend_before = one($w, 'SELECT pg_backend_pid()');
    my $row = move_one($id, $to);
    is $row->{result}, 'moved', "round $round: moved to $to" or diag explain $row;
    $moves++ if ($row->{result} // '') eq 'moved';
    $hold_total += $row->{hold_ms} // 0;
    my $port = one($w, 'SELECT inet_server_port()');
    is $port, ($to eq 'us-west' ? $uw : $us)->port, "round $round: now served by the server of $to";
    isnt one($w, 'SELECT pg_backend_pid()'), $backend_before, "round $round: another backend";
    is one($w, 'SHOW statement_timeout'), '42s', "round $round: SET carried";
    is one($w, 'SHOW DateStyle'), 'SQL, DMY', "round $round: DateStyle carried";
    is one($w, 'SHOW search_path'), 'public, pg_catalog', "round $round: search_path carried";
    is one($w, q{SHOW application_name}), q{it's "quoted"},
      "round $round: a setting with quotes carried";
    is one($w, 'SELECT current_user'), 'reader', "round $round: SET ROLE carried";
    is one($w, 'SELECT session_user'), 'app', "round $round: session user unchanged";
    is one($w, 'EXECUTE sql_stmt(41)'), '42', "round $round: SQL PREPARE carried";
    is exec_named($w, 'proto_stmt', 'a', 'b')->{rows}[0][0], 'ab', "round $round: protocol statement carried";
    is exec_named($w, 'proto_untyped', '21')->{rows}[0][0], '42', "round $round: untyped statement carried";
    is one($w, q{SELECT string_agg(c, ',' ORDER BY c) FROM pg_listening_channels() c}), 'Chan One,two',
      "round $round: LISTEN channels carried";
    my $target = $to eq 'us-west' ? $uw : $us;
    $target->psql_admin(qq{NOTIFY "Chan One", 'round $round'}, dbname => 'movr');
    my $r = $w->query('SELECT 1');
    for (1 .. 50) {
        last if @{ $r->{notifications} };
        sleep 0.05;
        $r = $w->query('SELECT 1');
    }
    is_deeply [map { $_->{payload} } @{ $r->{notifications} }], ["round $round"],
      "round $round: a notification on the new server arrives once";
}
my $row = client_of($w);
is $row->{moves}, 6, 'SHOW CLIENTS counts 6 moves';

# ------------------------------------------------------------------ cancel after a move

{
    $w->send_query('SELECT pg_sleep(20)');
    $us->wait_sleeping(one_backend_sleeping($us), timeout => 10);
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $w->{startup}{pid},
                             key => $w->{startup}{key});
    my $r = $w->read_result;
    is $r->{error}{C}, '57014', 'a cancel after six moves reaches the backend the session is on now';
    is one($w, 'SELECT 7'), 7, '... and the session goes on';
    # Once more after a seventh move, the cancel sent to the other pgnear of the fleet.
    is move_one($id, 'us-west')->{result}, 'moved', 'a seventh move';
    $moves++;
    $w->send_query('SELECT pg_sleep(20)');
    $uw->wait_sleeping(one_backend_sleeping($uw), timeout => 10);
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $peer->port, pid => $w->{startup}{pid},
                             key => $w->{startup}{key});
    $r = $w->read_result;
    is $r->{error}{C}, '57014', '... a cancel through a peer of the fleet reaches the new backend';
    is one($w, 'SELECT 8'), 8, '... and the session goes on';
}
$w->terminate;

# ------------------------------------------------------------------ what keeps a session where it is

my %unmovable = (
    'CREATE TEMP TABLE t(x int)'             => 'it has temporary tables',
    'SELECT pg_advisory_lock(42)'            => 'it holds session-level advisory locks',
    'BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT 1; COMMIT' => 'it has WITH HOLD cursors open',
);
for my $sql (sort keys %unmovable) {
    my $u = login();
    my $cid = client_of($u)->{id};
    is $u->query($sql)->{error}, undef, "$sql";
    my $backend = one($u, 'SELECT pg_backend_pid()');
    my $r = move_one($cid, 'us-west');
    is $r->{result}, 'not moved', "... keeps the session where it is";
    is $r->{reason}, $unmovable{$sql}, "... and says why: $unmovable{$sql}";
    is one($u, 'SELECT pg_backend_pid()'), $backend, '... on the same backend';
    $u->terminate;
}
{
    my $u = login(options => '-c pgnear.movable=off');
    my $c2 = client_of($u);
    is $c2->{movable}, 'the client connected with pgnear.movable=off', 'pgnear.movable=off: SHOW CLIENTS says why';
    my $r = move_one($c2->{id}, 'us-west');
    is_deeply [@{$r}{qw(result reason)}], ['not moved', 'the client connected with pgnear.movable=off'],
      '... and MOVE CLIENT leaves it';
    $u->terminate;
    $u = login(user => 'nomove');
    $r = move_one(client_of($u)->{id}, 'us-west');
    is_deeply [@{$r}{qw(result reason)}], ['not moved', 'movable = off for its user or database'],
      '[user nomove] movable = off is respected';
    $u->terminate;
}

# ------------------------------------------------------------------ a transaction ends first

{
    my $u = login();
    my $cid = client_of($u)->{id};
    $u->query('BEGIN');
    $u->query('SELECT 1');
    my $pid = fork // die;
    if ($pid == 0) {
        my @r = $p->admin_rows("MOVE CLIENT $cid TO REGION us-west", errors => 'row');
        write_file("$dir/tx-move", join('|', map { $_ // '' } @{ $r[0] }{qw(result reason)}));
        POSIX::_exit(0);
    }
    sleep 0.5;
    is one($u, 'SELECT inet_server_port()'), $us->port, 'inside its transaction the session stays';
    is $u->query('COMMIT')->{tag}, 'COMMIT', '... commits';
    waitpid $pid, 0;
    is slurp_file("$dir/tx-move"), 'moved|', '... then moves at its end';
    $moves++;
    is one($u, 'SELECT inet_server_port()'), $uw->port, '... to us-west';

    # One that never ends its transaction within move_timeout stays, unharmed.
    $u->query('BEGIN');
    $u->query('SELECT 1');
    my $t0 = time;
    my $r = move_one($cid, 'us-east');
    is $r->{result}, 'not moved', 'a transaction longer than move_timeout: not moved';
    like $r->{reason}, qr/no transaction boundary within move_timeout \(3000 ms\)/, '... saying why';
    cmp_ok time - $t0, '<', 8, '... after move_timeout';
    is one($u, 'SELECT 2'), 2, '... the transaction goes on';
    is $u->query('COMMIT')->{tag}, 'COMMIT', '... and commits where it was';
    is one($u, 'SELECT inet_server_port()'), $uw->port, '... on us-west still';
    # move_timeout as the move begins, not as the session logged in: a SET (a reload) applies.
    my ($set) = $p->admin_rows(q{SET move_timeout = '1s'}, errors => 'row');
    ok !($set && $set->{error}), 'SET move_timeout = 1s, the session logged in under 3s';
    $u->query('BEGIN');
    $r = move_one($cid, 'us-east');
    like $r->{reason}, qr/no transaction boundary within move_timeout \(1000 ms\)/,
      '... its next move waits the 1 s set since';
    is $u->query('COMMIT')->{tag}, 'COMMIT', '... its transaction commits where it was';
    ($set) = $p->admin_rows(q{SET move_timeout = '3s'}, errors => 'row');
    ok !($set && $set->{error}), 'SET move_timeout = 3s again';
    $u->terminate;
}

# ------------------------------------------------------------------ failures leave the session unharmed

{
    # A statement the target cannot prepare: its table exists only in us-east.
    $us->psql_admin('CREATE TABLE only_east(x int); GRANT ALL ON only_east TO app', dbname => 'movr');
    my $u = login();
    my $cid = client_of($u)->{id};
    $u->query('SET work_mem = 12345');
    $u->query('PREPARE q AS SELECT count(*) FROM only_east');
    my $backend = one($u, 'SELECT pg_backend_pid()');
    my $r = move_one($cid, 'us-west');
    is $r->{result}, 'not moved', 'a statement the target refuses: not moved';
    like $r->{reason}, qr/^the target refused its state: 42P01 relation "only_east" does not exist/, '... saying why';
    is one($u, 'SELECT pg_backend_pid()'), $backend, '... still on its backend';
    is one($u, 'EXECUTE q'), 0, '... with its statement';
    is one($u, 'SHOW work_mem'), '12345kB', '... and its settings';

    # A target that refuses the login: its secret for app differs.
    $uw->psql_admin(q{ALTER ROLE app PASSWORD 'another-secret'});
    $u->query('DEALLOCATE q');
    $r = move_one($cid, 'us-west');
    is $r->{result}, 'not moved', 'a target that refuses the login: not moved';
    like $r->{reason}, qr/^the target failed: the server's SCRAM secret for this user differs/,
      '... saying why' or diag $r->{reason};
    cmp_ok $r->{hold_ms} // -1, '==', 0, '... before the client was held (the login comes first)';
    is one($u, 'SELECT pg_backend_pid()'), $backend, '... still on its backend';
    my %fit = map { ("$_->{user}\@$_->{region}" => $_) } $p->admin_rows('SHOW USERS', errors => 'row');
    is $fit{'app@us-west'}{secret_fits}, 'f', "SHOW USERS: app's key does not fit us-west now"
      or diag explain \%fit;
    like $fit{'app@us-west'}{last_error}, qr/SCRAM secret for this user differs/, '... saying why';
    is $fit{'app@us-east'}{secret_fits}, 't', '... and fits us-east';
    $uw->psql_admin("ALTER ROLE app PASSWORD '$app_secret'");

    # A target whose pg_hba.conf rejects the user: the reason is the server's SQLSTATE and words.
    my $hba = slurp_file($uw->datadir . '/pg_hba.conf');
    $uw->_write('pg_hba.conf', "host movr app 127.0.0.1/32 reject\n$hba", 0600);
    $uw->psql_admin('SELECT pg_reload_conf()');
    $r = move_one($cid, 'us-west');
    is $r->{result}, 'not moved', 'a target whose pg_hba.conf rejects the user: not moved';
    like $r->{reason}, qr/^the target failed: 28000 pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "app", database "movr"/,
      "... with the server's SQLSTATE and words" or diag $r->{reason};
    is one($u, 'SELECT pg_backend_pid()'), $backend, '... still on its backend';
    $uw->_write('pg_hba.conf', $hba, 0600);
    $uw->psql_admin('SELECT pg_reload_conf()');
    $u->terminate;
}

{
    # A target that goes away in the middle of the replay (its link is cut at the first set_config).
    my $u = login();
    my $cid = client_of($u)->{id};
    $u->query('SET work_mem = 2345');
    $u->query('LISTEN flaky');
    my $backend = one($u, 'SELECT pg_backend_pid()');
    $relay->intercept(match => 'pg_catalog.set_config', action => 'reset', count => 1);
    my $r = move_one($cid, 'ap-flaky');
    is $r->{result}, 'not moved', 'a target that dies during the replay: not moved';
    like $r->{reason}, qr/^the target failed: /, '... saying why' or diag $r->{reason};
    is one($u, 'SELECT pg_backend_pid()'), $backend, '... still on its backend';
    is one($u, 'SHOW work_mem'), '2345kB', '... with its settings';
    $us->psql_admin(q{NOTIFY flaky, 'still here'}, dbname => 'movr');
    my $n = $u->query('SELECT 1');
    PgNearTest::wait_until(sub { @{ $n->{notifications} } or ($n = $u->query('SELECT 1')) && 0 },
                           timeout => 5, interval => 0.05);
    is_deeply [map { $_->{payload} } @{ $n->{notifications} }], ['still here'], '... and its channels';
    $r = move_one($cid, 'ap-flaky');
    is $r->{result}, 'moved', 'the next try goes through';
    is one($u, 'SHOW work_mem'), '2345kB', '... settings there';
    is one($u, 'SELECT inet_server_port()'), $uw->port, '... on the server behind the link';
    $u->terminate;
}

# ------------------------------------------------------------------ the old server dies during the move

# The mover logs in before the session is held; once the state is read the
# replay runs on the target, and there it waits: the session PREPAREd a
# statement over a table the test holds locked on us-west (behind the slow
# link), so its replay blocks until the lock goes.  Meanwhile the old
# backend is terminated: the state was read, so the session lives on the
# target once the lock is let go.
$_->psql_admin('CREATE TABLE move_lock(x int); GRANT ALL ON move_lock TO app', dbname => 'movr') for $us, $uw;
# The shipped move_timeout (10 s) for these two: the test's own steps (each a
# psql) run inside the move, and 3 s are few on a loaded machine.
sub set_move_timeout {
    my ($t) = @_;
    my ($set) = $p->admin_rows("SET move_timeout = '$t'", errors => 'row');
    ok !($set && $set->{error}), "SET move_timeout = $t" or diag $set->{error};
}
set_move_timeout('10s');
sub move_in_background {
    my ($cid, $to, $file) = @_;
    my $pid = fork // die;
    return $pid if $pid;
    my @rows = $p->admin_rows("MOVE CLIENT $cid TO REGION $to", errors => 'row');
    write_file($file, join('|', map { $_ // '' } @{ $rows[0] }{qw(result reason)}));
    POSIX::_exit(0);
}
sub lock_on_west {
    my $dbh = PgNearTest::dbi_connect($uw->conninfo(dbname => 'movr'), AutoCommit => 0) or die "DBI: " . DBI->errstr;
    $dbh->do('LOCK TABLE move_lock IN ACCESS EXCLUSIVE MODE') or die $dbh->errstr;
    return $dbh;
}
# The replay waits for the lock: the state was read, the old backend may die from then on.
sub replay_waits {
    my ($cid, $off) = @_;
    ok $p->wait_for_log(qr/c$cid: move: its state is read/, offset => $off, timeout => 20),
      '... (the state was read)';
    ok PgNearTest::wait_until(sub {
        $uw->psql_admin(q{SELECT count(*) FROM pg_stat_activity WHERE datname = 'movr' AND wait_event_type = 'Lock'}) == 1
    }, timeout => 20, interval => 0.05), '... (its replay waits for the lock on the target)';
}
sub old_failed_logged {
    my ($cid, $off) = @_;
    ok $p->wait_for_log(qr/c$cid: its server failed during its move .*the move goes on/, offset => $off, timeout => 20),
      '... (pgnear saw the old server go while the replay waited)';
}
{
    my $u = login();
    my $cid = client_of($u)->{id};
    $u->query('SET work_mem = 3456');
    $u->query('PREPARE locked AS SELECT count(*) FROM move_lock');
    my $old = one($u, 'SELECT pg_backend_pid()');
    my $lock = lock_on_west();
    my $off = $p->log_size;
    my $bg = move_in_background($cid, 'eu-slow', "$dir/slow-move");
    replay_waits($cid, $off);
    $us->psql_admin("SELECT pg_terminate_backend($old)");
    old_failed_logged($cid, $off);
    $lock->commit;
    $lock->disconnect;
    waitpid $bg, 0;
    is slurp_file("$dir/slow-move"), 'moved|', 'the old server dies during the move: moved all the same';
    is one($u, 'SHOW work_mem'), '3456kB', '... the session goes on on the target, its state there';
    is one($u, 'SELECT inet_server_port()'), $uw->port, '... on the server behind the slow link';
    is one($u, 'EXECUTE locked'), '0', '... its statement too';
    $moves++;
    $u->terminate;

    # When the target then fails too, the session ends as the old server's end would have ended it.
    $u = login();
    $cid = client_of($u)->{id};
    $u->query('PREPARE locked AS SELECT count(*) FROM move_lock');
    $old = one($u, 'SELECT pg_backend_pid()');
    $lock = lock_on_west();
    $off = $p->log_size;
    $bg = move_in_background($cid, 'eu-slow', "$dir/slow-move");
    replay_waits($cid, $off);
    $us->psql_admin("SELECT pg_terminate_backend($old)");
    old_failed_logged($cid, $off);
    $uw->psql_admin(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'movr' AND wait_event_type = 'Lock'});
    waitpid $bg, 0;
    $lock->rollback;
    $lock->disconnect;
    like slurp_file("$dir/slow-move"), qr/^not moved\|the target failed: /, '... and if the target fails too: not moved';
    my $r = $u->query('SELECT 1');
    ok $r->{eof} || ($r->{error} && $r->{error}{C} =~ /^(08006|57P01)$/),
      '... and the session ends as its server did (' . ($r->{error} ? $r->{error}{C} : 'closed') . ')';
    set_move_timeout('3s');
}

# ------------------------------------------------------------------ needs and positions

{
    # A read-write session never lands on a standby.
    my $u = login(options => '-c pgnear.target_session_attrs=read-write');
    my $r = move_one(client_of($u)->{id}, 'sa-east');
    is $r->{result}, 'not moved', 'a read-write session is not moved to a standby';
    like $r->{reason}, qr/fits what it needs/, '... saying why';
    $u->terminate;

    # Nor does any session see older data than it saw: the standby must replay its position first.
    $us->psql_admin('CREATE TABLE seen(x int); GRANT ALL ON seen TO app', dbname => 'movr');
    $ro->wait_replay($us->current_lsn);
    $u = login();
    my $cid = client_of($u)->{id};
    $ro->pause_replay;
    is $u->query('INSERT INTO seen VALUES (1)')->{error}, undef, 'a session writes, the standby does not replay';
    $r = move_one($cid, 'sa-east');
    is $r->{result}, 'not moved', 'a standby behind the session is refused';
    like $r->{reason}, qr/^no standby of the region replayed its position within move_timeout/, '... after move_timeout, saying why' or diag $r->{reason};
    is one($u, 'SELECT count(*) FROM seen'), 1, '... and the session reads its row where it is';
    my $pid = fork // die;
    if ($pid == 0) {
        my @rows = $p->admin_rows("MOVE CLIENT $cid TO REGION sa-east", errors => 'row');
        write_file("$dir/ro-move", join('|', map { $_ // '' } @{ $rows[0] }{qw(result reason)}));
        POSIX::_exit(0);
    }
    sleep 0.7;
    $ro->resume_replay;
    waitpid $pid, 0;
    is slurp_file("$dir/ro-move"), 'moved|', 'a standby that replays it while the move waits takes the session';
    is one($u, 'SELECT inet_server_port()'), $ro->port, '... the standby serves it';
    is one($u, 'SELECT count(*) FROM seen'), 1, '... and it sees its own row there';
    $moves += 2;
    $u->terminate;
}

# ------------------------------------------------------------------ DRAIN and HOME under pgbench -M prepared

my $boston  = $p->conninfo(dbname => 'movr', user => 'app', password => 'app-secret',
                           options => '-c pgnear.city=Boston');
my $seattle = $p->conninfo(dbname => 'movr', user => 'app', password => 'app-secret',
                           options => '-c pgnear.city=Seattle');
for my $ci ($boston, $seattle) {
    my ($rc, undef, $err) = pgbench(['-i', '-s', '1', '-q'], $ci, timeout => 120);
    is $rc, 0, 'pgbench -i through pgnear' or diag $err;
}
{
    my $bench_out = "$dir/bench.out";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        # -T: longer than DRAIN, HOME and FROM below take under ASan on a loaded machine.
        my ($brc, $bo, $be) = pgbench(['-n', '-M', 'prepared', '-c', '16', '-j', '4', '-T', '25'],
                                      $boston, timeout => 120);
        write_file($bench_out, "rc=$brc\n$bo\n$be");
        POSIX::_exit(0);
    }
    my $on = sub { my ($r) = @_; scalar grep { ($_->{region} // '') eq $r && ($_->{database} // '') eq 'movr' }
                                 $p->admin_rows('SHOW CLIENTS', errors => 'row') };
    PgNearTest::wait_until(sub { $on->('us-east') == 16 }, timeout => 10, interval => 0.1);
    # The shipped move_timeout (10 s), not this file's 3 s: pgbench's 16
    # clients queue on one branch row, so under ASan on a loaded machine a
    # transaction can last seconds before its boundary comes.
    set_move_timeout('10s');
    sleep 1;
    my @drained = $p->admin_rows('DRAIN us-east', errors => 'row');
    my @moved = grep { ($_->{result} // '') eq 'moved' } @drained;
    is scalar(@drained), 16, 'DRAIN us-east under pgbench -M prepared -c 16: a row per session'
      or diag explain \@drained;
    is scalar(@moved), 16, '... every session moved' or diag explain [grep { $_->{result} ne 'moved' } @drained];
    is scalar(grep { $_->{to_region} eq 'us-west' } @moved), 16, '... to us-west, the next region of their route';
    $moves += @moved;
    my @holds = sort { $a <=> $b } map { $_->{hold_ms} } @moved;
    note sprintf 'DRAIN holds (ms): median %.1f, max %.1f', $holds[$#holds / 2], $holds[-1];
    is $on->('us-east'), 0, '... none is left in us-east';
    sleep 2;
    is psql($admin_ci, 'ENABLE us-east'), 'ENABLE', 'ENABLE us-east';
    my @home = $p->admin_rows('MOVE CLIENTS HOME', errors => 'row');
    is scalar(grep { ($_->{result} // '') eq 'moved' && $_->{to_region} eq 'us-east' } @home), 16,
      'MOVE CLIENTS HOME takes the 16 back to us-east' or diag explain \@home;
    $moves += grep { ($_->{result} // '') eq 'moved' } @home;
    is $on->('us-west'), 0, '... none is left in us-west';
    sleep 1;
    my @away = $p->admin_rows('MOVE CLIENTS FROM REGION us-east', errors => 'row');
    is scalar(grep { ($_->{result} // '') eq 'moved' && $_->{to_region} eq 'us-west' } @away), 16,
      'MOVE CLIENTS FROM REGION us-east: each to its next region' or diag explain \@away;
    $moves += grep { ($_->{result} // '') eq 'moved' } @away;
    waitpid $pid, 0;
    my $out = slurp_file($bench_out);
    like $out, qr/^rc=0$/m, 'pgbench ends well' or diag $out;
    my $b = parse_pgbench($out);
    is $b->{failed} // 0, 0, '... with 0 failed transactions';
    unlike $out, qr/aborted|error/i, '... no client aborted, no error';
    cmp_ok $b->{processed} // 0, '>', 100, '... having done work (' . ($b->{processed} // 0) . ' transactions)';
}

{
    my %st = map { ($_->{stat} // '') => $_->{value} } $p->admin_rows('SHOW STATS', errors => 'row');
    is $st{moves_done}, $moves, "SHOW STATS: moves_done counts the moves done ($moves)";
    is $st{moves_failed}, 14, '... and moves_failed the 14 that were not';
    my (undef, $m) = http_get($metrics_port, '/metrics');
    like $m, qr/^pgnear_session_moves_total\{result="moved"\} $moves$/m, '/metrics: pgnear_session_moves_total';
    like $m, qr/^pgnear_session_move_hold_seconds_count $moves$/m, '... and the histogram of holds';
    like $m, qr/^pgnear_session_move_hold_seconds_bucket\{le="\+Inf"\} $moves$/m, '... whose last bucket has them all';
}
note "moves made by this test: $moves";

done_testing;

sub one_backend_sleeping {
    my ($c) = @_;
    my $pid;
    PgNearTest::wait_until(sub {
        $pid = $c->psql_admin(q{SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(20)%' AND state = 'active'});
        $pid ne '';
    }, timeout => 10, interval => 0.05);
    return $pid;
}
