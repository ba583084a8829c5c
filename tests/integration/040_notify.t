# Asynchronous server messages through pgnear: LISTEN/NOTIFY across two
# sessions (payload and the sender's real backend pid), NOTICE messages,
# and ParameterStatus at startup and after SET.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

require_tool('psql');
use DBI;
use DBD::Pg;

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $p  = PgNearTest::Proxy->new(regions => [$us],
                                settings => { auth => 'passthrough', server_tls => 'disable' });

sub connect_via {
    my (%o) = @_;
    my $dbh = dbi_connect($p->conninfo(application_name => $o{app}), %{ $o{attr} // {} });
    BAIL_OUT("DBD::Pg cannot connect through pgnear: $DBI::errstr") unless $dbh;
    return $dbh;
}

# Poll pg_notifies in a bounded loop (at most $timeout seconds).
sub wait_notifies {
    my ($dbh, $want, $timeout) = @_;
    my @got;
    my $deadline = time + ($timeout // 5);
    for (1 .. 1000) {
        while (my $n = $dbh->pg_notifies) { push @got, $n }
        last if @got >= $want || time > $deadline;
        sleep 0.02;
    }
    return \@got;
}

# Simple query over PgNearTest::Wire that also keeps ParameterStatus messages.
sub wire_query {
    my ($w, $sql) = @_;
    $w->send_msg('Q', "$sql\0");
    my %r = (params => {}, param_order => [], notices => [], notifications => [], rows => [], tags => []);
    for (1 .. 100_000) {
        my ($t, $m) = $w->read_msg;
        if (!defined $t) { $r{eof} = 1; return \%r }
        if    ($t eq 'S') { my ($k, $v) = split /\0/, $m, -1; $r{params}{$k} = $v; push @{ $r{param_order} }, $k }
        elsif ($t eq 'N') { push @{ $r{notices} }, PgNearTest::Wire::parse_fields($m) }
        elsif ($t eq 'E') { $r{error} = PgNearTest::Wire::parse_fields($m) }
        elsif ($t eq 'C') { (my $tag = $m) =~ s/\0\z//; push @{ $r{tags} }, $tag }
        elsif ($t eq 'A') {
            my ($pid, $rest) = unpack('N a*', $m);
            my ($ch, $payload) = split /\0/, $rest, -1;
            push @{ $r{notifications} }, { pid => $pid, channel => $ch, payload => $payload };
        }
        elsif ($t eq 'D') {
            my $n = unpack('n', $m);
            my $len = $n ? unpack('l>', substr($m, 2, 4)) : -1;
            push @{ $r{rows} }, $len < 0 ? undef : substr($m, 6, $len);
        }
        elsif ($t eq 'Z') { $r{status} = $m; return \%r }
    }
    die "wire_query: no ReadyForQuery\n";
}

sub wire_login {
    my (%o) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $o{port} // $p->port);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => $o{params} // []);
    die 'Wire login failed: ' . ($r->{error} ? $r->{error}{M} : 'eof') . "\n" unless $r->{ok};
    return ($w, $r);
}

# ====================================================== LISTEN / NOTIFY
my $listener = connect_via(app => 'listener');
my $sender   = connect_via(app => 'sender');

my $sender_pid = $sender->selectrow_array('SELECT pg_backend_pid()');
ok $sender_pid, "sender's pg_backend_pid() is $sender_pid";
is $sender->{pg_pid}, $sender_pid, "sender's BackendKeyData pid (\$dbh->{pg_pid}) equals pg_backend_pid()";
is $us->psql_admin("SELECT pid FROM pg_stat_activity WHERE application_name = 'sender'"), $sender_pid,
    "that pid is the sender's real backend on the server (pg_stat_activity, directly)";
my $listener_pid = $listener->selectrow_array('SELECT pg_backend_pid()');
is $listener->{pg_pid}, $listener_pid, "listener's \$dbh->{pg_pid} equals its pg_backend_pid()";
isnt $listener_pid, $sender_pid, 'two sessions, two backends';

ok $listener->do('LISTEN ch'), 'LISTEN ch through pgnear';
is_deeply $listener->pg_notifies, undef, 'no notification yet';

# The listener is idle (no query in flight) when the notification comes:
# pgnear must pass it on without any client traffic to trigger it.
ok $sender->do(q{NOTIFY ch, 'payload'}), q{NOTIFY ch, 'payload' from the other session};
my $got = wait_notifies($listener, 1, 5);
is scalar(@$got), 1, 'exactly one notification arrives at the idle listener';
my ($name, $pid, $payload) = @{ $got->[0] // [] };
is $name, 'ch', 'channel name';
is $payload, 'payload', 'payload matches';
is $pid, $sender_pid, "notifying pid equals the sender's pg_backend_pid()";
is $pid, $sender->{pg_pid}, "notifying pid equals the sender's \$dbh->{pg_pid} (BackendKeyData)";

# Several notifications, in a transaction (delivered at commit, in order),
# a long payload, bytes that need care, and a channel nobody listens on.
$sender->begin_work;
$sender->do(q{SELECT pg_notify('ch', 'first')});
$sender->do(q{SELECT pg_notify('other', 'not for us')});
$sender->do(q{SELECT pg_notify('ch', $1)}, undef, "tab\there, quote ' and \\ backslash, caf\x{e9} \x{263A}");
my $long = join '', map { chr(65 + $_ % 26) } 1 .. 7900;
$sender->do(q{SELECT pg_notify('ch', $1)}, undef, $long);
is_deeply wait_notifies($listener, 1, 0.5), [], 'nothing delivered before COMMIT';
$sender->commit;
$got = wait_notifies($listener, 3, 5);
is scalar(@$got), 3, 'three notifications on ch after COMMIT (none for the other channel)';
is_deeply [map { $_->[2] } @$got],
    ['first', "tab\there, quote ' and \\ backslash, caf\x{e9} \x{263A}", $long], 'payloads, in order, intact';
is_deeply [map { $_->[1] } @$got], [($sender_pid) x 3], 'each carries the sender pid';

# A burst: 200 notifications, all delivered.
$sender->do(q{SELECT pg_notify('ch', 'n' || i) FROM generate_series(1, 200) i});
$got = wait_notifies($listener, 200, 10);
is scalar(@$got), 200, '200 notifications from one statement all arrive';
is $got->[-1][2], 'n200', '... the last one last';

# A session notifying itself gets its own pid.
$listener->do(q{NOTIFY ch, 'self'});
$got = wait_notifies($listener, 1, 5);
is_deeply $got->[0], ['ch', $listener_pid, 'self'], 'self-notification carries its own pid';

# UNLISTEN stops delivery.
$listener->do('UNLISTEN ch');
$sender->do(q{NOTIFY ch, 'after unlisten'});
$listener->do('SELECT 1');
is_deeply wait_notifies($listener, 1, 0.5), [], 'nothing after UNLISTEN';

# The raw frontend sees NotificationResponse arriving on an idle connection.
{
    my ($w, $r) = wire_login();
    my $q = wire_query($w, 'LISTEN rawch');
    is_deeply $q->{tags}, ['LISTEN'], 'Wire: LISTEN rawch';
    $sender->do(q{NOTIFY rawch, 'raw payload'});
    my ($t, $m) = eval { $w->read_msg };
    is $t, 'A', 'Wire: a NotificationResponse arrives unprompted' or diag $@;
    my ($npid, $rest) = unpack('N a*', $m // "\0\0\0\0");
    is $npid, $sender_pid, 'Wire: NotificationResponse pid is the sender\'s';
    is $rest, "rawch\0raw payload\0", 'Wire: channel and payload';
    $w->terminate;
}

# ====================================================== NOTICE
{
    my @warn;
    local $SIG{__WARN__} = sub { push @warn, $_[0] };
    my $dbh = connect_via(app => 'notice');
    ok $dbh->do(q{DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; END $$}), 'DO block with RAISE NOTICE';
    ok((grep { /NOTICE:\s+hello from plpgsql/ } @warn), 'DBD::Pg: the NOTICE reaches the client')
        or diag "warnings: @warn";
    @warn = ();
    $dbh->do(q{DO $$ BEGIN FOR i IN 1..50 LOOP RAISE NOTICE 'notice %', i; END LOOP; END $$});
    is scalar(grep { /NOTICE:\s+notice \d+/ } @warn), 50, 'DBD::Pg: 50 NOTICEs from one statement';
    $dbh->disconnect;
}
{
    my ($rc, $out, $err) = psql($p->conninfo,
        q{DO $$ BEGIN RAISE NOTICE 'psql sees %', 42; RAISE WARNING 'and a warning'; END $$});
    is $rc, 0, 'psql: DO block runs';
    like $err, qr/NOTICE:\s+psql sees 42/, 'psql: the NOTICE reaches the client';
    like $err, qr/WARNING:\s+and a warning/, 'psql: the WARNING reaches the client';
}
{
    my ($w) = wire_login();
    my $q = wire_query($w, q{DO $$ BEGIN RAISE NOTICE USING MESSAGE = 'wire notice', ERRCODE = '01000', HINT = 'a hint'; END $$});
    is scalar(@{ $q->{notices} }), 1, 'Wire: one NoticeResponse';
    is $q->{notices}[0]{M}, 'wire notice', 'Wire: notice message';
    is $q->{notices}[0]{S}, 'NOTICE', 'Wire: notice severity';
    is $q->{notices}[0]{C}, '01000', 'Wire: notice SQLSTATE';
    is $q->{notices}[0]{H}, 'a hint', 'Wire: notice hint';
    $w->terminate;
}

# ====================================================== ParameterStatus
{
    my ($wp, $rp) = wire_login(params => [application_name => 'ps-test']);
    my ($wd, $rd) = wire_login(port => $us->port, params => [application_name => 'ps-test']);
    for my $k (qw(server_version server_encoding client_encoding DateStyle IntervalStyle TimeZone
                  integer_datetimes standard_conforming_strings is_superuser session_authorization
                  application_name)) {
        is $rp->{params}{$k}, $rd->{params}{$k},
            "startup ParameterStatus $k through pgnear equals the server's (" . ($rd->{params}{$k} // 'undef') . ')';
    }
    is_deeply [sort keys %{ $rp->{params} }], [sort keys %{ $rd->{params} }],
        'startup: the same set of ParameterStatus names as straight from the server';
    $wd->terminate;

    my $q = wire_query($wp, q{SET application_name = 'renamed by SET'});
    is $q->{params}{application_name}, 'renamed by SET', 'SET application_name: ParameterStatus reaches the client';
    $q = wire_query($wp, q{SET TimeZone = 'Asia/Tokyo'});
    is $q->{params}{TimeZone}, 'Asia/Tokyo', 'SET TimeZone: ParameterStatus reaches the client';
    $q = wire_query($wp, q{SET DateStyle = 'SQL, DMY'});
    is $q->{params}{DateStyle}, 'SQL, DMY', 'SET DateStyle: ParameterStatus reaches the client';
    $q = wire_query($wp, q{BEGIN; SET application_name = 'inside tx'});
    is $q->{params}{application_name}, 'inside tx', 'SET inside a transaction is reported';
    is $q->{status}, 'T', '... and the session is in a transaction';
    $q = wire_query($wp, 'ROLLBACK');
    is $q->{params}{application_name}, 'renamed by SET', 'ROLLBACK reverts application_name and reports it';
    $q = wire_query($wp, 'SHOW application_name');
    is $q->{rows}[0], 'renamed by SET', 'the server agrees';
    $q = wire_query($wp, 'RESET ALL');
    is $q->{params}{TimeZone}, $rp->{params}{TimeZone}, 'RESET ALL reports TimeZone back to the startup value';
    is $q->{params}{application_name}, 'ps-test', 'RESET ALL reports application_name back to the startup value';
    $wp->terminate;
}
{
    # libpq tracks ParameterStatus: DBD::Pg exposes standard_conforming_strings.
    my $dbh = connect_via(app => 'ps-dbd');
    is $dbh->{pg_standard_conforming_strings}, 'on', 'DBD::Pg: standard_conforming_strings on at startup';
    $dbh->do('SET standard_conforming_strings = off');
    is $dbh->{pg_standard_conforming_strings}, 'off', 'DBD::Pg: libpq saw the ParameterStatus after SET';
    $dbh->disconnect;

    # psql follows client_encoding from ParameterStatus (\encoding).
    my $out = psql($p->conninfo, [q{SET client_encoding TO 'LATIN1'}, '\encoding'], quiet => 1);
    is $out, 'LATIN1', 'psql: \encoding shows the client_encoding reported after SET';
}

$listener->disconnect;
$sender->disconnect;
ok $p->is_running, 'pgnear is still running';

done_testing;
