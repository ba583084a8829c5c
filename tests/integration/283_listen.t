# LISTEN and NOTIFY without pinning (pool_mode = transaction, auth = scram;
# proxy/session/notify_hub.h).  A client's LISTEN is answered by pgnear
# and the session is not pinned: with pool_size = 1 another client runs
# between the listener's statements and SHOW CLIENTS shows no pin.  A
# NOTIFY through pgnear and one made directly on the server both reach the
# listener, idle, with the channel, the payload and the sender's PID
# (through pgnear the one its BackendKeyData gave it, 285_listen_fanout.t;
# directly the backend's), as on a direct connection in the same script; the listener's own NOTIFY reaches it too; names are folded
# unless quoted; a Query that begins with a form feed ("\fLISTEN x", a
# blank to the lexer) is answered as "LISTEN x" and does not pin; a notification waits while the listener's transaction is
# open and comes with or after its COMMIT; UNLISTEN, UNLISTEN *, and a
# client that leaves (the listening connection closes once nobody
# listens); a LISTEN inside a transaction block still pins.  A listener
# that does not read while 16 MB of notifications wait for it is ended
# with 54000, another goes on.  Then two
# workers, 20 listeners on a shared channel and one each: 1,000
# notifications through pgnear reach every listener once and in order,
# each worker holding one listening connection; each listener's own
# channel reaches it alone.  The listening connection ended on the
# server: a WARNING to the listeners, and pgnear listens again.  Last,
# under target_session_attrs = nearest (transaction pooling, and session
# pooling's own connections): the session LISTENs and goes on reading on
# the standby, not pinned, while pgnear listens on the primary; a NOTIFY
# there, and the session's own (run on the primary), reach it.  Then
# node-postgres's and psycopg's own LISTEN usage (client.on('notification'),
# conn.notifies()) through transaction pooling, and node-postgres's own
# test file of notifications (notice-tests.js, from the mirror that
# run-node-postgres.sh reads; skipped without one).  Last, a failover: the
# standby promoted while the old primary runs on (fenced): pgnear listens
# on the new primary, the listener is warned once, and only the new
# primary's notifications reach it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IO::Select;
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql);
my $root = "$FindBin::RealBin/../..";

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $auth_dir = tmpdir(name => 'listen-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

my %BASE = (auth => 'scram', auth_file => $userlist, admin_users => 'admin', server_tls => 'disable',
            pool_mode => 'transaction', workers => 1, query_wait_timeout => '2s');

sub proxy { PgNearTest::Proxy->new(regions => [$us], settings => { %BASE, @_ }) }

sub admin_rows {
    my ($p, $sql) = @_;
    my $ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');
    my $out = psql($ci, $sql, args => ['-P', 'tuples_only=off', '-P', 'footer=off']);
    my @lines = split /\n/, $out;
    my @head = split /\|/, (shift(@lines) // ''), -1;
    return map { my %r; @r{@head} = split(/\|/, $_, -1); \%r } @lines;
}

sub login {
    my ($port) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    die 'login failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n" unless $r->{ok};
    $w->{key_pid} = $r->{pid};
    return $w;
}

sub one { my ($w, $sql) = @_; my $q = $w->query($sql); die "$sql: $q->{error}{M}\n" if $q->{error}; $q->{rows}[0][0] }

# What an idle client reads within $secs: notifications, notices, or the end.
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

# A NOTIFY made directly on the primary, as postgres; its backend's PID.
sub direct_notify {
    my ($channel, $payload) = @_;
    return $us->psql_admin(qq{SELECT pg_backend_pid() FROM (SELECT pg_notify('$channel', '$payload')) n},
                           dbname => 'movr');
}

sub listening_backends {
    $us->psql_admin(q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgnear listen'});
}

# ================================================================ one listener, pool_size = 1
{
    my $p = proxy(pool_size => 1);
    my $l = login($p->port);
    my $q = $l->query('LISTEN Jobs');
    is $q->{tag}, 'LISTEN', 'LISTEN answered with its tag';
    is $q->{status}, 'I', '... and ReadyForQuery, idle';
    ok !$q->{error}, '... without an error';
    my $b = login($p->port);
    my $pid_b = one($b, 'SELECT pg_backend_pid()');
    is one($b, 'SELECT 2'), '2', 'pool_size = 1: another client runs after the LISTEN (the listener is not pinned)';
    my @pinned = grep { ($_->{user} // '') eq 'app' && ($_->{pinned} // '') ne '' } admin_rows($p, 'SHOW CLIENTS');
    is scalar(@pinned), 0, 'SHOW CLIENTS: no client pinned' or diag explain \@pinned;
    is listening_backends(), 1, 'one listening connection of pgnear on the primary';

    # A NOTIFY through pgnear: its sender's PID
    my $row = $b->query(q{SELECT pg_backend_pid(), pg_notify('jobs', 'through pgnear')});
    my $sender = $b->{key_pid};
    my $n = idle_read($l, 5, 1);
    is scalar(@$n), 1, 'the idle listener gets a NOTIFY sent through pgnear';
    is_deeply $n->[0], { pid => $sender, channel => 'jobs', payload => 'through pgnear' },
      '... with the channel, the payload and the sender\'s PID (its BackendKeyData\'s)';

    # ... and one made directly, compared with a direct listener
    my $d = login($us->port);
    is $d->query('LISTEN Jobs')->{tag}, 'LISTEN', 'a direct connection LISTENs too';
    my $direct_pid = direct_notify('jobs', 'direct');
    my $nl = idle_read($l, 5, 1);
    my $nd = idle_read($d, 5, 1);
    is_deeply $nl->[0], { pid => $direct_pid, channel => 'jobs', payload => 'direct' },
      'a NOTIFY made on the server directly: the same channel, payload and PID';
    is_deeply $nl, $nd, '... as the direct connection gets';

    # names: folded unless quoted
    is $l->query('LISTEN "Mixed"')->{tag}, 'LISTEN', 'LISTEN of a quoted name';
    direct_notify('mixed', 'folded');
    direct_notify('Mixed', 'quoted');
    $n = idle_read($l, 3, 2);
    is_deeply [map { "$_->{channel}:$_->{payload}" } @$n], ['Mixed:quoted'], 'a quoted name is not folded (only "Mixed" reaches it)';

    # a Query that begins with a form feed, a blank to the server's lexer as to pgnear's: answered
    # as the same LISTEN without it is, and not pinned
    $q = $l->query("\fLISTEN Feed");
    is $q->{tag}, 'LISTEN', 'a Query beginning with a form feed: LISTEN answered';
    ok !$q->{error}, '... without an error';
    my $after_ff = $b->query('SELECT 3');
    is $after_ff->{error} ? "$after_ff->{error}{C} $after_ff->{error}{M}" : $after_ff->{rows}[0][0], '3',
      '... and the listener is not pinned: pool_size = 1, another client runs after it';
    @pinned = grep { ($_->{user} // '') eq 'app' && ($_->{pinned} // '') ne '' } admin_rows($p, 'SHOW CLIENTS');
    is scalar(@pinned), 0, '... SHOW CLIENTS: no client pinned' or diag explain \@pinned;
    direct_notify('feed', 'form feed');
    $n = idle_read($l, 3, 1);
    is_deeply [map { "$_->{channel}:$_->{payload}" } @$n], ['feed:form feed'], '... and its channel reaches it';
    is $l->query('UNLISTEN feed')->{tag}, 'UNLISTEN', '... until UNLISTEN';

    # its own NOTIFY
    $q = $l->query(q{SELECT pg_backend_pid(), pg_notify('jobs', 'self')});
    my @own = @{ $q->{notifications} };
    push @own, @{ idle_read($l, 3, 1 - @own) } if @own < 1;
    is_deeply \@own, [{ pid => $l->{key_pid}, channel => 'jobs', payload => 'self' }],
      'the listener\'s own NOTIFY reaches it, with its own PID';

    # inside a transaction: queued until it ends
    $l->query('BEGIN');
    direct_notify('jobs', 'during');
    $q = $l->query('SELECT 1');
    is scalar(@{ $q->{notifications} }), 0, 'inside its transaction the listener gets no notification';
    $q = $l->query('COMMIT');
    my @after = @{ $q->{notifications} };
    push @after, @{ idle_read($l, 3, 1 - @after) } if @after < 1;
    is_deeply [map { $_->{payload} } @after], ['during'], '... it comes with or after the COMMIT';

    # several statements in one Query; UNLISTEN
    $q = $l->query('UNLISTEN jobs; LISTEN other');
    is_deeply $q->{tags}, ['UNLISTEN', 'LISTEN'], 'UNLISTEN and LISTEN in one Query: a tag each';
    direct_notify('jobs', 'gone');
    direct_notify('other', 'still');
    $n = idle_read($l, 3, 2);
    is_deeply [map { $_->{payload} } @$n], ['still'], 'after UNLISTEN jobs, only the other channels reach it';

    # UNLISTEN *, then nobody listens: the listening connection closes
    is $l->query('UNLISTEN *')->{tag}, 'UNLISTEN', 'UNLISTEN *';
    direct_notify('other', 'none');
    direct_notify('Mixed', 'none');
    is scalar(@{ idle_read($l, 1.5) }), 0, '... no channel reaches it any more';
    ok wait_until(sub { listening_backends() == 0 }, timeout => 5),
      'nobody listens: pgnear\'s listening connection closes';

    # a client that leaves
    my $l2 = login($p->port);
    $l->query('LISTEN jobs');
    $l2->query('LISTEN jobs');
    $l2->terminate;
    direct_notify('jobs', 'after one left');
    is_deeply [map { $_->{payload} } @{ idle_read($l, 3, 1) }], ['after one left'], 'a listener that left: the other still gets them';
    $l->query('UNLISTEN *');
    ok wait_until(sub { listening_backends() == 0 }, timeout => 5), '... and once both are gone from the channel, the connection closes';

    # inside a transaction block it still pins, on the server's own LISTEN
    $q = $l->query('BEGIN; LISTEN blockch; COMMIT');
    ok !$q->{error}, 'LISTEN inside a transaction block runs on the server';
    # (the pin is found when the session's state is read back, after its ReadyForQuery)
    wait_until(sub { @pinned = grep { ($_->{pinned} // '') =~ /LISTEN/ } admin_rows($p, 'SHOW CLIENTS') });
    is scalar(@pinned), 1, '... and pins the session, as before';
    direct_notify('blockch', 'pinned');
    is_deeply [map { $_->{payload} } @{ idle_read($l, 3, 1) }], ['pinned'], '... whose server delivers its notifications';
    $_->terminate for $l, $b, $d;
    $p->stop;
}

# ================================================================ a listener that does not read
{
    my $p = proxy(pool_size => 1);
    my $slow = login($p->port);
    my $reader = login($p->port);
    $_->query('LISTEN big') for $slow, $reader;
    # 4,000 notifications of 8 kB (32 MB), distinct (a transaction's equal ones are sent once)
    $us->psql_admin(q{SELECT count(pg_notify('big', g || repeat('x', 7900))) FROM generate_series(1, 4000) g},
                    dbname => 'movr');
    my $n = idle_read($reader, 60, 4000);
    is scalar(@$n), 4000, 'a listener that reads gets all 4,000 notifications of 8 kB';
    my ($codes, $seen) = ('', 0);
    eval {
        while (my ($t, $m) = $slow->read_msg) {
            $seen++ if $t eq 'A';
            $codes .= PgNearTest::Wire::parse_fields($m)->{C} . ' ' if $t eq 'E';
        }
        1;
    };
    is $codes, '54000 ', 'one that did not read while 16 MB waited for it is ended with 54000';
    cmp_ok $seen, '<', 4000, '... having had part of them (' . $seen . ')';
    is one($reader, 'SELECT 1'), '1', 'the other listener goes on';
    $reader->terminate;
    $p->stop;
}

# ================================================================ 20 listeners, 2 workers, 1,000 notifications
{
    my $p = proxy(pool_size => 5, workers => 2, query_wait_timeout => '20s');
    my @l = map { login($p->port) } 0 .. 19;
    for my $i (0 .. 19) {
        my $q = $l[$i]->query("LISTEN burst; LISTEN own_$i");
        is_deeply $q->{tags}, ['LISTEN', 'LISTEN'], "listener $i listens" if $i == 0;
    }
    is listening_backends(), 2, 'two workers: one listening connection each';
    my $s = login($p->port);
    for my $batch (0 .. 9) {
        my $sql = join('; ', 'BEGIN', (map { "NOTIFY burst, '" . ($batch * 100 + $_) . "'" } 1 .. 100), 'COMMIT');
        my $q = $s->query($sql);
        die "burst: $q->{error}{M}\n" if $q->{error};
    }
    $s->query("NOTIFY own_7, 'seven'");
    my $all_ok = 1;
    for my $i (0 .. 19) {
        my $n = idle_read($l[$i], 20, $i == 7 ? 1001 : 1000);
        my @burst = map { $_->{payload} } grep { $_->{channel} eq 'burst' } @$n;
        my @own = grep { $_->{channel} ne 'burst' } @$n;
        my $ok = "@burst" eq join(' ', 1 .. 1000) && @own == ($i == 7 ? 1 : 0);
        $all_ok &&= $ok;
        diag "listener $i: " . scalar(@burst) . ' burst notifications, ' . scalar(@own) . ' own' unless $ok;
    }
    ok $all_ok, '1,000 notifications: each of 20 listeners on 2 workers gets every one once, in order; own_7 reaches listener 7 alone';

    # the listening connection ended on the server: a WARNING, and listening again
    $us->psql_admin(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgnear listen'});
    my ($n, $notices) = idle_read($l[0], 5, 0);
    ok((grep { ($_->{M} // '') =~ /notifications may have been lost/ } @$notices),
       'the listening connection ended: the listeners get a WARNING that notifications may have been lost')
      or diag explain $notices;
    ok wait_until(sub { listening_backends() == 2 }, timeout => 10), '... and pgnear listens again';
    $s->query("NOTIFY burst, 'again'");
    my $got = 0;
    for my $i (0 .. 19) {
        my ($nn) = idle_read($l[$i], 5, 1);
        $got++ if grep { $_->{payload} eq 'again' } @$nn;
    }
    is $got, 20, '... and every listener gets the next notification, once';
    $_->terminate for @l, $s;
    $p->stop;
}

# ================================================================ nearest: the session reads near, pgnear listens on the primary
my $eu;
{
    require_tool('pg_basebackup');
    $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
    $eu->wait_streaming;
    for my $mode ('transaction', 'session') {
        my $p = PgNearTest::Proxy->new(
            regions  => [{ name => 'us-east', location => '39.04, -77.49', hosts => [$us] },
                         { name => 'eu-west', location => '53.35, -6.26', hosts => [$eu] }],
            settings => { %BASE, pool_mode => $mode, target_session_attrs => 'nearest',
                          query_wait_timeout => '20s' });
        my $login = sub {
            my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
            my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                                params => { options => '-c pgnear.location=53.35,-6.26' });
            die 'nearest login: ' . ($r->{error} ? $r->{error}{M} : 'eof') . "\n" unless $r->{ok};
            $w->{key_pid} = $r->{pid};
            return $w;
        };
        ok wait_until(sub { (grep { $_->{region} eq 'eu-west' && $_->{role} eq 'standby' } admin_rows($p, 'SHOW REGIONS')) == 1 },
                      timeout => 30), "nearest, pool_mode = $mode: the standby is known";
        my $n = $login->();
        is one($n, q{SELECT current_setting('cluster_name')}), 'eu-west', "nearest, $mode: a read runs on the standby";
        is $n->query('LISTEN near_ch')->{tag}, 'LISTEN', "nearest, $mode: LISTEN answered";
        is one($n, q{SELECT current_setting('cluster_name')}), 'eu-west', "nearest, $mode: ... and the next read still runs near";
        my @pinned = grep { ($_->{pinned} // '') ne '' } admin_rows($p, 'SHOW CLIENTS');
        is scalar(@pinned), 0, "nearest, $mode: the session is not pinned to the primary" or diag explain \@pinned;
        is listening_backends(), 1, "nearest, $mode: pgnear listens on the primary";
        my $pid = direct_notify('near_ch', 'from the primary');
        is_deeply scalar(idle_read($n, 5, 1)), [{ pid => $pid, channel => 'near_ch', payload => 'from the primary' }],
          "nearest, $mode: a NOTIFY on the primary reaches the session, with its sender's PID";
        my $q = $n->query(q{SELECT pg_backend_pid(), current_setting('cluster_name'), pg_notify('near_ch', 'own')});
        is $q->{rows}[0][1], 'us-east', "nearest, $mode: its own NOTIFY runs on the primary";
        my @own = (@{ $q->{notifications} }, @{ idle_read($n, 3, 1 - @{ $q->{notifications} }) });
        is_deeply \@own, [{ pid => $n->{key_pid}, channel => 'near_ch', payload => 'own' }],
          "nearest, $mode: ... and reaches it once, with the PID its BackendKeyData gave it (the standby backend's)";
        $n->terminate;
        ok wait_until(sub { listening_backends() == 0 }, timeout => 5), "nearest, $mode: it left: the listening connection closes";
        $p->stop;
    }
}

# ================================================================ drivers' own LISTEN
SKIP: {
    # (tests/node/listen_client.js and tests/clients/listen_client.py)
    my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : undef;
    my $have_node = -d "$root/tests/node/node_modules/pg";
    my $have_psycopg = $python && system($python, '-c', 'import psycopg') == 0;
    skip 'node-postgres or psycopg missing (scripts/install-deps.sh)', 4 unless $have_node && $have_psycopg;
    my $p = proxy(pool_size => 1);
    for my $case (['node-postgres', ['node', "$root/tests/node/listen_client.js"]],
                  ['psycopg', [$python, "$root/tests/clients/listen_client.py"]]) {
        my ($name, $cmd) = @$case;
        my ($rc, $out, $err) = run_cmd([@$cmd, '--port', $p->port], timeout => 60);
        is $out =~ /^(ok.*)$/m ? $1 : "rc=$rc $out $err", 'ok 50 notifications, own pid, other client ran',
          "$name: LISTEN through transaction pooling, as the driver does it";
    }
    # node-postgres's own test file of notifications (its suite's runner, at the commit
    # run-node-postgres.sh pins), over the pg that tests/node installs, where a mirror has it
    my $mirror = ($ENV{MIRROR_ROOT} // '/work/.mirror') . '/brianc+node-postgres/repo';
    my $pin = 'c9e57617bc92c2ded23a75345f50eadc527bd131';
    my $dir = tmpdir(name => 'node-pg-suite');
    SKIP: {
        skip "node-postgres's own tests: no mirror at $mirror (MIRROR_ROOT)", 2
          unless system("git --git-dir='$mirror' archive $pin packages/pg/test 2>/dev/null | tar -x -C '$dir' 2>/dev/null") == 0
              && -f "$dir/packages/pg/test/integration/client/notice-tests.js";
        symlink("$root/tests/node/node_modules/pg/lib", "$dir/packages/pg/lib") or die "symlink: $!";
        # the one module the suite's runner needs beyond pg's: async.queue with one worker
        mkdir "$dir/packages/pg/node_modules";
        mkdir "$dir/packages/pg/node_modules/async";
        write_file("$dir/packages/pg/node_modules/async/index.js", <<'JS');
'use strict'
exports.queue = (worker) => {
  const tests = []
  let busy = false
  const next = () => {
    if (busy || tests.length === 0) return
    busy = true
    worker(tests.shift(), () => { busy = false; setImmediate(next) })
  }
  return { push: (t) => { tests.push(t); setImmediate(next) }, drain: null }
}
JS
        local @ENV{qw(PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE)} = ('127.0.0.1', $p->port, 'app', 'app-secret', 'movr');
        my ($rc, $out, $err) = run_cmd(['node', "$dir/packages/pg/test/integration/client/notice-tests.js"], timeout => 60);
        is $rc, 0, 'node-postgres\'s own notice-tests.js through transaction pooling (two clients LISTEN, one NOTIFYs)'
          or diag "$out$err";
        like $out, qr/emits notify message \x{2714}|emits notify message \S/, '... its notification test passed' or diag $out;
    }
    $p->stop;
}

# ================================================================ failover: the standby promoted, the old primary fenced
{
    my $p = PgNearTest::Proxy->new(
        regions  => [{ name => 'us-east', location => '39.04, -77.49', hosts => [$us] },
                     { name => 'eu-west', location => '53.35, -6.26', hosts => [$eu] }],
        settings => { %BASE, health_check_interval => '1s' });
    my $l = login($p->port);
    is $l->query('LISTEN fo_ch')->{tag}, 'LISTEN', 'failover: a listener';
    is listening_backends(), 1, 'failover: pgnear listens on us-east, the primary';
    $eu->promote;
    ok wait_until(sub { $eu->psql_admin(q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgnear listen'}) == 1 },
                  timeout => 30), 'eu-west promoted, us-east fenced as a former primary: pgnear listens on eu-west';
    ok wait_until(sub { listening_backends() == 0 }, timeout => 5), '... and no more on us-east';
    my ($n, $notices) = idle_read($l, 3, 0);
    is scalar(grep { ($_->{M} // '') eq 'notifications may have been lost' && ($_->{S} // '') eq 'WARNING' } @$notices), 1,
      'the listener gets one WARNING that notifications may have been lost' or diag explain $notices;
    like $notices->[0]{D} // '', qr/primary is now/, '... which says why';
    direct_notify('fo_ch', 'old primary');
    my $pid = $eu->psql_admin(q{SELECT pg_backend_pid() FROM (SELECT pg_notify('fo_ch', 'new primary')) n}, dbname => 'movr');
    is_deeply scalar(idle_read($l, 5, 2)), [{ pid => $pid, channel => 'fo_ch', payload => 'new primary' }],
      'a NOTIFY on the new primary reaches it; one on the fenced old primary does not';
    $l->terminate;
    $p->stop;
}

done_testing;
