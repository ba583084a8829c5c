# DROP DATABASE through pgnear works as directly (session/db_unhold.h):
# a database used through pgnear by a few clients that have left, their
# server connections kept idle in the pool on two workers, is dropped
# (DROP DATABASE, with IF EXISTS, with WITH (FORCE)), renamed (ALTER
# DATABASE ... RENAME TO) and copied (CREATE DATABASE ... TEMPLATE) by a
# client of another database through pgnear, under pool_mode = session and
# transaction (and DROP DATABASE under nearest in both), where PostgreSQL would refuse with 55006 ("is being accessed
# by other users") while pgnear's idle connections were there; pgnear's
# kept connections to it are gone after, auth_query's kept connections
# there too.  What still holds a database is a
# client's own session connected to it: then the statement gets
# PostgreSQL's 55006, with its DETAIL, as directly.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool('psql');

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $dir = tmpdir(name => 'drop-db');
my $userlist = "$dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

sub direct { psql($us->conninfo(dbname => 'postgres'), @_) }
sub backends_of {
    my ($db) = @_;
    return direct("SELECT count(*) FROM pg_stat_activity WHERE datname = '$db'");
}
sub exists_db { direct("SELECT count(*) FROM pg_database WHERE datname = '$_[0]'") }

# A few clients use db through pgnear and leave: their connections stay idle in its pool.
sub use_and_leave {
    my ($p, $db) = @_;
    my @c = map {
        dbi_connect($p->conninfo(dbname => $db)) or die "login to $db through pgnear: $DBI::errstr\n"
    } 1 .. 6;
    $_->selectrow_array('SELECT 1') for @c;
    $_->disconnect for @c;
    return wait_until(sub { backends_of($db) >= 1 }, timeout => 10);
}

# The statement through pgnear, from a client of movr: (rc, stderr).
sub through {
    my ($p, $sql) = @_;
    my ($rc, $out, $err) = psql($p->conninfo, $sql, verbose => 1);
    return ($rc, $err);
}

my @CASES = (
    ['DROP DATABASE dropme', sub { exists_db('dropme') eq '0' }, 'the database is gone'],
    ['DROP DATABASE IF EXISTS "dropme"', sub { exists_db('dropme') eq '0' }, 'the database is gone'],
    ['DROP DATABASE dropme WITH (FORCE)', sub { exists_db('dropme') eq '0' }, 'the database is gone'],
    ['ALTER DATABASE dropme RENAME TO renamed',
     sub { exists_db('renamed') eq '1' && exists_db('dropme') eq '0' }, 'it has its new name'],
    ['CREATE DATABASE copied TEMPLATE = dropme', sub { exists_db('copied') eq '1' }, 'the copy is made'],
);

my $AUTH_QUERY = 'SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1';
for my $mode ('session', 'transaction', 'session, auth_query', 'session, nearest',
              'transaction, nearest') {
    my %auth = $mode =~ /auth_query/ ? (auth_query => $AUTH_QUERY) : (auth_file => $userlist);
    my %near = $mode =~ /nearest/ ? (target_session_attrs => 'nearest') : ();
    my $p = PgNearTest::Proxy->new(regions => [$us], settings => {
        auth => 'scram', %auth, %near, admin_users => 'admin', server_tls => 'disable',
        pool_mode => $mode =~ s/,.*//r, workers => 2 });
    # auth_query's connections, kept on the database the client logs in to, are let go too.
    my $one = $mode =~ /auth_query|nearest/;
    for my $case ($one ? ($CASES[0]) : @CASES) {
        my ($sql, $done, $what) = @$case;
        direct($_) for 'DROP DATABASE IF EXISTS dropme', 'DROP DATABASE IF EXISTS renamed',
                       'DROP DATABASE IF EXISTS copied', 'CREATE DATABASE dropme';
        ok use_and_leave($p, 'dropme'), "$mode, $sql: pgnear keeps idle connections to dropme";
        my $t0 = time;
        my ($rc, $err) = through($p, $sql);
        is $rc, 0, "$mode, $sql: succeeds through pgnear, as directly" or diag $err;
        ok $done->(), "$mode, $sql: $what";
        cmp_ok time - $t0, '<', 4.5, "$mode, $sql: before PostgreSQL's 5 s wait for other sessions ends";
        is backends_of('dropme'), '0', "$mode, $sql: no connection to dropme left";
    }

    if ($one) {
        $p->stop;
        next;
    }
    # A client's own session in the database still holds it, as directly.
    direct($_) for 'DROP DATABASE IF EXISTS dropme', 'CREATE DATABASE dropme';
    my $own = dbi_connect($p->conninfo(dbname => 'dropme')) or die $DBI::errstr;
    $own->do('BEGIN');    # under transaction pooling too: its connection is its own meanwhile
    my ($rc, $err) = through($p, 'DROP DATABASE dropme');
    isnt $rc, 0, "$mode: a client connected to dropme through pgnear holds it";
    like $err, qr/ERROR:  55006: database "dropme" is being accessed by other users/,
        "$mode: ... with PostgreSQL's 55006" or diag $err;
    like $err, qr/DETAIL:  There is 1 other session using the database/, "$mode: ... one session: the client's";
    $own->do('ROLLBACK');
    $own->disconnect;
    $p->stop;
}

# Directly, the same: a database whose clients left is dropped at once.
direct($_) for 'DROP DATABASE IF EXISTS dropme', 'CREATE DATABASE dropme';
my $d = dbi_connect($us->conninfo(dbname => 'dropme')) or die $DBI::errstr;
$d->disconnect;
ok wait_until(sub { backends_of('dropme') eq '0' }, timeout => 10), 'directly: the client left';
is((psql($us->conninfo, 'DROP DATABASE dropme', verbose => 1))[0], 0, 'directly: DROP DATABASE succeeds');

done_testing;
