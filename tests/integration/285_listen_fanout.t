# LISTEN and NOTIFY answered by pgnear (proxy/session/notify_hub.h) as
# PostgreSQL answers them, each case beside a direct connection doing the
# same, under pool_mode = transaction, pool_mode = session (no fan-out:
# the server's own answers, for comparison), and target_session_attrs =
# nearest in both pool modes.  Encodings: a client_encoding = LATIN1
# session's LISTEN "café" listens on the channel a UTF8 NOTIFY names and
# its notifications come in LATIN1, as directly; a UTF8 client's LISTEN
# "\xff" gets the server's 22021; neither stops another session's
# notifications.  UNLISTEN that runs on the server: in a block (at COMMIT,
# undone by ROLLBACK), beside other statements (asyncpg's reset), DISCARD
# ALL, and through the extended protocol, each stops pgnear's delivery as
# it stops a direct connection's.  A notification's process ID is the one
# its sender was given (BackendKeyData), also when its NOTIFY ran on
# another backend (another client holding the first in a transaction;
# under nearest, the login's is the standby's), and a listener's own
# NOTIFY comes with its own, as directly.  A dbname in server_conninfo:
# the listening connection still logs in to the session's database.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IO::Select;
use Time::HiRes qw(time);
use Encode qw(encode_utf8);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pg_basebackup);

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
$eu->wait_streaming;
my $auth_dir = tmpdir(name => 'fanout-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist, qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

sub proxy {
    my (%o) = @_;
    my $nearest = delete $o{nearest};
    my $regions = $nearest
      ? [{ name => 'us-east', location => '39.04, -77.49', hosts => [$us] },
         { name => 'eu-west', location => '53.35, -6.26', hosts => [$eu] }]
      : [$us];
    my $p = PgNearTest::Proxy->new(regions => $regions,
        settings => { auth => 'scram', auth_file => $userlist, server_tls => 'disable',
                      query_wait_timeout => '20s', pool_size => 8,
                      ($nearest ? (target_session_attrs => 'nearest') : ()), %o });
    return $p;
}

# A client of pgnear (or of the primary, directly: port), in client_encoding $enc.
sub login {
    my ($port, %o) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { ($o{encoding} ? (client_encoding => $o{encoding}) : ()),
                                    ($o{near} ? (options => '-c pgnear.location=53.35,-6.26') : ()) });
    die 'login failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n" unless $r->{ok};
    $w->{key_pid} = $r->{pid};
    return $w;
}

# What an idle client reads within $secs (or until $want notifications): notifications, notices.
sub idle_read {
    my ($w, $secs, $want) = @_;
    my (@notes, @notices);
    my $sel = IO::Select->new($w->socket);
    my $until = time + $secs;
    while (time < $until && (!$want || @notes < $want)) {
        if (length $w->{buf} < 5) {
            last unless $sel->can_read($until - time);
            my $n = sysread($w->socket, my $chunk, 65536);
            last unless $n;
            $w->{buf} .= $chunk;
            next;
        }
        my ($t, $m) = $w->read_msg;
        last unless defined $t;
        if ($t eq 'A') {
            my ($pid, $rest) = unpack('N a*', $m);
            my ($ch, $payload) = split /\0/, $rest, -1;
            push @notes, { pid => $pid, channel => $ch, payload => $payload };
        } elsif ($t eq 'N') {
            push @notices, PgNearTest::Wire::parse_fields($m);
        }
    }
    return wantarray ? (\@notes, \@notices) : \@notes;
}

# A NOTIFY made directly on the primary, in UTF8 (payload and channel as SQL literals' text).
sub direct_notify {
    my ($channel, $payload) = map { encode_utf8($_) } @_;
    $us->psql_admin(qq{SELECT pg_notify('$channel', '$payload')}, dbname => 'movr');
}

# The FATAL that ends a session: "SQLSTATE message" ('' if none within 10 s).
sub fatal_of {
    my ($w) = @_;
    local $w->{timeout} = 10;
    my $got = '';
    eval {
        while (my ($t, $m) = $w->read_msg) {
            my $f = PgNearTest::Wire::parse_fields($m);
            $got = "$f->{C} $f->{M}" if $t eq 'E' && ($f->{S} // '') eq 'FATAL';
        }
        1;
    };
    return $got;
}

sub payloads { [map { "$_->{channel}:$_->{payload}" } @{ $_[0] }] }

# The same statements on a pgnear client and a direct one: their answers' tags and error codes.
sub both {
    my ($pw, $dw, $sql) = @_;
    my @r = map { my $q = $_->query($sql); join(',', @{ $q->{tags} }) . ($q->{error} ? " $q->{error}{C} $q->{error}{M}" : '') } $pw, $dw;
    return @r;
}

# Extended protocol: Parse, Bind, Execute, Sync of one statement.
sub extended {
    my ($w, $sql) = @_;
    $w->send_raw(join '', map { $_->[0] . pack('N', 4 + length $_->[1]) . $_->[1] }
        ['P', "\0$sql\0\0\0"], ['B', "\0\0\0\0\0\0\0\0"], ['E', "\0\0\0\0\0"], ['S', '']);
    return $w->read_result;
}

my @configs = (['transaction', 0], ['session', 0], ['transaction', 1], ['session', 1]);
for my $cfg (@configs) {
    my ($mode, $nearest) = @$cfg;
    my $name = ($nearest ? 'nearest, ' : '') . "pool_mode = $mode";
    my $p = proxy(pool_mode => $mode, nearest => $nearest);
    if ($nearest) {
        my $ci = $p->conninfo(dbname => 'pgnear', user => 'app', password => 'app-secret');
        ok wait_until(sub { login($p->port, near => 1)->query(q{SELECT current_setting('cluster_name')})->{rows}[0][0] eq 'eu-west' },
                      timeout => 30), "$name: reads run on the standby";
    }
    my $port = $p->port;
    my %near = (near => $nearest);

    # ---- item 9: encodings
    my $bystander = login($port, %near);
    is $bystander->query('LISTEN jobs')->{tag}, 'LISTEN', "$name: a UTF8 session listens on jobs";
    my $latin = login($port, %near, encoding => 'LATIN1');
    my $direct_latin = login($us->port, encoding => 'LATIN1');
    my ($pr, $dr) = both($latin, $direct_latin, qq{LISTEN "caf\xe9"});
    is $pr, 'LISTEN', "$name: a LATIN1 session's LISTEN \"caf\\xe9\" is answered LISTEN";
    is $pr, $dr, '... as directly';
    direct_notify("caf\x{e9}", "cr\x{e8}me");
    my $got = idle_read($latin, 5, 1);
    is_deeply payloads($got), ["caf\xe9:cr\xe8me"], "$name: a UTF8 NOTIFY on café reaches it, channel and payload in LATIN1";
    is_deeply payloads($got), payloads(idle_read($direct_latin, 5, 1)), '... as it reaches a direct LATIN1 session';
    my $bad = login($port, %near);
    my $direct_bad = login($us->port);
    ($pr, $dr) = both($bad, $direct_bad, qq{LISTEN "\xff"});
    like $pr, qr/^ 22021 invalid byte sequence for encoding "UTF8": 0xff$/, "$name: a UTF8 session's LISTEN \"\\xff\" gets 22021";
    is $pr, $dr, '... as directly';
    direct_notify('jobs', 'still');
    my ($n, $notices) = idle_read($bystander, 5, 1);
    is_deeply payloads($n), ['jobs:still'], "$name: the other session still gets its notifications";
    is_deeply [map { $_->{M} } @$notices], [], '... and no warning that any was lost';
    # a character LATIN1 lacks: the server ends the session with FATAL 22P05
    direct_notify("caf\x{e9}", "\x{65e5}");
    my @fatal = map { fatal_of($_) } $latin, $direct_latin;
    is $fatal[0], '22P05 character with byte sequence 0xe6 0x97 0xa5 in encoding "UTF8" has no equivalent in encoding "LATIN1"',
      "$name: a notification with a character LATIN1 lacks ends the LATIN1 session with FATAL 22P05";
    is $fatal[0], $fatal[1], '... as directly';
    $_->terminate for $bad, $direct_bad, $latin, $direct_latin;

    # ---- item 10: UNLISTEN that runs on the server
    my $l = login($port, %near);
    my $d = login($us->port);
    for my $w ($l, $d) { $w->query('LISTEN a; LISTEN b; LISTEN c') }
    my @cases = (
        ['UNLISTEN a in a block, rolled back' => ['BEGIN', 'UNLISTEN a', 'ROLLBACK'], ['a', 'b', 'c']],
        ['UNLISTEN a in a block, committed' => ['BEGIN', 'UNLISTEN a', 'COMMIT'], ['b', 'c']],
        ['UNLISTEN b beside another statement' => ['SELECT 1; UNLISTEN b'], ['c']],
        ['UNLISTEN c through the extended protocol' => [\'UNLISTEN c'], []],
    );
    for my $case (@cases) {
        my ($what, $steps, $left) = @$case;
        for my $w ($l, $d) {
            for my $sql (@$steps) {
                my $q = ref $sql ? extended($w, $$sql) : $w->query($sql);
                die "$what: $q->{error}{M}\n" if $q->{error};
            }
        }
        direct_notify($_, $what) for qw(a b c);
        my @want = map { "$_:$what" } @$left;
        is_deeply payloads(idle_read($l, @want ? 5 : 1.5, scalar @want)), \@want, "$name: $what: delivered on @{[ @$left ? join(',', @$left) : 'no channel' ]}";
        is_deeply payloads(idle_read($d, @want ? 5 : 1.5, scalar @want)), \@want, '... as directly';
    }
    for my $reset ('SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;', 'DISCARD ALL') {
        for my $w ($l, $d) { $w->query('LISTEN a'); my $q = $w->query($reset); die "$reset: $q->{error}{M}\n" if $q->{error} }
        direct_notify('a', 'after reset');
        is_deeply payloads(idle_read($l, 1.5)), [], "$name: $reset: no notification any more";
        is_deeply payloads(idle_read($d, 1.5)), [], '... as directly';
    }
    # ---- item 15: the sender's process ID, as the sender was told it (BackendKeyData)
    my $listener = login($port, %near);
    $listener->query('LISTEN pidch');
    my $sender = login($port, %near);
    my $q = $sender->query(q{SELECT pg_backend_pid(), pg_notify('pidch', 'sent')});
    die "notify: $q->{error}{M}\n" if $q->{error};
    is_deeply [map { $_->{pid} } @{ idle_read($listener, 5, 1) }], [$sender->{key_pid}],
      "$name: a notification comes with the process ID its sender was given (BackendKeyData)";
    isnt $q->{rows}[0][0], $sender->{key_pid}, "$name: ... though its NOTIFY ran on another backend (the primary's; the login's is the standby's)"
      if $nearest;
    $q = $listener->query(q{SELECT pg_notify('pidch', 'own')});
    my @own = (@{ $q->{notifications} }, @{ idle_read($listener, 5, 1 - @{ $q->{notifications} }) });
    is_deeply [map { $_->{pid} } @own], [$listener->{key_pid}], "$name: the listener's own NOTIFY comes with its own process ID (a client that skips its own sees it as its own)";
    my $direct_sender = login($us->port);
    $d->query('LISTEN pidch');
    $direct_sender->query(q{SELECT pg_notify('pidch', 'direct')});
    is_deeply [map { $_->{pid} } @{ idle_read($d, 5, 1) }], [$direct_sender->{key_pid}],
      '... as directly, where the process ID a notification names is the sender\'s BackendKeyData';
    $_->terminate for $l, $d, $bystander, $listener, $sender, $direct_sender;
    $p->stop;
}

# ---- item 15 under transaction pooling, one worker: the NOTIFY made on another backend than the login's
{
    my $p = proxy(pool_mode => 'transaction', workers => 1);
    my $listener = login($p->port);
    $listener->query('LISTEN pidch');
    my $sender = login($p->port);
    my $blocker = login($p->port); # logs in on the sender's idle login connection, then holds it
    my $b = $blocker->query('BEGIN; SELECT pg_backend_pid()');
    is $b->{rows}[0][0], $sender->{key_pid}, 'transaction pooling: another client holds the backend the sender logged in with';
    my $q = $sender->query(q{SELECT pg_backend_pid(), pg_notify('pidch', 'elsewhere')});
    isnt $q->{rows}[0][0], $sender->{key_pid}, "... so the sender's NOTIFY runs on another backend";
    is_deeply [map { "$_->{pid}:$_->{payload}" } @{ idle_read($listener, 5, 1) }], ["$sender->{key_pid}:elsewhere"],
      '... and comes with the process ID the sender was given, not that backend\'s';
    $_->terminate for $listener, $sender, $blocker;
    $p->stop;
}

# ---- item 9: a LISTEN the server refuses on the listening connection (a LATIN1 database)
{
    $us->psql_admin(q{CREATE DATABASE latindb OWNER app ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'});
    my $p = proxy(pool_mode => 'transaction');
    my $in_latin = sub {
        my ($port) = @_;
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port, timeout => 30);
        my $r = $w->startup(user => 'app', database => 'latindb', password => 'app-secret',
                            params => { client_encoding => 'UTF8' });
        die 'login: ' . ($r->{error} ? $r->{error}{M} : 'eof') . "\n" unless $r->{ok};
        return $w;
    };
    my $bystander = $in_latin->($p->port);
    is $bystander->query('LISTEN jobs')->{tag}, 'LISTEN', 'a LATIN1 database: a session listens on jobs';
    my ($s, $d) = ($in_latin->($p->port), $in_latin->($us->port));
    my ($pr, $dr) = both($s, $d, encode_utf8(qq{LISTEN ok1; LISTEN "\x{65e5}"}));
    is $pr, ' 22P05 character with byte sequence 0xe6 0x97 0xa5 in encoding "UTF8" has no equivalent in encoding "LATIN1"',
      '... a UTF8 session\'s LISTEN of a name LATIN1 cannot hold gets the server\'s 22P05';
    is $pr, $dr, '... as directly';
    $us->psql_admin(q{SELECT pg_notify('ok1', 'rolled back'), pg_notify('jobs', 'still')}, dbname => 'latindb');
    is_deeply payloads(idle_read($s, 1.5)), payloads(idle_read($d, 1.5)), '... the LISTEN beside it did not take, as directly';
    my ($n, $notices) = idle_read($bystander, 5, 1);
    is_deeply payloads($n), ['jobs:still'], '... and the other session still gets its notifications';
    is_deeply [map { $_->{M} } @$notices], [], '... with no warning that any was lost';
    is $s->query('LISTEN ok2')->{tag}, 'LISTEN', '... and the refused session listens again';
    $us->psql_admin(q{SELECT pg_notify('ok2', 'after')}, dbname => 'latindb');
    is_deeply payloads(idle_read($s, 5, 1)), ['ok2:after'], '... and gets its notifications';
    $_->terminate for $bystander, $s, $d;
    $p->stop;
}

# ---- item 11: a dbname in server_conninfo
{
    my $p = proxy(pool_mode => 'transaction',
                  server_conninfo => "user=$PgNearTest::PGNEAR_USER password=$PgNearTest::PGNEAR_PASSWORD dbname=postgres");
    my $l = login($p->port);
    is $l->query('LISTEN in_movr')->{tag}, 'LISTEN', 'server_conninfo names dbname=postgres: a session of movr listens';
    $us->psql_admin(q{SELECT pg_notify('in_movr', 'postgres')}, dbname => 'postgres');
    direct_notify('in_movr', 'movr');
    is_deeply payloads(idle_read($l, 5, 1)), ['in_movr:movr'], "... and gets movr's notification, not postgres's";
    is $us->psql_admin(q{SELECT datname FROM pg_stat_activity WHERE application_name = 'pgnear listen'}), 'movr',
      "... pgnear's listening connection is in movr";
    $l->terminate;
    $p->stop;
}

done_testing;
