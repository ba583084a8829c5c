# Moving a database that lives in a primary's region and in a region of
# its streaming standbys: [database movr] regions = us-east, us-west
# (us-west's host a hot standby of us-east's primary), moved to eu-west, a
# separate cluster (wal_level = logical on both primaries):
#   - refused, with 55000, for a list that names two primaries and for a
#     target the database lives in already;
#   - the move leaves from the region whose primary is up (SHOW MOVES:
#     from us-east); while it copies, a session near us-west still reads
#     there, on the standby;
#   - CUTOVER moves every held session of movr, the reader on us-west's
#     standby too, to eu-west (same connection, another backend); new
#     sessions from near us-west go to eu-west;
#   - REVERT brings them back to us-east's primary; new sessions near
#     us-west read on its standby again (the file's list, which names the
#     region the record does); ABORT ends the move there;
#   - schema migrations (migrations_db = movr) count only the regions
#     movr lives in: SHOW MIGRATIONS has rows for us-east and us-west, not
#     eu-west; MIGRATE UP runs in us-east, which us-west replays; a command
#     naming eu-west is refused with 55000; while movr is being moved, a
#     step is refused with 55006 (logical replication carries no schema
#     change), SHOW MIGRATIONS still answers, and after ABORT the step runs.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;
use PgNearDbMove qw(logical_pair write_users admin_rows move_state);

require_tool('psql');
require_tool('pg_dump');

my ($us, $eu, $app_secret) = logical_pair(rides => 10000);
my $usw = PgNearTest::Cluster->new_standby(primary => $us, name => 'us-west');
$usw->wait_streaming;

my $dir = tmpdir(name => 'standbys', mode => 0755);
write_users($dir, $app_secret);
mkdir "$dir/migrations" or die "mkdir: $!";
write_file("$dir/migrations/0001_notes.sql", "CREATE TABLE notes (id int PRIMARY KEY, body text);\n");
write_file("$dir/migrations/0001_notes.down.sql", "DROP TABLE notes;\n");
my $p = PgNearTest::Proxy->new(regions => [$us, $usw, $eu],
    settings => { auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                  server_tls => 'disable', workers => $ENV{PGNEAR_TEST_WORKERS} // 2,
                  default_region => 'us-east', migrations_dir => "$dir/migrations", migrations_db => 'movr',
                  health_check_interval => '1s', health_check_timeout => '5s' },
    extra_ini => "[database movr]\nregions = us-east, us-west\n"
               . "[database twoprimaries]\nregions = us-east, eu-west\n"
               . "[cities]\nseattle = us-west\n");
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');

sub admin { admin_rows($admin_ci, $_[0]) }
sub state { move_state($admin_ci, 'movr') }

# A client of movr from near us-west (city => 'seattle') or near us-east.
sub client {
    my ($name, $city) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => [application_name => $name, $city ? (options => "-c pgnear.city=$city") : ()]);
    die "$name: login failed: " . ($r->{error} ? $r->{error}{M} : 'eof') . "\n" unless $r->{ok};
    return $w;
}
sub one {
    my ($w, $sql) = @_;
    my $q = eval { $w->query($sql) };
    return !$q ? "lost: $@" : $q->{error} ? "ERROR: $q->{error}{M}" : $q->{rows}[0][0];
}
# Where a new session of movr from near us-west lands: the server's port.
sub west_lands_on {
    my ($rc, $out) = psql($p->conninfo(dbname => 'movr', options => '-c pgnear.city=seattle'),
                          'SELECT inet_server_port()');
    return $rc == 0 ? $out : 'error';
}

ok wait_until(sub {
    my ($r) = admin('SHOW REGIONS');
    2 == grep({ $_->{role} eq 'primary' } @$r) && 1 == grep { $_->{role} eq 'standby' } @$r;
}, timeout => 20), 'the health checks know both primaries and the standby';

# ------------------------------------------------------------------ refused

{
    my (undef, $err) = admin('MOVE DATABASE twoprimaries TO REGION us-west');
    is sqlstate($err), '55000', 'a list that names two primaries: 55000';
    like $err // '', qr/lives in two regions with a primary: us-east and eu-west.*HINT:.*standbys/s,
        '... naming both, and what a list may hold';
    (undef, $err) = admin('MOVE DATABASE movr TO REGION us-west');
    is sqlstate($err), '55000', 'to a region of its standbys: 55000';
    like $err // '', qr/lives in region "us-west" already/, '... it lives there already';
}

# ------------------------------------------------------------------ migrations

{
    my ($rows) = admin('SHOW MIGRATIONS');
    is join(' ', map { "$_->{region}:$_->{state}" } @$rows), 'us-east:pending us-west:pending',
        'SHOW MIGRATIONS: the regions movr lives in, not eu-west';
    my (undef, $err) = admin('MIGRATE UP IN REGION eu-west');
    is sqlstate($err), '55000', 'MIGRATE UP IN REGION eu-west: 55000';
    like $err // '', qr/migrations_db "movr" does not live in region "eu-west".*It lives in: us-east, us-west/s,
        '... saying where it lives';
    my (undef, $uerr, $unotices) = admin('MIGRATE UP');
    is $uerr, undef, 'MIGRATE UP' or diag $unotices;
    ok wait_until(sub {
        my ($r) = admin('SHOW MIGRATIONS');
        join(' ', map { "$_->{region}:$_->{state}" } @$r) eq 'us-east:applied us-west:applied';
    }, timeout => 20), '... applied in us-east, replayed in us-west';
    is $eu->psql_admin(q{SELECT count(*) FROM pg_database WHERE datname = 'movr'}), 0, '... and nothing ran in eu-west';
}

# ------------------------------------------------------------------ the copy

my $reader = client('reader-west', 'seattle');
my $writer = client('writer-east');
is one($reader, 'SELECT inet_server_port()'), $usw->port, 'a session from near us-west reads on its standby';
is one($reader, 'SELECT pg_is_in_recovery()'), 't', '... which is in recovery';
is one($writer, 'SELECT inet_server_port()'), $us->port, 'a session with no hint is on us-east';
my ($reader_pid, $writer_pid) = map { one($_, 'SELECT pg_backend_pid()') } $reader, $writer;

my (undef, $merr, $mnotices) = admin('MOVE DATABASE movr TO REGION eu-west');
is $merr, undef, 'MOVE DATABASE movr TO REGION eu-west' or diag $mnotices;
unlike $mnotices, qr/could not interpret/, '... its tag does not puzzle psql (libpq reads "MOVE n" as a cursor\'s)';
ok wait_until(sub { state() eq 'streaming' }, timeout => 120), 'SHOW MOVES: streaming';
{
    my ($rows) = admin('SHOW MOVES');
    my ($m) = grep { $_->{database} eq 'movr' } @$rows;
    is "$m->{from_region} $m->{to_region}", 'us-east eu-west', 'SHOW MOVES: from us-east, the region of the primary';
}
is west_lands_on(), $usw->port, 'while it copies, a new session from near us-west still reads on the standby';
write_file("$dir/migrations/0002_notes_at.sql", "ALTER TABLE notes ADD COLUMN at timestamptz;\n");
write_file("$dir/migrations/0002_notes_at.down.sql", "ALTER TABLE notes DROP COLUMN at;\n");
{
    my (undef, $err) = admin('MIGRATE UP');
    is sqlstate($err), '55006', 'MIGRATE UP while movr is being moved: 55006';
    like $err // '', qr/database "movr" is being moved.*schema changes.*FINISH or ABORT/s, '... saying why and until when';
    my ($rows, $serr) = admin('SHOW MIGRATIONS');
    is $serr, undef, 'SHOW MIGRATIONS still answers';
    is scalar(grep { $_->{state} eq 'pending' } @$rows), 2, '... the new step pending in us-east and us-west';
}

# ------------------------------------------------------------------ CUTOVER

is one($writer, q{INSERT INTO users (city, name) VALUES ('seattle', 'before the cutover') RETURNING 1}), 1,
    'a write before the cutover';
my (undef, $cerr, $cnotices) = admin('MOVE DATABASE movr CUTOVER');
is $cerr, undef, 'MOVE DATABASE movr CUTOVER' or diag $cnotices;
unlike $cnotices, qr/could not interpret/, '... nor does the tag of its rows';
is one($reader, 'SELECT inet_server_port()'), $eu->port, 'the reader, held on the standby, now reads in eu-west';
isnt one($reader, 'SELECT pg_backend_pid()'), $reader_pid, '... on another backend, on the same connection';
is one($writer, 'SELECT inet_server_port()'), $eu->port, 'the writer is in eu-west too';
isnt one($writer, 'SELECT pg_backend_pid()'), $writer_pid, '... on another backend';
is one($reader, q{SELECT count(*) FROM users WHERE name = 'before the cutover'}), 1,
    'eu-west has the write made before the cutover';
is one($writer, q{INSERT INTO users (city, name) VALUES ('dublin', 'after the cutover') RETURNING 1}), 1,
    'the writer writes in eu-west';
is west_lands_on(), $eu->port, 'a new session from near us-west goes to eu-west';
is state(), 'moved', 'SHOW MOVES: moved';
ok $p->wait_for_log(qr/database "movr" lives in region eu-west since its move .* but the configuration file says regions = us-east, us-west/,
                    timeout => 10),
    'a WARNING says the file disagrees with the record while movr lives in eu-west';

# ------------------------------------------------------------------ REVERT

my (undef, $rerr, $rnotices) = admin('MOVE DATABASE movr REVERT');
my $after_revert = $p->log_size;
is $rerr, undef, 'MOVE DATABASE movr REVERT' or diag $rnotices;
is one($reader, 'SELECT inet_server_port()'), $us->port, 'the reader is back, on us-east\'s primary';
is one($writer, q{SELECT count(*) FROM users WHERE name = 'after the cutover'}), 1,
    'the write made in eu-west came back';
my $lsn = $us->psql_admin('SELECT pg_current_wal_lsn()');
ok $usw->wait_replay($lsn), 'the standby replays it';
is west_lands_on(), $usw->port, 'a new session from near us-west reads on the standby again';
my ($rc, $out) = psql($p->conninfo(dbname => 'movr', options => '-c pgnear.city=seattle'),
                      q{SELECT count(*) FROM users WHERE name = 'after the cutover'});
is "$rc $out", '0 1', '... and sees the write made in eu-west';

is state(), 'streaming', 'SHOW MOVES: streaming again';
my (undef, $aerr, $anotices) = admin('MOVE DATABASE movr ABORT');
is $aerr, undef, 'MOVE DATABASE movr ABORT' or diag $anotices;
is state(), 'aborted', 'SHOW MOVES: aborted';
is west_lands_on(), $usw->port, 'after ABORT, the standby in us-west still serves it';
{
    my (undef, $err, $notices) = admin('MIGRATE UP');
    is $err, undef, 'after ABORT, MIGRATE UP runs the new step' or diag $notices;
    ok wait_until(sub {
        my ($r) = admin('SHOW MIGRATIONS');
        2 == grep { $_->{version} eq '2' && $_->{state} eq 'applied' } @$r;
    }, timeout => 20), '... in us-east, replayed in us-west';
}
sleep 1.5;    # a round of reading the records (every second) or two
unlike substr($p->log_contents, $after_revert), qr/but the configuration file says/,
    'back in us-east, no warning: the file names the region the record does';
$_->terminate for $reader, $writer;

done_testing;
