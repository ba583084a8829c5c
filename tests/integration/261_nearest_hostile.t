# target_session_attrs = nearest with clients that make pgnear's own work
# hard, each check under pool_mode = transaction and session, and where
# it makes sense beside the same done directly on the primary.  A primary
# in us-east, a streaming standby in eu-west, the caller in Dublin.
#
# A tight statement_timeout (1ms): pgnear's own statements (the state
# read back and replayed between a session's two connections) run under
# limits of their own, the session goes on and keeps its setting.
# default_transaction_isolation = serializable, however it was set (the
# startup packet's options, SET, SET SESSION CHARACTERISTICS, ALTER
# ROLE): its transactions run on the primary, a READ ONLY block
# included, as a standby cannot run them, and the session does not end.
# A client that sends a write and closes its socket without a Terminate
# (simple and extended protocol): the write runs on the primary, once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Socket qw(SHUT_WR);
use Time::HiRes qw(sleep);
use PgNearTest;
use PgNearNearest qw(nearest_regions ext_statement sync_message query_message);

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pg_basebackup);

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin(<<'SQL', dbname => 'movr');
CREATE TABLE rides (id int PRIMARY KEY, rider text);
GRANT ALL ON rides TO app;
SET password_encryption = 'scram-sha-256';
CREATE ROLE serial LOGIN PASSWORD 'serial-secret';
ALTER ROLE serial SET default_transaction_isolation = serializable;
GRANT ALL ON rides TO serial;
SQL
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
$eu->wait_streaming;

my $auth_dir = tmpdir(name => 'nearest-hostile-auth');
write_file("$auth_dir/userlist.txt",
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n}
  . qq{"serial" "} . $us->scram_verifier('serial') . qq{"\n});
my $WORKERS = $ENV{PGNEAR_TEST_WORKERS} // 2;
my %secret = (app => 'app-secret', serial => 'serial-secret');

sub proxy {
    my (%set) = @_;
    return PgNearTest::Proxy->new(
        regions  => nearest_regions($us, $eu),
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
                      server_tls => 'disable', health_check_interval => '250ms', workers => $WORKERS,
                      target_session_attrs => 'nearest', failover_wait => '1s', %set });
}

# A session through pgnear ($p) or directly on the primary (undef), as $user.
sub login {
    my ($p, %o) = @_;
    my $user = $o{user} // 'app';
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p ? $p->port : $us->port, timeout => 30);
    my $opts = ($p ? '-c pgnear.location=53.35,-6.26 ' : '') . ($o{options} // '');
    my $r = $w->startup(user => $user, database => 'movr', password => $secret{$user},
                        params => { $opts =~ /\S/ ? (options => $opts) : () });
    die 'login failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n" unless $r->{ok};
    return $w;
}
# A Query's answer; a statement the client's own statement_timeout canceled is sent again.
sub run_sql {
    my ($w, $sql) = @_;
    for (1 .. 50) {
        # a session that ended is an answer too (eof), not the end of the script
        my $q = eval { $w->query($sql) } // { eof => 1, error => { C => 'gone', M => $@ } };
        return $q unless $q->{error} && $q->{error}{C} eq '57014';
    }
    return { error => { C => 'test', M => "canceled 50 times: $sql" } };
}
# The first column of the first row, or the error as "SQLSTATE message".
sub one {
    my $q = run_sql(@_);
    return $q->{error} ? "$q->{error}{C} $q->{error}{M}" : $q->{eof} ? 'eof' : $q->{rows}[0][0];
}
sub where { one($_[0], q{SELECT current_setting('cluster_name')}) }
sub primary_count { $us->psql_admin("SELECT count(*) FROM rides WHERE $_[0]", dbname => 'movr') }
sub qmsg { query_message(@_) }
# An extended-protocol batch (unnamed statement and portal, text parameters), Sync last.
sub batch { ext_statement(@_) . sync_message() }

my $next_id = 1;

# ---- (7) a tight statement_timeout: pgnear's own statements run under their own limits
sub tight_timeout {
    my ($p, $mode) = @_;
    for my $how (['SET', q{SET statement_timeout = '1ms'}], ['set_config', q{SET lock_timeout = '1ms'; SELECT set_config('statement_timeout', '1ms', false)}]) {
        my ($what, $set) = @$how;
        my $c = login($p);
        my $d = login(undef);
        for my $round (1 .. 3) {
            for my $w ($c, $d) {
                my $q = run_sql($w, $set);
                ok !$q->{error} && !$q->{eof}, "$mode, $what, round $round: the setting is made"
                  or diag explain $q;
                my $id = $next_id++;
                $q = run_sql($w, "INSERT INTO rides (id, rider) VALUES ($id, 'tight')");
                ok !$q->{error} && !$q->{eof}, "$mode, $what, round $round: a write after it succeeds"
                  or diag explain $q;
                is primary_count("id = $id"), 1, "$mode, $what, round $round: ... once";
            }
            # session pooling: its reads come back near, its state carried back under the
            # tight limit too (transaction pooling: the SET pins it to the primary)
            my $near = $mode eq 'session' ? 'eu-west' : 'us-east';
            ok wait_until(sub { where($c) eq $near }, timeout => 20, interval => 0.05),
              "$mode, $what, round $round: its reads run on $near" or diag where($c);
            is one($c, 'SHOW statement_timeout') . ' ' . one($c, 'SHOW lock_timeout'),
               one($d, 'SHOW statement_timeout') . ' ' . one($d, 'SHOW lock_timeout'),
              "$mode, $what, round $round: its settings are the client's, as directly";
        }
        $c->terminate;
        $d->terminate;
    }
    unlike $p->log_contents, qr/lost the session's settings/, "$mode: no session lost its settings";
}

# ---- (10) default_transaction_isolation = serializable: every transaction on the primary
sub serializable_read_only {
    my ($w) = @_;
    my $q = run_sql($w, 'BEGIN READ ONLY');
    return "BEGIN: $q->{error}{C} $q->{error}{M}" if $q->{error};
    my $r = one($w, q{SELECT current_setting('transaction_isolation') || ' ' || count(*) FROM rides WHERE id < 0});
    run_sql($w, 'COMMIT');
    return $r;
}
sub serializable {
    my ($p, $mode) = @_;
    my @ways = (['the startup options', 'app', '-c default_transaction_isolation=serializable', undef],
                ['SET', 'app', '', 'SET default_transaction_isolation = serializable'],
                ['SET SESSION CHARACTERISTICS', 'app', '',
                 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE'],
                ['ALTER ROLE', 'serial', '', undef],
                # a state to carry (session pooling) read back from the standby that refuses
                ['ALTER ROLE, then SET', 'serial', '', 'SET search_path = public']);
    for my $way (@ways) {
        my ($how, $user, $options, $set) = @$way;
        my $c = login($p, user => $user, options => $options);
        my $d = login(undef, user => $user, options => $options);
        for my $w ($c, $d) {
            next unless $set;
            my $q = run_sql($w, $set);
            ok !$q->{error}, "$mode, $how: '$set' succeeds" or diag explain $q->{error};
        }
        # ALTER ROLE is seen by its refusal: one read first
        is one($c, 'SELECT 1'), '1', "$mode, $how: a read succeeds" if $how =~ /^ALTER ROLE/;
        is serializable_read_only($c), serializable_read_only($d),
          "$mode, $how: a READ ONLY block runs serializable, as directly";
        is one($c, q{SELECT current_setting('transaction_isolation')}), 'serializable',
          "$mode, $how: a read after it runs serializable";
        is where($c), 'us-east', "$mode, $how: ... on the primary";
        my $id = $next_id++;
        my $q = run_sql($c, "INSERT INTO rides (id, rider) VALUES ($id, 'serial')");
        ok !$q->{error} && !$q->{eof}, "$mode, $how: a write succeeds" or diag explain $q;
        is primary_count("id = $id"), 1, "$mode, $how: ... once";
        is one($c, 'SHOW default_transaction_isolation'), 'serializable', "$mode, $how: the session keeps its setting";
        $c->terminate;
        $d->terminate;
    }
    unlike $p->log_contents, qr/lost the session's settings/, "$mode: no serializable session lost its settings";
}

# ---- (3) a write sent just before the client's socket closes, no Terminate: it runs once
sub gone_after_write {
    my ($p, $mode) = @_;
    for my $how (['simple', sub { qmsg("INSERT INTO rides (id, rider) VALUES ($_[0], 'gone')") }],
                 ['extended', sub { batch('INSERT INTO rides (id, rider) VALUES ($1, $2)', $_[0], 'gone') }]) {
        my ($proto, $msgs) = @$how;
        for my $end (['closed', sub { close $_[0]->socket }],
                     ['shut down', sub { shutdown($_[0]->socket, SHUT_WR) }]) {
            my ($ended, $close) = @$end;
            my %ids;
            for my $where ('pgnear', 'directly') {
                my $w = login($where eq 'pgnear' ? $p : undef);
                my $id = $ids{$where} = $next_id++;
                $w->send_raw($msgs->($id));
                $close->($w);
                ok wait_until(sub { primary_count("id = $id") eq '1' }, timeout => 20),
                  "$mode, $proto, $ended: a write sent as the client left runs ($where)";
                close $w->socket;
            }
            sleep 0.5;
            is primary_count("id = $ids{pgnear}") . ' ' . primary_count("id = $ids{directly}"), '1 1',
              "$mode, $proto, $ended: ... once, as directly";
        }
    }
    # the sessions ended, their connections back or closed: none is left to a gone client
    ok wait_until(sub { !grep { ($_->{user} // '') eq 'app' } $p->admin_rows('SHOW CLIENTS') }, timeout => 20),
      "$mode: the sessions of clients gone ended";
}

for my $mode ('transaction', 'session') {
    my $p = proxy(pool_mode => $mode);
    ok wait_until(sub { grep { $_->{region} eq 'eu-west' && $_->{role} eq 'standby' } $p->admin_rows('SHOW REGIONS') },
                  timeout => 30), "$mode: the checks know eu-west as a standby";
    gone_after_write($p, $mode);
    tight_timeout($p, $mode);
    serializable($p, $mode);
    $p->stop;
}

done_testing;
