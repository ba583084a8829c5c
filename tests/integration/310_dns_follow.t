# A managed failover that moves a DNS name, followed while pgnear runs
# (issue 68, item 3).  Two PostgreSQL servers on one port, one on
# 127.0.0.1 and one on 127.0.0.2; a real DNS server on loopback (Debian's
# dnsmasq, answering db.pgnear.test from a hosts file with a TTL of 2 s);
# pgnear's only region names db.pgnear.test and asks that server
# (dns_server).  Writers run through pgnear — two that insert a row every
# 20 ms in autocommit, one that writes two rows a transaction, and one
# through a second pgnear under auth = scram, whose session may be moved —
# each row carrying the time its statement was sent.  Then the record moves to
# 127.0.0.2 (the file edited, dnsmasq sent SIGHUP), and the old server is
# left writable until pgnear has seen the move (the hardest case: a cut-off
# old primary), then made read-only as the managed service demotes it:
#   - pgnear says the name moved, and no row sent after it fenced the old
#     address (as the reload that resolved the name again swapped in)
#     lands on 127.0.0.1;
#   - the first row through pgnear lands on 127.0.0.2 within the TTL and
#     one health-check interval of the move;
#   - the writers go on writing on 127.0.0.2; under auth = passthrough a
#     session there is ended (57P01, as on a fenced former primary: it
#     cannot be moved), under auth = scram when it is mid-statement;
#   - then the record goes away (NXDOMAIN): pgnear keeps 127.0.0.2, says
#     so once however many times it asks again, and the writers go on;
#   - a pgnear stopped while its DNS server answers nothing stops at once
#     and leaks nothing;
#   - under auth = scram, an idle session on an address the name left is
#     moved to the new one once that is checked, however late, and a
#     login under way as the name moves logs in at the new address.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use Time::Local qw(timegm);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool('psql');
my $dnsmasq = require_tool('dnsmasq');
require DBI;
require DBD::Pg;

my $TTL      = 2;     # dnsmasq's --local-ttl
my $INTERVAL = 2;     # health_check_interval
my $NAME     = 'db.pgnear.test';

my $hba = ['local all all trust', 'host all all 127.0.0.0/8 scram-sha-256'];
my $old = PgNearTest::Cluster->new(name => 'eu-west', ipv6 => 0, hba => $hba);
my $new = PgNearTest::Cluster->new(name => 'eu-west-new', ipv6 => 0, hba => $hba, port => $old->port,
                                   location => $old->location,
                                   conf => { listen_addresses => '127.0.0.2' });
for my $c ($old, $new) {
    $c->psql_admin('CREATE TABLE w (writer text, n int, sent float8, at timestamptz DEFAULT clock_timestamp())',
                   dbname => $PgNearTest::APP_DB);
}

# dnsmasq on loopback, answering db.pgnear.test from $dir/hosts alone (NXDOMAIN for the rest of
# pgnear.test), the answers' TTL $TTL.
my $dir   = PgNearTest::tmpdir(name => 'dns', mode => 0755);
my $dport = PgNearTest::free_port();
sub set_record {
    my ($addr) = @_;
    PgNearTest::write_file("$dir/hosts", defined $addr ? "$addr $NAME\n" : "# none\n", mode => 0644);
}
set_record('127.0.0.1');
my $dns_pid = fork // die "fork: $!";
if ($dns_pid == 0) {
    open STDOUT, '>>', "$dir/dnsmasq.out";
    open STDERR, '>&', \*STDOUT;
    { no warnings 'exec'; exec $dnsmasq, '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts',
      '--bind-interfaces', '--listen-address=127.0.0.1', "--port=$dport", "--addn-hosts=$dir/hosts",
      "--local-ttl=$TTL", '--local=/pgnear.test/', "--pid-file=$dir/dnsmasq.pid",
      "--log-facility=$dir/dnsmasq.log", '--user=root'; }
    POSIX::_exit(127);
}
END { kill 'TERM', $dns_pid if $dns_pid; }
ok wait_until(sub { -s "$dir/dnsmasq.log" && PgNearTest::slurp_file("$dir/dnsmasq.log") =~ /read .*hosts/ },
              timeout => 10), 'dnsmasq serves the record'
  or BAIL_OUT('dnsmasq did not start: ' . (eval { PgNearTest::slurp_file("$dir/dnsmasq.out") } // ''));

my %dns = (dns_server => "127.0.0.1:$dport", dns_max_ttl => '15s', health_check_interval => "${INTERVAL}s");
my $regions = [{ name => 'eu-west', location => $old->location, hosts => ["$NAME:" . $old->port] }];
my $proxy = PgNearTest::Proxy->new(regions => $regions, settings => {%dns});
$proxy->wait_healthy;
# A second pgnear under auth = scram, whose sessions can be moved (one secret on both servers).
my $secret = $old->scram_verifier($PgNearTest::APP_USER);
$new->psql_admin("ALTER ROLE $PgNearTest::APP_USER PASSWORD '$secret'");
PgNearTest::write_file("$dir/users.txt", qq{"$PgNearTest::APP_USER" "$secret"\n});
my $scram = PgNearTest::Proxy->new(regions => $regions,
                                   settings => { %dns, auth => 'scram', auth_file => "$dir/users.txt" });
$scram->wait_healthy;

# A writer: one session through pgnear, a row (or, with $txn, two rows in one transaction)
# every 20 ms, each with the time its statement was sent; a failed session is opened again.
# Counts what was acknowledged and what failed into $dir/$name.result.  Runs until
# $dir/stop appears.
sub start_writer {
    my ($name, $txn, $through) = @_;
    my $ci = ($through // $proxy)->conninfo(connect_timeout => 20);
    my $parent = $$;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    my ($dbh, $n, $acked, $errors, $last_error) = (undef, 0, 0, 0, '');
    my $until = time + 120;
    while (!-e "$dir/stop" && time < $until && getppid() == $parent) {
        $dbh //= DBI->connect("dbi:Pg:$ci", undef, undef, { RaiseError => 0, PrintError => 0, AutoCommit => 1 });
        if (!$dbh) {
            ($errors, $last_error) = ($errors + 1, DBI->errstr // '?');
            sleep 0.05;
            next;
        }
        my $ok;
        if ($txn) {
            $ok = $dbh->begin_work
              && $dbh->do('INSERT INTO w (writer, n, sent) VALUES (?, ?, ?)', undef, $name, ++$n, time)
              && $dbh->do('INSERT INTO w (writer, n, sent) VALUES (?, ?, ?)', undef, $name, ++$n, time)
              && $dbh->commit;
        } else {
            $ok = $dbh->do('INSERT INTO w (writer, n, sent) VALUES (?, ?, ?)', undef, $name, ++$n, time);
        }
        if ($ok) {
            $acked += $txn ? 2 : 1;
        } else {
            ($errors, $last_error) = ($errors + 1, $dbh->errstr // '?');
            $dbh->disconnect;
            $dbh = undef;
        }
        sleep 0.02;
    }
    $last_error =~ s/\s+/ /g;
    PgNearTest::write_file("$dir/$name.result", "$acked $errors $last_error\n");
    POSIX::_exit(0);
}
my @writers = (['auto1', 0], ['auto2', 0], ['txn', 1], ['scram', 0, $scram]);
my @kids = map { start_writer(@$_) } @writers;

my $rows = sub {
    my ($c, $where) = @_;
    $c->psql_admin("SELECT count(*) FROM w" . ($where ? " WHERE $where" : ''), dbname => $PgNearTest::APP_DB);
};
ok wait_until(sub { $rows->($old) >= 30 }, timeout => 20), 'the writers write on 127.0.0.1 through pgnear';

# The move: the record edited, dnsmasq told (SIGHUP re-reads --addn-hosts).
my $log_at = $proxy->log_size;
my $t_move = time;
set_record('127.0.0.2');
kill 'HUP', $dns_pid;

# When pgnear saw it: the time of the swap's line, as the old address is fenced and the new one
# enters (UTC, ms; +1 ms for the truncation).  Its question's answer came a reload before.
my $seen_re = qr/^(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+)\.(\d+) UTC \w+ host \Q$NAME\E:\d+ of region eu-west moved from 127\.0\.0\.1 to 127\.0\.0\.2/m;
my $new_log = sub { my $l = $proxy->log_contents; substr($l, $log_at) };
ok wait_until(sub { $new_log->() =~ $seen_re }, timeout => 20), 'pgnear says the name moved'
  or diag $new_log->();
like $new_log->(), qr/host name "\Q$NAME\E" resolves to 127\.0\.0\.2 now, no longer to 127\.0\.0\.1/,
  'its question saw the new address';
sub seen_at {
    my @t = $_[0] =~ $seen_re;
    return @t ? timegm($t[5], $t[4], $t[3], $t[2], $t[1] - 1, $t[0]) + $t[6] / 1000 + 0.001 : time;
}
my $t_seen = seen_at($new_log->());

# The managed service demotes the old primary once the new one serves (the DNS moved after).
ok wait_until(sub { $rows->($new) > 0 }, timeout => 20), 'writes land on 127.0.0.2';
$old->psql_admin(['ALTER SYSTEM SET default_transaction_read_only = on', 'SELECT pg_reload_conf()']);
my $t_first_new = $new->psql_admin('SELECT extract(epoch FROM min(at)) FROM w', dbname => $PgNearTest::APP_DB);
my $follow = length $t_first_new ? $t_first_new - $t_move : 9e9;    # none: never followed
diag sprintf 'the move was seen %.3f s after the record changed; the first write on 127.0.0.2 '
  . 'came %.3f s after it (bound: TTL %d s + health check interval %d s)', $t_seen - $t_move, $follow, $TTL, $INTERVAL;
cmp_ok $follow, '<=', $TTL + $INTERVAL, 'followed within the TTL and one health-check interval';

my $after = $rows->($new);
ok wait_until(sub { $rows->($new) >= $after + 50 }, timeout => 20), 'the writers go on on 127.0.0.2';

# The record goes away: 127.0.0.2 is kept, said once.
$log_at = $proxy->log_size;
set_record(undef);
kill 'HUP', $dns_pid;
my $gone_re = qr/host name "\Q$NAME\E" does not resolve.*keep their last address 127\.0\.0\.2/;
ok wait_until(sub { $new_log->() =~ $gone_re }, timeout => 20 + $TTL), 'pgnear says the name does not resolve'
  or diag $new_log->();
$after = $rows->($new);
sleep 4 * $TTL + 1;    # asked again every TTL..dns_max_ttl: at least a few more times
my @said = $new_log->() =~ /$gone_re/g;
is scalar(@said), 1, 'said once, however often it is asked again';
cmp_ok $rows->($new), '>=', $after + 50, 'the writers go on on the last address';
unlike $new_log->(), qr/configuration reloaded/, 'no reload for a name that stopped resolving';

PgNearTest::write_file("$dir/stop", '');
waitpid $_, 0 for @kids;
for my $w (@writers) {
    my $r = eval { PgNearTest::slurp_file("$dir/$w->[0].result") } // 'none';
    diag "writer $w->[0]: acknowledged, errors, last error: $r";
}

# The scram pgnear's writer goes on on the new address.  Its session is moved there when the move
# finds it idle, ended when it is mid-statement (as on a fenced former primary): which one is
# timing, so printed, not asserted; a block below moves an idle one.  A write that reached the old
# server after it was demoted is read-only there (25006).
my ($scram_acked, $scram_errors) = split ' ', eval { PgNearTest::slurp_file("$dir/scram.result") } // '0 ?';
diag "under auth = scram: $scram_errors errors";
ok $rows->($new, "writer = 'scram'") > 0, 'the scram writer goes on on 127.0.0.2';
diag "the scram pgnear: $_" for $scram->log_contents =~ /^.*(?:fenced as a former primary|moved from region|cannot be moved|could not be moved).*$/mg;

# No row sent after a pgnear saw the move landed on the old address (each by its own line).
my $t_seen_scram = seen_at($scram->log_contents);
is $rows->($old, "writer = 'scram' AND sent > $t_seen_scram"), 0,
  'no write on 127.0.0.1 through the scram pgnear was sent after it saw the move';
my $late = $rows->($old, "writer <> 'scram' AND sent > $t_seen");
is $late, 0, 'no write on 127.0.0.1 was sent after the move was seen'
  or diag $old->psql_admin("SELECT writer, n, sent - $t_seen FROM w WHERE sent > $t_seen ORDER BY sent LIMIT 10",
                           dbname => $PgNearTest::APP_DB);
diag sprintf 'rows: %d on 127.0.0.1, %d on 127.0.0.2', $rows->($old), $rows->($new);

$proxy->stop;
$scram->stop;

# A DNS server that answers nothing, as CI's resolver did for "localhost": dnsmasq stopped
# (SIGSTOP; its socket still takes the questions, and they wait in its receive queue), pgnear
# stopped while its question is in flight.  It stops at once, and what the question held is let
# go (libevent answers it DNS_ERR_SHUTDOWN on a turn of the loop after the loop had ended: every
# such pgnear leaked, which the sanitizers' check at exit reports).
{
    set_record('127.0.0.2');
    kill 'HUP', $dns_pid;
    my $p = PgNearTest::Proxy->new(regions => $regions, settings => {%dns});
    ok wait_until(sub { $p->log_contents =~ /host name "\Q$NAME\E" resolves to 127\.0\.0\.2/
                        || questions_waiting($dport) == 0 }, timeout => 10), 'a pgnear follows the name';
    kill 'STOP', $dns_pid;
    ok wait_until(sub { questions_waiting($dport) > 0 }, timeout => 3 * $TTL + 5),
      '... and asks again while the DNS server answers nothing';
    my $t0 = time;
    is $p->stop, 0, '... stopped, its question in flight: status 0';
    cmp_ok time - $t0, '<', 2, sprintf('... at once (%.1f s)', time - $t0);
    kill 'CONT', $dns_pid;
    unlike $p->log_contents, qr/Sanitizer|runtime error:/, '... letting go of what its question held'
      or diag $p->log_contents;
}

# A name moved to a server not yet checked: under auth = scram, the session on the old address
# is moved once the new one's first check tells it is the primary, not ended at once.  The new
# address's postmaster is stopped (SIGSTOP: its kernel takes connections, nothing logs in) as the
# record moves back to 127.0.0.1, and let go a second after pgnear saw the move.
{
    $old->psql_admin(['ALTER SYSTEM RESET default_transaction_read_only', 'SELECT pg_reload_conf()']);
    my $p = PgNearTest::Proxy->new(regions => $regions,
                                   settings => { %dns, auth => 'scram', auth_file => "$dir/users.txt" });
    $p->wait_healthy;
    my $c = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 20);
    $c->startup(user => $PgNearTest::APP_USER, database => $PgNearTest::APP_DB,
                password => $PgNearTest::APP_PASSWORD);
    my $addr = sub { my $q = $c->query('SELECT host(inet_server_addr())'); $q->{error} ? "error: $q->{error}{M}" : $q->{rows}[0][0] };
    is $addr->(), '127.0.0.2', 'a scram session on 127.0.0.2';
    my $at = $p->log_size;
    kill 'STOP', $old->pid;
    set_record('127.0.0.1');
    kill 'HUP', $dns_pid;
    my $fenced = $p->wait_for_log(qr/moving: its host \Q$NAME\E:\d+ of region eu-west is fenced as a former primary/,
                                  offset => $at, timeout => 20);
    sleep 1;
    kill 'CONT', $old->pid;
    ok $fenced, 'the record moves to a server not checked yet: the session is to leave 127.0.0.2';
    ok $p->wait_for_log(qr/moved from region eu-west to region eu-west/, offset => $at, timeout => 20),
      '... and is moved once that server is known to be the primary';
    is $addr->(), '127.0.0.1', '... where it runs on';
    unlike substr($p->log_contents, $at), qr/could not be moved|cannot be moved/, '... not ended';
    $p->stop(signal => 'INT');
}

# A login under way as the name moves: the SCRAM exchange is held before its proof while the record
# moves to 127.0.0.2 and pgnear fences 127.0.0.1; the login, begun under the configuration whose
# only address is now fenced, takes the one loaded since and logs in there (08001 before: no host).
{
    my $p = PgNearTest::Proxy->new(regions => $regions,
                                   settings => { %dns, auth => 'scram', auth_file => "$dir/users.txt" });
    $p->wait_healthy;
    my $at = $p->log_size;
    my $c = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 20);
    my $fenced;
    my $r = $c->startup(user => $PgNearTest::APP_USER, database => $PgNearTest::APP_DB,
                        password => $PgNearTest::APP_PASSWORD, before_final => sub {
        set_record('127.0.0.2');
        kill 'HUP', $dns_pid;
        $fenced = $p->wait_for_log(qr/host \Q$NAME\E:\d+ of region eu-west moved from 127\.0\.0\.1 to 127\.0\.0\.2/,
                                   offset => $at, timeout => 20);
    });
    ok $fenced, 'a login under way as the name moves to 127.0.0.2';
    ok $r->{ok}, '... logs in' or diag explain $r->{error};
    my $q = $r->{ok} ? $c->query('SELECT host(inet_server_addr())') : {};
    is $q->{rows} && $q->{rows}[0][0], '127.0.0.2', '... on the new address';
    $p->stop(signal => 'INT');
}

# The bytes waiting in the receive queue of the UDP socket on 127.0.0.1:$port (/proc/net/udp).
sub questions_waiting {
    my ($port) = @_;
    my $want = sprintf '0100007F:%04X', $port;
    for (split /\n/, PgNearTest::slurp_file('/proc/net/udp')) {
        my @f = split ' ';
        next unless @f > 4 && $f[1] eq $want;
        my (undef, $rx) = split /:/, $f[4];
        return hex $rx;
    }
    return 0;
}
done_testing;
