# A login under transaction pooling answered without a server connection
# (login_greet.h): once a connection of its pool logged in with exactly its
# startup parameters, a client is told what that connection was told —
# every ParameterStatus value as a direct login gets them — with a key of
# pgnear's, and takes a connection only for its first transaction.  So a
# login is answered at once while its pool of one is busy, its query then
# waits its turn; its cancel key reaches the backend its query runs on;
# other startup parameters log in through a server first, then are answered
# too; a promotion's in_hot_standby is what the next login is told; a host
# that is down answers no login (08001 as before); session pooling and
# auth = passthrough are answered by a server as before.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pg_basebackup);

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
$eu->wait_streaming;
ok $eu->wait_replay($us->current_lsn), 'the standby replayed the setup';

my $auth_dir = tmpdir(name => 'greet-auth');
write_file("$auth_dir/userlist.txt",
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});
my %BASE = (auth => 'scram', auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
            server_tls => 'disable', pool_mode => 'transaction', pool_size => 1,
            query_wait_timeout => '30s', health_check_interval => '1s', workers => 1);
my @REGIONS = ({ name => 'us-east', location => '39.04, -77.49', hosts => [$us] },
               { name => 'eu-west', location => '53.35, -6.26', hosts => [$eu] });
my $DUBLIN = '-c pgnear.location=53.35,-6.26';

my $MPORT = free_port();
my $p = PgNearTest::Proxy->new(regions => \@REGIONS, settings => { %BASE, metrics_addr => "127.0.0.1:$MPORT" });
ok wait_until(sub { grep { $_->{region} eq 'eu-west' && $_->{role} eq 'standby' } $p->admin_rows('SHOW REGIONS') },
              timeout => 30), 'the checks know eu-west as a standby';

sub login_to {
    my ($port, %params) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port, timeout => 40);
    my $t0 = time;
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret', params => {%params});
    die 'login failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n" unless $r->{ok};
    $r->{took} = time - $t0;
    return ($w, $r);
}

# Through pgnear from Dublin (eu-west), with params; its ParameterStatus, key and time in $r.
sub dublin {
    my ($proxy, %params) = @_;
    my $opt = delete $params{options};
    return login_to($proxy->port, %params, options => $DUBLIN . (defined $opt ? " $opt" : ''));
}

# The same directly on the standby: what the client would be told there.
sub direct {
    my (%params) = @_;
    my ($w, $r) = login_to($eu->port, %params);
    $w->terminate;
    return $r->{params};
}

sub one { my ($w, $sql) = @_; my $q = $w->query($sql); die "$sql: $q->{error}{M}\n" if $q->{error}; $q->{rows}[0][0] }

sub stat_value {
    my ($proxy, $name) = @_;
    my ($row) = grep { $_->{stat} eq $name } $proxy->admin_rows('SHOW STATS');
    return $row ? $row->{value} : undef;
}

sub greeted_since { my ($proxy, $off) = @_; scalar(() = substr($proxy->log_contents, $off) =~ /login answered as server connection/g) }

# ================================================================ a busy pool of one
my ($a, $ra) = dublin($p);
my $off = $p->log_size;
is greeted_since($p, 0), 0, 'the first login is answered by a server (nothing of its pool has logged in)';
is $ra->{params}{in_hot_standby}, 'on', '... the standby\'s: in_hot_standby on';
is one($a, 'BEGIN; SELECT 1'), 1, 'client A holds the pool\'s one connection in a transaction';

my ($b, $rb) = dublin($p);
is greeted_since($p, $off), 1, 'client B\'s login is answered as A\'s connection logged in';
cmp_ok $rb->{took}, '<', 10, sprintf('... without waiting for the pool, which A holds (%.2f s)', $rb->{took});
is_deeply $rb->{params}, direct(), '... every ParameterStatus value as a direct login\'s'
  or diag explain { got => $rb->{params}, direct => direct() };
ok $rb->{key} && $rb->{pid}, '... and BackendKeyData';
is stat_value($p, 'logins_without_server'), 1, 'SHOW STATS: logins_without_server 1';
my (undef, $body) = http_get($MPORT, '/metrics');
like $body // '', qr/^pgnear_logins_without_server_total 1$/m, 'the metric says so too';

$b->send_query('SELECT 2');
ok wait_until(sub { grep { $_->{database} eq 'movr' && $_->{region} eq 'eu-west' && $_->{cl_waiting} == 1 } $p->admin_rows('SHOW POOLS') }, timeout => 10, interval => 0.05),
  'B\'s first query waits for the pool\'s connection (SHOW POOLS cl_waiting 1)';
is one($a, 'COMMIT'), undef, 'A commits';
my $q = $b->read_result;
is $q->{rows}[0][0], 2, '... and B\'s query runs then';

# ================================================================ cancel
$b->send_query('SELECT pg_sleep(20)');
ok wait_until(sub { $eu->psql_admin(q{SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)' AND wait_event = 'PgSleep'}) eq '1' },
              timeout => 10, interval => 0.05), 'B sleeps on the standby';
my $t1 = time;
PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $rb->{pid}, key => $rb->{key});
$q = $b->read_result;
is $q->{error}{C}, '57014', 'the key B was given cancels its query (57014)';
cmp_ok time - $t1, '<', 5, sprintf('... promptly (%.2f s)', time - $t1);
is one($b, 'SELECT 3'), 3, 'B goes on';

# ================================================================ other startup parameters
for my $round (1, 2) {
    $off = $p->log_size;
    my %params = (application_name => 'other', options => '-c work_mem=7MB', DateStyle => 'SQL, DMY');
    my ($c, $rc) = dublin($p, %params);
    is greeted_since($p, $off), $round - 1,
      $round == 1 ? 'other parameters: the first login is answered by a server' : 'other parameters: the next as its connection logged in';
    is_deeply $rc->{params}, direct(%params), "... round $round: its ParameterStatus values as directly"
      or diag explain $rc->{params};
    is one($c, 'SHOW work_mem'), '7MB', "... round $round: its options hold on the server";
    $c->terminate;
}
$_->terminate for $a, $b;

# ================================================================ session pooling, auth = passthrough
for my $case (['session pooling', pool_mode => 'session', pool_size => 5],
              ['auth = passthrough', auth => 'passthrough', pool_size => 5]) {
    my ($what, @set) = @$case;
    my $x = PgNearTest::Proxy->new(regions => \@REGIONS, settings => { %BASE, @set });
    my @w = map { (dublin($x))[0] } 1 .. 3;
    is greeted_since($x, 0), 0, "$what: every login is answered by a server";
    $_->terminate for @w;
    $x->stop;
}

# ================================================================ two workers: a pool each
{
    my $x = PgNearTest::Proxy->new(regions => \@REGIONS, settings => { %BASE, workers => 2, pool_size => 5 });
    my @w = map { (dublin($x))[0] } 1 .. 12;
    my $log = $x->log_contents;
    my $dialed = () = $log =~ /connecting to /g;
    my $greeted = () = $log =~ /login answered as server connection/g;
    cmp_ok $dialed, '<=', 2, "two workers, 12 logins: at most one a worker answered by a new connection ($dialed)";
    is $dialed + $greeted, 12, "... the others ($greeted) as a connection of their worker's pool logged in";
    is one($_, 'SELECT 1'), 1, 'two workers: each client is served' for @w;
    $_->terminate for @w;
    $x->stop;
}

# ================================================================ a promotion; a host down
my $one = PgNearTest::Proxy->new(regions => [{ name => 'us-east', hosts => [$us] }], settings => { %BASE });
my ($u) = login_to($one->port);
my ($u2) = login_to($one->port);
is greeted_since($one, 0), 1, 'us-east alone: the second login is answered as the first\'s connection logged in';
$_->terminate for $u, $u2;

$us->stop;
$eu->promote;
ok wait_until(sub { grep { $_->{region} eq 'eu-west' && $_->{role} eq 'primary' } $p->admin_rows('SHOW REGIONS') },
              timeout => 30), 'eu-west promoted: the checks know it as a primary';
is direct()->{in_hot_standby}, 'off', 'directly: in_hot_standby off';
$off = $p->log_size;
my ($d, $rd) = dublin($p);
is $rd->{params}{in_hot_standby}, 'off', 'through pgnear: the next login is told in_hot_standby off';
is_deeply $rd->{params}, direct(), '... every value as directly' or diag explain $rd->{params};
is one($d, 'SELECT pg_is_in_recovery()::text'), 'false', '... and runs on the promoted server';
$d->terminate;

ok wait_until(sub { grep { $_->{region} eq 'us-east' && $_->{up} eq 'f' } $one->admin_rows('SHOW REGIONS') },
              timeout => 30), 'us-east stopped: the checks know it down'
  or diag explain [$one->admin_rows('SHOW REGIONS')];
$off = $one->log_size;
my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $one->port, timeout => 40);
my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
ok !$r->{ok}, 'a login to the host that is down is not answered';
is $r->{error}{C}, '08001', '... it gets 08001, as before' or diag explain $r->{error};
is greeted_since($one, $off), 0, '... and was not answered from the pool';

ok $p->is_running && $one->is_running, 'pgnear still running';
done_testing();
