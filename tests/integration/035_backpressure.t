# Back-pressure: a client that stops reading a 200 MB result makes pgnear
# stop reading from that server (its memory stays flat, the server waits),
# other sessions go on at full speed meanwhile, and when the client reads
# again every byte arrives.  The same the other way: a server that is
# busy does not make pgnear swallow a client's 64 MB of COPY data.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $p = PgNearTest::Proxy->new(regions => [$us], settings => { auth => 'passthrough', server_tls => 'disable' });

sub rss_kb {
    my ($pid) = @_;
    my ($kb) = PgNearTest::slurp_file("/proc/$pid/status") =~ /^VmRSS:\s+(\d+) kB/m;
    return $kb;
}

sub login {
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 60);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    die "login failed\n" unless $r->{ok};
    return $w;
}

my $ROWS = 200;
my $ROW_BYTES = 1_000_000;
my $base_rss = rss_kb($p->pid);
ok $base_rss, "pgnear's resident memory before: $base_rss kB";

# ---- a client that does not read
my $slow = login();
$slow->send_msg('Q', "SELECT repeat('x', $ROW_BYTES) FROM generate_series(1, $ROWS)\0");
sleep 3;    # the server produces far faster than this: all 200 MB would be queued by now
my $stalled_rss = rss_kb($p->pid);
cmp_ok $stalled_rss - $base_rss, '<', 32 * 1024,
  sprintf('client not reading a %d MB result: pgnear grew by %d kB only', $ROWS * $ROW_BYTES / 1e6,
          $stalled_rss - $base_rss);
my $sending = $us->psql_admin(
    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT repeat(%' AND wait_event = 'ClientWrite'");
is $sending, 1, "the server waits to write (wait_event ClientWrite): pgnear stopped reading from it";

# ---- others are not held up
{
    my $t0 = time;
    my $ok = 0;
    for (1 .. 20) {
        my $w = login();
        $ok++ if $w->query('SELECT 42')->{rows}[0][0] == 42;
        $w->terminate;
    }
    is $ok, 20, '20 other sessions meanwhile';
    cmp_ok time - $t0, '<', 10, sprintf('... at their usual pace (%.2f s for 20 logins and queries)', time - $t0);
}

# ---- the slow client reads everything
{
    my ($rows, $bytes, $done) = (0, 0, 0);
    while (my ($type, $payload) = $slow->read_msg) {
        if ($type eq 'D') {
            my ($n, $len) = unpack('n N', $payload);
            $rows++;
            $bytes += $len;
            $rows == 1 and ok substr($payload, 6, 10) eq 'x' x 10, 'the first row starts as it should';
        }
        if ($type eq 'Z') { $done = 1; last }
    }
    ok $done, 'the slow client reads the whole result, ReadyForQuery at the end';
    is $rows, $ROWS, "$ROWS rows";
    is $bytes, $ROWS * $ROW_BYTES, 'every byte of them';
    is $slow->query('SELECT 1')->{rows}[0][0], 1, 'the session goes on';
}

# ---- the other way: a client sending faster than the server takes
{
    my $w = login();
    # Measured from here: what the first part allocated and freed (ASan
    # keeps freed memory in quarantine) is not this part's.
    my $before = rss_kb($p->pid);
    # The server holds the session on a lock while the client streams 64 MB
    # of COPY data: pgnear must stop reading from the client, not buffer it.
    my $blocker = PgNearTest::Wire->connect(host => '127.0.0.1', port => $us->port, timeout => 60);
    $blocker->startup(user => 'app', database => 'movr', password => 'app-secret');
    $blocker->query('CREATE TABLE gate (x int)');
    $blocker->query('BEGIN');
    $blocker->query('LOCK TABLE gate IN ACCESS EXCLUSIVE MODE');
    $w->send_msg('Q', "SELECT count(*) FROM gate\0");    # waits for the lock
    my $chunk = 'y' x (1 << 20);
    my $sent = 0;
    my $sock = $w->socket;
    $sock->blocking(0);
    my $t_end = time + 5;
    while (time < $t_end && $sent < 64 * (1 << 20)) {
        my $n = syswrite($sock, $chunk);
        if (defined $n) { $sent += $n } else { sleep 0.05 }
    }
    $sock->blocking(1);
    my $grown = rss_kb($p->pid) - $before;
    cmp_ok $sent, '<', 64 * (1 << 20), sprintf('a server not reading: the client could write only %.1f MB before pgnear stopped taking more', $sent / (1 << 20));
    cmp_ok $grown, '<', 32 * 1024, "... and pgnear grew by $grown kB";
    $blocker->query('ROLLBACK');
    $blocker->terminate;
    $w->socket->close;
}

ok $p->is_running, 'pgnear is running';
done_testing;
