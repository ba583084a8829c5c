# One queue per worker for a full pool, logins and transactions alike
# (pool_wait.h): a login that began waiting before a transaction gets the
# connection given back first, in arrival order; both are counted in
# SHOW POOLS' cl_waiting while they wait; a transaction waiting in the
# queue when a PAUSE comes runs after RESUME; a login and a transaction
# that wait past query_wait_timeout get the same 53300, naming the pool.
# The logins that queue have startup parameters no connection of the pool
# logged in with: one with the same is answered without a server
# (login_greet.h, 314_login_without_server.t).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Select;
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool('psql');

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $auth_dir = tmpdir(name => 'queue-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

my %BASE = (auth => 'scram', auth_file => $userlist, admin_users => 'admin', server_tls => 'disable',
            pool_mode => 'transaction', workers => 1, pool_size => 1, query_wait_timeout => '20s');

sub proxy { PgNearTest::Proxy->new(regions => [$us], settings => { %BASE, @_ }) }

sub admin_ci { my ($p) = @_; $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret') }

sub cl_waiting {
    my ($p) = @_;
    my ($row) = grep { $_->{database} eq 'movr' } $p->admin_rows('SHOW POOLS');
    return $row ? $row->{cl_waiting} : -1;
}

sub login {
    my ($p, @params) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret', params => {@params});
    die 'login through pgnear failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n"
      unless $r->{ok};
    return $w;
}

sub one { my ($w, $sql) = @_; my $q = $w->query($sql); die "$sql: $q->{error}{M}\n" if $q->{error}; $q->{rows}[0][0] }

# ================================================================ arrival order
# H holds the pool's only connection; a new login L waits for it, then a
# logged-in client T's transaction does.  Given back, the connection goes to
# L first: L is in within a moment, while T's transaction (3 seconds long)
# runs after it.  Served the other way round, L would wait for T's 3 s.
{
    my $p = proxy();
    my ($h, $t) = (login($p), login($p));
    is one($h, 'BEGIN'), undef, 'H: BEGIN holds the only connection';
    my $done = "$auth_dir/l-done";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $l = eval { login($p, application_name => 'L') };
        write_file($done, $l ? sprintf('%.3f', time) : "failed: $@");
        $l->terminate if $l;
        exit 0;
    }
    ok wait_until(sub { cl_waiting($p) >= 1 }, timeout => 10), 'L: its login waits for the full pool';
    $t->send_query('SELECT pg_sleep(3), 2');
    ok wait_until(sub { cl_waiting($p) >= 2 }, timeout => 10), 'T: its transaction waits behind L';
    my $committed = time;
    is $h->query('COMMIT')->{tag}, 'COMMIT', 'H: COMMIT gives the connection back';
    waitpid($pid, 0);
    my $l_at = slurp_file($done);
    like $l_at, qr/^\d+\.\d+$/, 'L: logged in' or diag $l_at;
    cmp_ok $l_at - $committed, '<', 2.5, sprintf('L came first: in %.2f s, not after T\'s transaction',
                                                 $l_at - $committed);
    my $res = $t->read_result;
    is $res->{rows}[0][1], '2', 'T: its transaction ran after L' or diag explain $res;
    is cl_waiting($p), 0, 'nobody waits any more';
    $_->terminate for $h, $t;
    $p->stop;
}

# ================================================================ a held region
# T waits in the queue while PAUSE holds the region: H, held after its
# COMMIT with its connection, hangs up (read once the hold ends); T's
# transaction runs only after RESUME, on the connection H gives back.
# (That the fast way takes nothing in a held region is test_host_order's.)
{
    my $p = proxy();
    my ($h, $t) = (login($p), login($p));
    is one($h, 'BEGIN'), undef, 'H: BEGIN holds the only connection';
    $t->send_query('SELECT 7');
    ok wait_until(sub { cl_waiting($p) >= 1 }, timeout => 10), 'T: its transaction waits';
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        psql(admin_ci($p), 'PAUSE "us-east"', verbose => 1);
        exit 0;
    }
    sleep 0.5;
    is $h->query('COMMIT')->{tag}, 'COMMIT', 'H: COMMIT while PAUSE waits (H is held)';
    $h->terminate;
    ok !IO::Select->new($t->socket)->can_read(1.0), 'T: its transaction does not run while the region is held';
    is cl_waiting($p), 1, 'T: still counted as waiting';
    is psql(admin_ci($p), 'RESUME "us-east"'), 'RESUME', 'RESUME';
    waitpid($pid, 0);
    my $res = $t->read_result;
    is $res->{rows}[0][0], '7', 'T: its transaction runs after RESUME' or diag explain $res;
    $t->terminate;
    $p->stop;
}

# The same, but H stays: held at the ReadyForQuery of its COMMIT, before
# transaction pooling could let its connection go, it lets it go at RESUME,
# and T's transaction runs then, not when H next sends something.
{
    my $p = proxy();
    my ($h, $t) = (login($p), login($p));
    is one($h, 'BEGIN'), undef, 'H stays: BEGIN holds the only connection';
    $t->send_query('SELECT 8');
    ok wait_until(sub { cl_waiting($p) >= 1 }, timeout => 10), 'H stays: T\'s transaction waits';
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        psql(admin_ci($p), 'PAUSE "us-east"', verbose => 1);
        exit 0;
    }
    sleep 0.5;
    is $h->query('COMMIT')->{tag}, 'COMMIT', 'H stays: COMMIT while PAUSE waits (H is held)';
    ok !IO::Select->new($t->socket)->can_read(1.0), 'H stays: T does not run while the region is held';
    is psql(admin_ci($p), 'RESUME "us-east"'), 'RESUME', 'H stays: RESUME';
    waitpid($pid, 0);
    ok(IO::Select->new($t->socket)->can_read(5), 'H stays: T\'s transaction runs at RESUME, H idle');
    my $res = $t->read_result;
    is $res->{rows}[0][0], '8', 'H stays: ... with its answer' or diag explain $res;
    is one($h, 'SELECT 9'), 9, 'H stays: H runs its next transaction after T';
    $_->terminate for $h, $t;
    $p->stop;
}

# ================================================================ one timeout, one answer
# A login and a transaction that wait past query_wait_timeout get the same
# 53300, naming the pool.
{
    my $p = proxy(query_wait_timeout => '1s');
    my ($h, $t) = (login($p), login($p));
    is one($h, 'BEGIN'), undef, 'H: BEGIN holds the only connection';
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $t0 = time;
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { application_name => 'late' });
    my $login_wait = time - $t0;
    is sqlstate($r->{error}), '53300', 'a login past query_wait_timeout: 53300';
    cmp_ok $login_wait, '>=', 0.8, sprintf('after query_wait_timeout (%.2f s)', $login_wait);
    $t0 = time;
    my $res = $t->query('SELECT 1');
    my $txn_wait = time - $t0;
    is sqlstate($res->{error}), '53300', 'a transaction past query_wait_timeout: 53300';
    cmp_ok $txn_wait, '>=', 0.8, sprintf('after query_wait_timeout (%.2f s)', $txn_wait);
    cmp_ok $txn_wait, '<', 2.5, 'counted once';
    is $res->{error}{M}, $r->{error}{M}, 'the same message: ' . ($res->{error}{M} // '');
    $h->query('COMMIT');
    is one($h, 'SELECT 3'), '3', 'the pool serves again';
    $_->terminate for $h;
    $p->stop;
}

done_testing();
