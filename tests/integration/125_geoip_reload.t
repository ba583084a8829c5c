# SIGHUP reopens the GeoIP databases: a database replaced on disk (as a
# monthly GeoLite2 or DB-IP update is) routes new sessions by its new data,
# sessions already open stay where they are, and a database that cannot be
# opened keeps the old configuration, databases included.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;

my $SRCDIR = $ENV{PGNEAR_SRCDIR} // "$FindBin::RealBin/../..";
my $MK = "$SRCDIR/tests/lib/make_mmdb.pl";
my $dir = tmpdir(name => 'geo', mode => 0755);
my $db = "$dir/city.mmdb";

# Writes the database aside and renames it over the old one, as updaters do.
sub write_db {
    my ($layout, @nets) = @_;
    my ($rc, $out, $err) = run_cmd([$^X, $MK, '--layout', $layout, '--ip-version', 6, '--out', "$db.new", @nets],
                                   timeout => 60);
    die "make_mmdb.pl: $err" if $rc;
    rename "$db.new", $db or die "rename: $!";
}

my $tokyo = PgNearTest::Cluster->new(name => 'ap-northeast');
my $dublin = PgNearTest::Cluster->new(name => 'eu-west');

write_db('maxmind', '127.0.0.5/32=Tokyo,JP,35.6762,139.6503', '127.0.0.6/32=Osaka,JP,34.6937,135.5023');
my $p = PgNearTest::Proxy->new(regions => [$tokyo, $dublin],
    settings => { auth => 'passthrough', server_tls => 'disable', geoip_db => $db,
                  default_region => 'eu-west' });

# Region of a new session from $addr, and the open Wire session.
sub session_from {
    my ($addr) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, local_addr => $addr, timeout => 10);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    die "login failed: " . ($r->{error} ? $r->{error}{M} : 'eof') . "\n" unless $r->{ok};
    return ($w->query('SHOW cluster_name')->{rows}[0][0], $w);
}

my ($where, $kept) = session_from('127.0.0.5');
is $where, 'ap-northeast', 'GeoIP puts 127.0.0.5 in Tokyo: ap-northeast';
($where) = session_from('127.0.0.6');
is $where, 'ap-northeast', '... and 127.0.0.6 in Osaka: ap-northeast';

# The monthly update: same file name, other data, and the other layout.
write_db('dbip', '127.0.0.5/32=Paris,FR,48.8566,2.3522', '127.0.0.6/32=Osaka,JP,34.6937,135.5023');
my $off = $p->log_size;
$p->signal('HUP');
ok $p->wait_for_log(qr/configuration reloaded/, offset => $off), 'SIGHUP after the database was replaced';
($where) = session_from('127.0.0.5');
is $where, 'eu-west', 'new sessions from 127.0.0.5 follow the new data (Paris): eu-west';
like substr($p->log_contents, $off), qr/route: region eu-west.*GeoIP places the caller in Paris, FR/,
  '... and the log says GeoIP placed it in Paris';
($where) = session_from('127.0.0.6');
is $where, 'ap-northeast', '127.0.0.6 is still in Osaka (read from the DB-IP layout now)';
is $kept->query('SHOW cluster_name')->{rows}[0][0], 'ap-northeast', 'the session opened before stays on its server';

# A broken update: the reload fails and the old databases stay in use.
PgNearTest::write_file("$db.new", "this is not a MaxMind database\n" x 20);
rename "$db.new", $db or die "rename: $!";
$off = $p->log_size;
$p->signal('HUP');
ok $p->wait_for_log(qr/reload failed, keeping the current configuration: .*\Q$db\E/, offset => $off),
  'a database that cannot be opened: the reload fails and says which file';
($where) = session_from('127.0.0.5');
is $where, 'eu-west', '... and routing goes on with the databases already open';
is $kept->query('SELECT 1')->{rows}[0][0], 1, 'the old session still works';
$kept->terminate;
ok $p->is_running, 'pgnear is running';

done_testing;
