# Moving live sessions between servers (MOVE CLIENT, MOVE CLIENTS, DRAIN):
# a raw-protocol client that SET settings, SET ROLE, PREPAREd statements in
# SQL and by the extended protocol, and LISTENs, is moved back and forth
# between two regions; after each move it is on the other backend, every
# setting, statement and channel is there, and a notification sent while it
# moved reaches it.  Unmovable sessions (temporary tables, advisory locks,
# WITH HOLD cursors, pgnear.movable=off, movable = off for a user) are
# named and left alone; a target that refuses the login or dies mid-move
# leaves the session unharmed on its old server; a session in a
# transaction moves at its end; a cancel after a move reaches the new
# backend; SHOW CLIENTS counts moves; /metrics counts them.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pgbench);

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $uw = PgNearTest::Cluster->new(name => 'us-west');
# Both regions know app by the same SCRAM secret: pgnear logs in for it with one ClientKey.
my $app_secret = $us->scram_verifier('app');
$uw->psql_admin("ALTER ROLE app PASSWORD '$app_secret'");
$_->psql_admin('CREATE ROLE reader NOLOGIN; GRANT reader TO app') for $us, $uw;

my $dir = tmpdir(name => 'move');
write_file("$dir/users.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
                           . qq{"app" "$app_secret"\n"nomove" "$app_secret"\n});
$_->psql_admin("CREATE ROLE nomove LOGIN PASSWORD '$app_secret'; GRANT ALL ON DATABASE movr TO nomove")
  for $us, $uw;

my $workers = $ENV{PGNEAR_TEST_WORKERS} // 2;
my $p = PgNearTest::Proxy->new(regions => [$us, $uw],
    settings => { auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                  server_tls => 'disable', workers => $workers, move_timeout => '3s' },
    extra_ini => "\n[cities]\nboston = us-east\nseattle = us-west\n\n[user nomove]\nmovable = off\n");
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');

sub admin_rows {
    my ($sql) = @_;
    my ($rc, $out, $err) = psql($admin_ci, $sql, args => ['-P', 'tuples_only=off', '-P', 'footer=off'],
                                verbose => 1);
    return { error => $err } if $rc != 0;
    my @lines = split /\n/, $out;
    my @head = split /\|/, (shift(@lines) // ''), -1;
    return map { my %r; @r{@head} = split(/\|/, $_, -1); \%r } @lines;
}

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
    my ($row) = grep { ($_->{application_name} // '') eq $w->{app} } admin_rows('SHOW CLIENTS');
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
    my @rows = admin_rows("MOVE CLIENT $id TO REGION $to");
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
$w->terminate;

done_testing;
