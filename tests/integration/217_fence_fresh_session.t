# A fenced read on a fresh session, as a web application does it (and
# PgNearWorkload's read-only-fenced client, 302): append on a read-write
# session, take the primary's WAL position there as the fence (FENCE_SQL:
# the insert position as pgnear.fence gives it), then open a new read-only
# session with pgnear.min_lsn set to it and read at once.  (The written
# position, pg_current_wal_lsn(), is no fence here: the test clusters run
# synchronous_commit = off, under which it lags behind the commit just
# answered; taken as the fence, nearly every read below missed its append.)  Against a primary (us-east) and one standby (eu-west, Dublin,
# replaying 300 ms late), under pool_mode = transaction and session: every
# fenced read sees the row just written, on the standby once it has
# replayed the fence, else on no server at all (an error), never without it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use DBI;
use PgNearTest;
use PgNearWorkload;

require_tool($_) for qw(psql pg_basebackup);
my $ROUNDS = $ENV{PGNEAR_FENCE_ROUNDS} // 50;

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin("CREATE TABLE la (key int PRIMARY KEY, vals int[] NOT NULL DEFAULT '{}');"
                . 'INSERT INTO la (key) VALUES (1); GRANT ALL ON la TO app', dbname => 'movr');
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west', apply_delay => '300ms');
$eu->wait_streaming;

my $auth_dir = tmpdir(name => 'fence-auth');
write_file("$auth_dir/userlist.txt", qq{"app" "} . $us->scram_verifier('app') . qq{"\n});
my @proxies = map {
    PgNearTest::Proxy->new(
        regions  => [$us, $eu],
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", server_tls => 'disable',
                      health_check_interval => '100ms', workers => $ENV{PGNEAR_TEST_WORKERS} // 2,
                      pool_mode => $_, failover_wait => '2s' })
} qw(transaction session);

sub connect_as {
    my ($p, $need, @extra) = @_;
    my $opts = join ' ', '-c pgnear.location=53.35,-6.26', "-c pgnear.target_session_attrs=$need", @extra;
    return DBI->connect("dbi:Pg:host=127.0.0.1;port=" . $p->port . ";dbname=movr;connect_timeout=5;"
                        . "options='$opts'", 'app', 'app-secret',
                        { RaiseError => 0, PrintError => 0, AutoCommit => 1, pg_server_prepare => 0 });
}

for my $p (@proxies) {
    my $mode = $p->config_text =~ /pool_mode\s*=\s*'?(\w+)/ ? $1 : '?';
    ok wait_until(sub { $p->log_contents =~ /region eu-west is up: it is a standby/ }, timeout => 30),
      "$mode: pgnear sees the standby";
    my $rw = connect_as($p, 'read-write');
    ok $rw, "$mode: a read-write session" or diag DBI->errstr;
    my ($stale, $on_standby, $errors, @bad) = (0, 0, 0);
    for my $i (1 .. $ROUNDS) {
        my $v = ($mode eq 'transaction' ? 1_000_000 : 2_000_000) + $i;
        $rw->do("UPDATE la SET vals = vals || $v WHERE key = 1") or die $rw->errstr;
        my ($fence) = $rw->selectrow_array(PgNearWorkload::FENCE_SQL);
        my $ro = connect_as($p, 'read-only', "-c pgnear.min_lsn=$fence");
        unless ($ro) { $errors++; next }
        my ($vals, $standby) = $ro->selectrow_array(
            "SELECT array_to_string(vals, ','), pg_is_in_recovery() FROM la WHERE key = 1");
        $ro->disconnect;
        unless (defined $vals) { $errors++; next }
        $on_standby++ if $standby;
        next if grep { $_ == $v } split /,/, $vals;
        $stale++;
        push @bad, "round $i: fence $fence, $v missing" if @bad < 5;
    }
    is $stale, 0, "$mode: $ROUNDS fenced reads on fresh sessions each see their append"
      or diag join "\n", @bad;
    cmp_ok $on_standby, '>=', $ROUNDS / 2, "$mode: most of them on the standby ($on_standby, $errors errors)";
}

done_testing;
