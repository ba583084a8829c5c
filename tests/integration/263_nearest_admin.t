# target_session_attrs = nearest and the admin console while a write is
# held on the standby (a Query that reads for a second, then inserts:
# the standby answers 25006 at its end, and the write runs again on the
# primary).  PAUSE issued meanwhile: the forward waits for the pause as
# any other transaction does (PAUSE returns with the write not yet run
# and its client unanswered), and after RESUME the client gets the
# primary's answer and the row is there once; never the standby's 25006.
# DRAIN of the standby's region meanwhile: the write runs on the primary,
# once, and its client gets its answer before the session ends (57P01).
# The same Query on a direct connection gives the answer compared with.
# Under pool_mode = transaction and session.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IO::Select;
use POSIX ();
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pg_basebackup);

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin('CREATE TABLE orders (id int)', dbname => 'movr');
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
$eu->wait_streaming;

my $auth_dir = tmpdir(name => 'admin-auth');
write_file("$auth_dir/userlist.txt",
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n"app" "} . $us->scram_verifier('app') . qq{"\n});
my $WORKERS = $ENV{PGNEAR_TEST_WORKERS} // 2;

sub proxy {
    my ($mode) = @_;
    return PgNearTest::Proxy->new(
        regions  => [{ name => 'us-east', location => '39.04, -77.49', hosts => [$us] },
                     { name => 'eu-west', location => '53.35, -6.26', hosts => [$eu] }],
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
                      server_tls => 'disable', health_check_interval => '250ms', workers => $WORKERS,
                      pool_mode => $mode, target_session_attrs => 'nearest', pause_timeout => '20s' });
}
sub login {
    my ($p) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { options => '-c pgnear.location=53.35,-6.26' });
    die "login through pgnear failed\n" unless $r->{ok};
    return $w;
}
sub one {
    my ($w, $sql) = @_;
    my $q = $w->query($sql);
    return $q->{error} ? "$q->{error}{C} $q->{error}{M}" : $q->{rows}[0][0];
}
sub rows_of { $us->psql_admin("SELECT count(*) FROM orders WHERE id = $_[0]", dbname => 'movr') }
sub admin {
    my ($p, $sql) = @_;
    my ($rc, $out, $err) = run_cmd(['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', $sql,
        $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret')], timeout => 60);
    return $rc == 0 ? 'ok' : "failed: $err";
}
# The answer of a Query sent before: its error "SQLSTATE message", or the tags of its results.
sub answer {
    my ($w) = @_;
    my $res = $w->read_result;
    return "$res->{error}{C} $res->{error}{M}" if $res->{error};
    return 'ok';
}
# A command of the console run in a child: its pid, and a pipe that says how it ended.
sub admin_async {
    my ($p, $sql) = @_;
    pipe(my $r, my $wr) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $r;
        print {$wr} admin($p, $sql);
        close $wr;
        POSIX::_exit(0);
    }
    close $wr;
    return sub { my $out = do { local $/; <$r> }; waitpid($pid, 0); $out };
}

my $WRITE = 'SELECT pg_sleep(1); INSERT INTO orders VALUES (%d)';
my $id = 1;
for my $mode (qw(transaction session)) {
    my $d = PgNearTest::Wire->connect(host => '127.0.0.1', port => $us->port, timeout => 30);
    $d->startup(user => 'app', database => 'movr', password => 'app-secret')->{ok} or die "direct login\n";
    my $direct = $id++;
    $d->send_query(sprintf $WRITE, $direct);
    is answer($d), 'ok', "$mode: directly, a read then a write in one Query runs";
    is rows_of($direct), 1, "$mode: ... its row once";

    my $p = proxy($mode);
    my $w = login($p);
    ok wait_until(sub { one($w, q{SELECT current_setting('cluster_name')}) eq 'eu-west' }, timeout => 10),
      "$mode: the Dublin session reads on eu-west's standby";

    # PAUSE while the write is held on the standby.
    my $paused = $id++;
    $w->send_query(sprintf $WRITE, $paused);
    sleep 0.4;    # the standby sleeps: its answer is held
    my $pause = admin_async($p, 'PAUSE');
    is $pause->(), 'ok', "$mode: PAUSE while the write is held on the standby returns";
    is rows_of($paused), 0, "$mode: ... the write waits for the pause, not run yet";
    ok !IO::Select->new($w->socket)->can_read(0.5), "$mode: ... and its client has no answer yet";
    is admin($p, 'RESUME'), 'ok', "$mode: RESUME";
    is answer($w), 'ok', "$mode: ... the client gets the primary's answer, not the standby's 25006";
    is rows_of($paused), 1, "$mode: ... its row once, on the primary";

    # DRAIN of the standby's region while a write is held there.
    ok wait_until(sub { one($w, q{SELECT current_setting('cluster_name')}) eq 'eu-west' }, timeout => 10),
      "$mode: reads near again";
    my $drained = $id++;
    $w->send_query(sprintf $WRITE, $drained);
    sleep 0.4;
    my $drain = admin_async($p, 'DRAIN eu-west');
    is answer($w), 'ok', "$mode: DRAIN while the write is held: the client gets the primary's answer";
    is rows_of($drained), 1, "$mode: ... its row once, on the primary";
    like $drain->(), qr/^ok|^failed/, "$mode: DRAIN ends";
    admin($p, 'ENABLE eu-west');

    $d->terminate;
    $p->stop;
}

done_testing;
