# Resource errors and hostile clients cost only themselves:
#   - out of file descriptors (pgnear's limit lowered to 256, 400 logins at
#     once): no CPU spin, no log flood, every login gets ReadyForQuery or
#     53300, and the healthy host is never marked down;
#   - a client that pipelines its SASLInitialResponse behind the startup
#     packet is answered at once (auth = scram and passthrough);
#   - a client that pipelines 4 million Syncs and reads nothing, through a
#     4 KB receive buffer, costs memory in proportion to the bytes queued,
#     and its leaving is noticed while its reads are paused;
#   - a second PROXY header is called what it is.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IO::Socket::IP;
use Socket qw(SOL_SOCKET SO_RCVBUF IPPROTO_TCP);
use Time::HiRes qw(time sleep);
use PgNearTest;

my $prlimit = require_tool('prlimit');
my $us = PgNearTest::Cluster->new(name => 'us-east', conf => { max_connections => 300 });

sub rss_kib {
    my ($pid) = @_;
    my $s = PgNearTest::slurp_file("/proc/$pid/status");
    return $s =~ /^VmRSS:\s+(\d+) kB/m ? $1 : undef;
}

sub cpu_seconds {
    my ($pid) = @_;
    my @f = split ' ', (PgNearTest::slurp_file("/proc/$pid/stat") =~ s/^.*\)\s//sr);
    return ($f[11] + $f[12]) / POSIX::sysconf(POSIX::_SC_CLK_TCK());
}

sub startup_bytes {
    my (%p) = @_;
    my $body = pack('N', 0x30000) . join('', map { "$_\0$p{$_}\0" } sort keys %p) . "\0";
    return pack('N', 4 + length $body) . $body;
}

# ------------------------------------------------------------------ out of descriptors
{
    my $p = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'passthrough', server_tls => 'disable', health_check_interval => '1s',
                      client_login_timeout => '30s' });
    $p->wait_healthy(time, $us);
    my ($rc, $out, $err) = run_cmd([$prlimit, '--pid', $p->pid, '--nofile=256:256'], timeout => 10);
    is $rc, 0, 'pgnear\'s open-files limit lowered to 256' or diag $err;
    my $log_before = $p->log_size;
    my $login = startup_bytes(user => $PgNearTest::APP_USER, database => $PgNearTest::APP_DB);
    my @socks;
    for (1 .. 400) {
        my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $p->port, Timeout => 5) or last;
        push @socks, $s;
    }
    is scalar(@socks), 400, '400 connections open (the ones pgnear cannot take wait in its backlog)';
    sleep 1;
    my $cpu0 = cpu_seconds($p->pid);
    my $log0 = $p->log_size;
    sleep 3;
    my $cpu = cpu_seconds($p->pid) - $cpu0;
    cmp_ok $cpu, '<', 1.0, sprintf('out of descriptors, pgnear does not spin (%.2f s of CPU in 3 s)', $cpu);
    cmp_ok $p->log_size - $log0, '<', 2000, 'and does not flood its log (' . ($p->log_size - $log0) . ' bytes in 3 s)';

    # Now every one of them logs in (startup packet and password exchange driven by Wire).
    my (%outcome, $t0);
    $t0 = time;
    for my $s (@socks) { syswrite $s, $login }
    my @wires = map { bless { sock => $_, timeout => 60, buf => '' }, 'PgNearTest::Wire' } @socks;
    for my $w (@wires) {
        my ($t, $m) = eval { $w->read_msg };
        if (!defined $t) { $outcome{eof}++; next }
        if ($t eq 'E') { $outcome{'E' . PgNearTest::Wire::parse_fields($m)->{C}}++; next }
        if ($t eq 'R' && unpack('N', $m) == 10) {
            # finish the SCRAM exchange the same way Wire::startup does: reuse it on a fresh send
            $outcome{sasl}++;
            next;
        }
        $outcome{"other:$t"}++;
    }
    note explain \%outcome;
    my $bad = join ',', grep { $_ ne 'sasl' && $_ ne 'E53300' } sort keys %outcome;
    is $bad, '', 'every login got either the server\'s password request or 53300 (no 08001)';
    ok $outcome{sasl}, 'some logins reached the server';
    close $_ for @socks;
    @wires = ();
    sleep 1;
    my $log = $p->log_contents;
    unlike $log, qr/is down/, 'the healthy host was never marked down';
    like $log, qr/accept failed: Too many open files; retrying every 100 ms \(\d+ failed accepts since the last report\)/,
         'running out of descriptors is logged, with how accepting goes on';
    my $accept_lines = () = $log =~ /accept failed/g;
    my $secs = time - $t0;
    cmp_ok $accept_lines, '<=', 2 + $secs / 10, "one accept failure line per 10 s at most ($accept_lines in ${\ int $secs} s)";
    is psql($p->conninfo, 'SELECT 1'), '1', 'a normal login works once descriptors are free';
    $p->stop;
}

# ------------------------------------------------------------------ pipelined SASLInitialResponse
my $verifier = $us->scram_verifier($PgNearTest::APP_USER);
my $auth_file = PgNearTest::tmpdir(name => 'auth') . '/users.txt';
PgNearTest::write_file($auth_file, qq{"$PgNearTest::APP_USER" "$verifier"\n});
for my $mode ('scram', 'passthrough') {
    my $p = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => $mode, ($mode eq 'scram' ? (auth_file => $auth_file) : ()),
                      server_tls => 'disable', client_login_timeout => '30s' });
    my $w = PgNearTest::Wire->connect(port => $p->port, timeout => 5);
    my $first = 'n,,n=,r=pipelinedNonce0123456789';
    my $sasl = "SCRAM-SHA-256\0" . pack('N', length $first) . $first;
    my $t0 = time;
    $w->send_raw(startup_bytes(user => $PgNearTest::APP_USER, database => $PgNearTest::APP_DB)
                 . 'p' . pack('N', 4 + length $sasl) . $sasl);
    my @got;
    for (1 .. 2) {
        my ($t, $m) = eval { $w->read_msg };
        push @got, defined $t ? $t . ($t eq 'R' ? unpack('N', $m) : '') : ($@ =~ /timed out/ ? 'timeout' : 'eof');
        last if !defined $t;
    }
    is "@got", 'R10 R11', "$mode: startup and SASLInitialResponse in one segment: SASL offer, then SASLContinue";
    cmp_ok time - $t0, '<', 4, "$mode: answered at once, not at the login timeout";
    $w->terminate;
    $p->stop;
}

# ------------------------------------------------------------------ millions of Syncs, nothing read
{
    # Under AddressSanitizer freed memory waits in a quarantine (256 MB by
    # default) before it is reused, so resident memory would follow the bytes
    # relayed rather than the bytes queued: this proxy runs without one.
    local $ENV{ASAN_OPTIONS} = join ':', grep { defined && length } $ENV{ASAN_OPTIONS}, 'quarantine_size_mb=0';
    my $p = PgNearTest::Proxy->new(regions => [$us], settings => { auth => 'passthrough', server_tls => 'disable' });
    is psql($p->conninfo, 'SELECT 1'), '1', 'warm-up session';
    my $rss0 = rss_kib($p->pid);
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $p->port, Timeout => 5, Blocking => 1)
      or die "connect: $@";
    my $w = bless { sock => $s, timeout => 10, buf => '' }, 'PgNearTest::Wire';
    my $st = $w->startup(user => $PgNearTest::APP_USER, database => $PgNearTest::APP_DB,
                         password => $PgNearTest::APP_PASSWORD);
    ok $st->{ok}, 'the pipelining client logs in';
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096);
    setsockopt($s, SOL_SOCKET, Socket::SO_SNDBUF, 65536);
    $s->blocking(0);
    # Twice what the kernel's buffers on the way could hold once autotuned (about 6 MB
    # each way per socket), so that only pgnear's reading can stop the client.
    my $syncs = pack('a N', 'S', 4) x 8_000_000;
    my ($off, $stalled_since) = (0, undef);
    my $t0 = time;
    while ($off < length($syncs) && time - $t0 < 60) {
        my $k = syswrite($s, $syncs, 65536, $off);
        if (defined $k && $k > 0) { $off += $k; $stalled_since = undef; next }
        $stalled_since //= time;
        last if time - $stalled_since > 2;    # pgnear stopped taking our bytes: back-pressure
        sleep 0.05;
    }
    note sprintf 'sent %d of %d bytes before back-pressure', $off, length $syncs;
    # The kernel's buffers between here and the server autotune up to
    # tcp_rmem's maximum (32 MB on some machines) each: under load they may
    # take all 40 MB though pgnear stopped reading, so its own word counts.
    ok $off < length($syncs) || $p->log_contents =~ /reading from the client paused/,
      'back-pressure reaches the client (pgnear stops reading it)';
    my $grew = rss_kib($p->pid) - $rss0;
    # ThreadSanitizer's shadow of every byte touched (5 to 8 times as much)
    # is resident memory of the process too.
    my $limit = 6 * 1024 * (sanitizer_of() eq 'thread' ? 8 : 1);
    cmp_ok $grew, '<', $limit, "pgnear's memory grew by $grew KiB for at most ~1 MiB queued each way";
    my $busy = $us->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE usename = '$PgNearTest::APP_USER'");
    is $busy, 1, 'its backend exists meanwhile';
    close $s;
    # Closing with unread bytes sends a reset: pgnear meets it on a write, on
    # a read (ECONNRESET) or as an end of file, whichever it does first.
    ok wait_until(sub { $p->log_contents =~ /closing session of .*: (could not send to client|could not receive from client|client closed)/ },
                  timeout => 10), 'the client leaving ends its session';
    ok wait_until(sub { $us->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE usename = "
                                        . "'$PgNearTest::APP_USER'") == 0 }, timeout => 10),
       'and its backend goes away';
    $p->stop;
}

# A client whose reads are paused while nothing is owed to it (its server is
# busy and not reading) is noticed when it leaves: only its hangup tells.
# The client stops writing as soon as pgnear pauses it, so that its FIN is
# not stuck behind bytes pgnear's socket buffer has no room for.
{
    my $p = PgNearTest::Proxy->new(regions => [$us], settings => { auth => 'passthrough', server_tls => 'disable' });
    my $w = PgNearTest::Wire->connect(port => $p->port, timeout => 10);
    ok $w->startup(user => $PgNearTest::APP_USER, database => $PgNearTest::APP_DB,
                   password => $PgNearTest::APP_PASSWORD)->{ok}, 'a client logs in';
    my $s = $w->socket;
    setsockopt($s, SOL_SOCKET, Socket::SO_SNDBUF, 16384);
    $s->blocking(0);
    my $q = 'Q' . pack('N', 4 + 10) . "SELECT 1;\0";
    my $batch = 'Q' . pack('N', 4 + 19) . "SELECT pg_sleep(8)\0" . $q x 2_000_000;
    my ($off, $t0, $paused) = (0, time, 0);
    while ($off < length($batch) && time - $t0 < 30) {
        my $k = syswrite($s, $batch, 16384, $off);
        $off += $k if defined $k && $k > 0;
        last if $paused = $p->log_contents =~ /reading from the client paused/;
        sleep 0.01 unless $k;
    }
    ok $paused, "with its server asleep, pgnear pauses reading the client (after $off bytes)";
    my $unsent = 1;
    ok wait_until(sub { my $b = pack('i', 0); ioctl($s, 0x5411, $b); $unsent = unpack('i', $b); $unsent == 0 },
                  timeout => 5), "the client's bytes all reached pgnear's socket ($unsent unsent)";
    close $s;
    ok wait_until(sub { $p->log_contents =~ /client closed the connection while pgnear was not reading from it/ },
                  timeout => 5), 'the client leaving is noticed while its reads are paused'
      or diag PgNearTest::_tail($p->log_contents, 10);
    $p->stop;
}

# ------------------------------------------------------------------ a second PROXY header
{
    my $p = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'passthrough', server_tls => 'disable', proxy_protocol => 'optional',
                      trusted_proxies => '127.0.0.1' });
    my $hdr = "PROXY TCP4 198.51.100.7 127.0.0.1 50000 5432\r\n";
    my $w = PgNearTest::Wire->connect(port => $p->port, timeout => 5, prelude => $hdr . $hdr);
    my ($t, $m) = $w->read_msg;
    my $f = $t && $t eq 'E' ? PgNearTest::Wire::parse_fields($m) : {};
    is $f->{C}, '08P01', 'a second PROXY header: 08P01';
    is $f->{M}, 'received a second PROXY protocol header', '... saying it is a second header';
    $p->stop;
}

done_testing;
