# query_wait_notify (pool_wait.c): a client whose transaction has waited
# that long for a server connection gets one NOTICE (00000) naming the
# region, the database and user, and why it waits: the pool full at
# pool_size, the host at max_db_connections (a fetcher's wait, told to its
# client), a PAUSE of the region, a failover (no read-write server up,
# failover_wait); a nearest session's alike.  Once a wait, however long it
# goes on; a new wait is told anew; the query then runs as ever; psql
# prints it.  0, the default, sends nothing; a reload turns it on for the
# next wait.  A login waiting under session pooling, before any
# AuthenticationOk (libpq takes no notice there), is not told and logs in.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Select;
use POSIX ();
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool('psql');

# One server; pgnear's console user and the application's, both checked by pgnear (auth = scram).
my $us = PgNearTest::Cluster->new(name => 'us-east');
my $auth_dir = tmpdir(name => 'notify-auth');
write_file("$auth_dir/users.txt", join('', map { qq{"$_->[0]" "$_->[1]"\n} }
    ['admin', make_scram_verifier('admin-secret')], ['app', $us->scram_verifier('app')]));

# Transaction pooling, one connection per pool (a worker's share of it on two workers).
sub proxy {
    my %s = (auth => 'scram', auth_file => "$auth_dir/users.txt", admin_users => 'admin', server_tls => 'disable',
             pool_mode => 'transaction', workers => 2, pool_size => 1, query_wait_timeout => '30s', @_);
    return PgNearTest::Proxy->new(regions => [$us], settings => \%s);
}

sub admin_ci { $_[0]->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret') }
sub cl_waiting { my $row = $_[0]->pool_row('movr'); $row ? $row->{cl_waiting} : -1 }
sub login { $_[0]->wire_login(user => 'app', database => 'movr', password => 'app-secret') }
sub one { my ($w, $sql) = @_; my $q = $w->query($sql); die "$sql: $q->{error}{M}\n" if $q->{error}; $q->{rows}[0][0] }

# The first message T gets within $secs: its type, fields and when it came; undef when none.
sub next_notice {
    my ($t, $secs) = @_;
    return undef unless IO::Select->new($t->socket)->can_read($secs);
    my ($type, $m) = $t->read_msg;
    return { type => $type // 'eof', at => time, f => PgNearTest::Wire::parse_fields($m // '') };
}

# T sends $sql while H holds the connection: the NOTICE T gets, checked to come after $after s.
sub told {
    my ($t, $sql, $what, $after) = @_;
    my $t0 = time;
    $t->send_query($sql);
    my $n = next_notice($t, 15);
    is $n && $n->{type}, 'N', "$what: T is told with a NoticeResponse";
    cmp_ok(($n ? $n->{at} : $t0) - $t0, '>=', $after - 0.1, "$what: after query_wait_notify ($after s)");
    return $n // { f => {} };
}

# Told once: nothing more while T waits on; H's COMMIT lets T's query run, with no second NOTICE.
sub once_then_runs {
    my ($p, $h, $t, $value, $what) = @_;
    ok !IO::Select->new($t->socket)->can_read(1.5), "$what: once";
    $h->query('COMMIT');
    my $res = $t->read_result;
    is $res->{rows}[0][0], $value, "$what: T runs" or diag explain $res;
    is scalar @{ $res->{notices} }, 0, "$what: no second NOTICE";
    $_->terminate for $h, $t;
    $p->stop;
}

my $POOL_MSG = qr/^waiting for a server connection of region us-east: no server connection free for database "movr", user "app"$/;

# ================================================================ transaction pooling, pool_size
# H holds the only connection (one worker); T's query waits: after 1 s it
# hears why, once, while it waits 2 s more; H's COMMIT lets it run.
{
    my $p = proxy(workers => 1, query_wait_notify => '1s');
    my ($h, $t) = (login($p), login($p));
    is one($h, 'BEGIN'), undef, 'H: BEGIN holds the only connection';
    my $n = told($t, 'SELECT 41', 'pool_size', 1);
    is $n->{f}{S}, 'NOTICE', 'severity NOTICE';
    is $n->{f}{V}, 'NOTICE', 'non-localized severity NOTICE';
    is $n->{f}{C}, '00000', 'SQLSTATE 00000';
    like $n->{f}{M}, $POOL_MSG, 'the message names region, database and user: ' . $n->{f}{M};
    like $n->{f}{D}, qr/^The pool of region us-east is full: its 1 server connections \(pool_size\) are in use\. This client has waited \d+\.\d s; after query_wait_timeout \(30 s\) it gets an error\.$/,
      'the detail names the limit and the numbers: ' . ($n->{f}{D} // '');
    is cl_waiting($p), 1, 'T still waits';
    ok !IO::Select->new($t->socket)->can_read(2.0), 'T: nothing more while it waits 2 s on (one NOTICE a wait)';
    is $h->query('COMMIT')->{tag}, 'COMMIT', 'H: COMMIT gives the connection back';
    my $res = $t->read_result;
    is $res->{rows}[0][0], '41', 'T: its query runs as ever' or diag explain $res;
    is scalar @{ $res->{notices} }, 0, 'T: no second NOTICE with its answer';
    is $res->{status}, 'I', 'T: idle after it';

    # A new wait is told anew.
    is one($h, 'BEGIN'), undef, 'H: BEGIN again';
    told($t, 'SELECT 42', 'T\'s next wait', 1);
    $h->query('COMMIT');
    $res = $t->read_result;
    is $res->{rows}[0][0], '42', 'T: ... and runs';

    $h->query('COMMIT');
    $_->terminate for $h, $t;
    $p->stop;
}

# ================================================================ psql prints it
# psql logs in while the connection is free, then (its \! command) lets a
# child's H take it with BEGIN before its SELECT: the SELECT waits, psql
# prints the NOTICE on stderr, and its answer once H commits.
{
    my $p = proxy(workers => 1, query_wait_notify => '1s');
    my $h = login($p);
    my ($in, $held) = ("$auth_dir/psql-in", "$auth_dir/psql-held");
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        wait_until(sub { -f $in }, timeout => 30) or POSIX::_exit(1);
        one($h, 'BEGIN');
        write_file($held, 'held');
        sleep 2.5; # T waits past query_wait_notify (1 s)
        $h->query('COMMIT');
        POSIX::_exit(0);
    }
    my ($rc, $out, $err) = psql($p->conninfo(dbname => 'movr', user => 'app', password => 'app-secret'), undef,
        verbose => 1, args => ['-f', '-'],
        stdin => "\\! touch $in; while [ ! -f $held ]; do sleep 0.1; done\nSELECT 5;\n");
    waitpid($pid, 0);
    is $?, 0, 'psql: H held the connection meanwhile';
    is $rc, 0, 'psql: exit 0' or diag $err;
    is $out, '5', 'psql: its SELECT ran once H committed';
    like $err, qr/NOTICE:  00000: waiting for a server connection of region us-east: no server connection free for database "movr", user "app"\nDETAIL:  The pool of region us-east is full/,
      'psql prints the NOTICE' or diag $err;
    is scalar(() = $err =~ /NOTICE:/g), 1, 'psql: one NOTICE';
    $h->terminate;
    $p->stop;
}

# ================================================================ max_db_connections, two workers
# One worker, pool_size 2 but the host at max_db_connections 1: T's
# transaction waits behind a fetcher, whose login waits in the queue; its
# client is told (the host named).  Then two workers: H and T on the same
# worker or not, T waits in the queue (its worker's share of pool_size) or
# behind a fetcher (the host); either way it is told which, once.
for my $workers (1, 2) {
    my $p = proxy(workers => $workers, pool_size => $workers == 1 ? 2 : 1, query_wait_notify => '1s',
                  max_db_connections => 1);
    my ($h, $t) = (login($p), login($p));
    is one($h, 'BEGIN'), undef, "workers $workers: H holds the host's only connection";
    my $n = told($t, 'SELECT 43', "workers $workers", 1);
    my $host = qr/no server connection free on host 127\.0\.0\.1:\d+/;
    like $n->{f}{M}, $workers == 1 ? qr/^waiting for a server connection of region us-east: $host$/
                                   : qr/^waiting for a server connection of region us-east: (?:$host|no server connection free for database "movr", user "app")$/,
      "workers $workers: " . ($n->{f}{M} // '');
    like $n->{f}{D}, $workers == 1 ? qr/^The host has 1 server connections \(max_db_connections\), all in use\. This client has waited/
                                   : qr/\((?:this worker's share of pool_size|max_db_connections)\)/,
      "workers $workers: " . ($n->{f}{D} // '');
    once_then_runs($p, $h, $t, '43', "workers $workers");
}

# ================================================================ nearest
# A nearest session's transaction waits as any other: told the same.
{
    my $p = proxy(workers => 1, query_wait_notify => '1s', target_session_attrs => 'nearest');
    my ($h, $t) = (login($p), login($p));
    is one($h, 'BEGIN'), undef, 'nearest: H holds the only connection';
    my $n = told($t, 'SELECT 47', 'nearest', 1);
    like $n->{f}{M}, $POOL_MSG, 'nearest: ' . ($n->{f}{M} // '');
    once_then_runs($p, $h, $t, '47', 'nearest');
}

# ================================================================ a PAUSE
# T waits in the queue when PAUSE holds the region (waiting for H's
# transaction to end): told after 4 s, it hears that the region is paused.
{
    my $p = proxy(workers => 1, query_wait_notify => '4s');
    my ($h, $t) = (login($p), login($p));
    is one($h, 'BEGIN'), undef, 'PAUSE: H holds the only connection';
    my $t0 = time;
    $t->send_query('SELECT 7');
    ok wait_until(sub { cl_waiting($p) >= 1 }, timeout => 10), 'PAUSE: T waits';
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        eval { psql(admin_ci($p), 'PAUSE "us-east"', verbose => 1) }; # canceled by the RESUME
        POSIX::_exit(0);
    }
    ok wait_until(sub { grep { $_->{region} eq 'us-east' && $_->{paused} =~ /^(?:t|true|1)$/ } $p->admin_rows('SHOW REGIONS') },
                  timeout => 10), 'PAUSE: the region is paused';
    cmp_ok time - $t0, '<', 3.5, 'PAUSE: ... before T is due its NOTICE';
    my $n = next_notice($t, 15);
    is $n && $n->{type}, 'N', 'PAUSE: T is told';
    like $n->{f}{M}, qr/^waiting for a server connection of region us-east: the region is paused \(PAUSE\)$/,
      'PAUSE: ' . ($n->{f}{M} // '');
    like $n->{f}{D}, qr/^Its clients wait until an administrator lets it go \(RESUME\)\. This client has waited \d/,
      'PAUSE: ' . ($n->{f}{D} // '');
    is $h->query('COMMIT')->{tag}, 'COMMIT', 'PAUSE: H commits (and is held)';
    is psql(admin_ci($p), 'RESUME "us-east"'), 'RESUME', 'RESUME';
    waitpid($pid, 0);
    my $res = $t->read_result;
    is $res->{rows}[0][0], '7', 'PAUSE: T runs after RESUME' or diag explain $res;
    is scalar @{ $res->{notices} }, 0, 'PAUSE: told once';
    $_->terminate for $h, $t;
    $p->stop;
}

# ================================================================ 0, the default
{
    my $p = proxy(max_db_connections => 1);
    my ($cfg) = grep { $_->{setting} eq 'query_wait_notify' } $p->admin_rows('SHOW CONFIG');
    is $cfg && $cfg->{value}, '0ms', 'default: query_wait_notify 0';
    my ($h, $t) = (login($p), login($p));
    is one($h, 'BEGIN'), undef, 'default: H holds the only connection';
    $t->send_query('SELECT 44');
    ok wait_until(sub { cl_waiting($p) >= 1 }, timeout => 10), 'default: T waits';
    ok !IO::Select->new($t->socket)->can_read(6), 'default: nothing comes in 6 s';
    $h->query('COMMIT');
    my $res = $t->read_result;
    is $res->{rows}[0][0], '44', 'default: T runs';
    is scalar @{ $res->{notices} }, 0, 'default: no NOTICE at all';

    # A reload (the console's SET) turns it on for the next wait of the same sessions.
    is psql(admin_ci($p), 'SET query_wait_notify = 1'), 'SET', 'reload: SET query_wait_notify = 1';
    is one($h, 'BEGIN'), undef, 'reload: H holds the only connection';
    told($t, 'SELECT 46', 'reload', 1);
    $h->query('COMMIT');
    $res = $t->read_result;
    is $res->{rows}[0][0], '46', 'reload: T runs';
    $_->terminate for $h, $t;
    $p->stop;
}

# ================================================================ session pooling: a login waits
# Under session pooling the second client waits at its login, before any
# AuthenticationOk: it is not told (libpq would fail the login on a
# NoticeResponse there), and logs in once H leaves.
{
    my $p = proxy(pool_mode => 'session', query_wait_notify => '1s');
    my $h = login($p);
    my $done = "$auth_dir/session-login";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
        my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
        my $v = $r->{ok} ? eval { one($w, 'SELECT 45') } // "query failed: $@" : 'login failed';
        write_file($done, sprintf('%s %d', $v, scalar @{ $r->{notices} }));
        $w->terminate if $r->{ok};
        POSIX::_exit(0);
    }
    ok wait_until(sub { cl_waiting($p) >= 1 }, timeout => 10), 'session: L\'s login waits';
    sleep 2.5;
    is cl_waiting($p), 1, 'session: L waits past query_wait_notify';
    $h->terminate;
    waitpid($pid, 0);
    is slurp_file($done), '45 0', 'session: L logs in, untold, and its query runs';
    is cl_waiting($p), 0, 'session: nobody waits';
    $p->stop;
}

# ================================================================ a failover wait
# The primary stops: T's next transaction needs a read-write server and
# none is up, so its fetcher waits up to failover_wait; T hears so after
# 1 s, and its query runs once the server is back.
{
    my $p = proxy(workers => 1, query_wait_notify => '1s', target_session_attrs => 'read-write',
                  failover_wait => '60s');
    my $t = login($p);
    is one($t, 'SELECT 1'), '1', 'failover: T runs on the primary';
    $us->stop;
    ok wait_until(sub { grep { $_->{region} eq 'us-east' && $_->{up} =~ /^(?:f|false|0)$/ } $p->admin_rows('SHOW REGIONS') },
                  timeout => 30), 'failover: the server is seen down';
    my $n = told($t, 'SELECT 48', 'failover', 1);
    like $n->{f}{M}, qr/^waiting for a server connection of region us-east: no server that is read-write is available$/,
      'failover: ' . ($n->{f}{M} // '');
    like $n->{f}{D}, qr/^The session waits up to failover_wait \(60 s\) for one, a standby promoted or a server back\. This client has waited \d/,
      'failover: ' . ($n->{f}{D} // '');
    $us->start;
    my $res = $t->read_result;
    is $res->{rows}[0][0], '48', 'failover: T runs once the server is back' or diag explain $res;
    is scalar @{ $res->{notices} }, 0, 'failover: told once';
    $t->terminate;
    $p->stop;
}

done_testing();
