# Big traffic through every combination of client plain/TLS x server
# plain/TLS, the shapes users run (TLS on one side only included: a
# partial TLS write once left a session waiting on the wrong event for
# ever).  Each combination moves at least 16 MB each way, well over what
# the socket buffers of a loopback connection hold (a few MB), so writes
# come out partial many times over:
#   - the 17,000-character query that used to hang, and one 16 MB Query
#     written by libpq in one large write;
#   - 16 MB of rows out (2 KB DataRows), and one 2 MB row;
#   - COPY in of 16 MB from psql (8 KB CopyData writes) and from DBD::Pg
#     in one large pg_putcopydata, checked on the server;
#   - COPY out of 16 MB, checked against the bytes that went in;
#   - 25,000 pipelined Syncs answered by 25,000 ReadyForQuery.
# Every step has a timeout: a stall fails the test instead of hanging it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Digest::MD5 qw(md5_hex);
use IO::Select;
use Time::HiRes qw(time);
use PgNearTest;

require_tool('psql');
require_tool('openssl');
use DBI;
use DBD::Pg;

my $MB = 1024 * 1024;
my $ca = PgNearTest::CA->new;
my $cert = $ca->issue(name => 'pgnear', cn => 'localhost', san => ['DNS:localhost', 'IP:127.0.0.1'],
                      owner => undef);
my $pg = PgNearTest::Cluster->new(name => 'us-east', ca => $ca);
my %client_tls = (client_tls => 'allow', client_tls_cert_file => $cert->{cert},
                  client_tls_key_file => $cert->{key});
my %proxy = (
    plain => PgNearTest::Proxy->new(regions => [$pg],
        settings => { auth => 'passthrough', server_tls => 'disable', %client_tls }),
    tls => PgNearTest::Proxy->new(regions => [$pg],
        settings => { auth => 'passthrough', server_tls => 'verify-full', server_tls_ca_file => $ca->cert,
                      %client_tls }),
);

psql($pg->conninfo, 'CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)');

# ---- data, made once: over 16 MB of COPY text in 8,000 rows of 2 KB
my $ROWS = 8_000;
my @row_values = map { md5_hex("row-$_") x 66 } 1 .. $ROWS;    # 2,112 bytes each
my $copy_text = join '', map { "$_\t$row_values[$_ - 1]\n" } 1 .. $ROWS;
my $copy_md5 = md5_hex($copy_text);
cmp_ok length($copy_text), '>=', 16 * $MB, sprintf('COPY data is %.1f MB', length($copy_text) / $MB);
my $big_literal = 'q' x (16 * $MB);

sub psql_raw {
    my ($ci, $sql, %o) = @_;
    my @cmd = (require_tool('psql'), '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1',
               (defined $sql ? ('-c', $sql) : ('-f', '-')), '-d', $ci);
    return run_cmd(\@cmd, timeout => $o{timeout} // 120, stdin => $o{stdin});
}

# Writes and reads at once (as a pipelining driver does): n Syncs out, n ReadyForQuery back.
sub pipelined_syncs_plain {
    my ($port, $n) = @_;
    my $w = PgNearTest::Wire->connect(port => $port, timeout => 60);
    my $st = $w->startup(user => $PgNearTest::APP_USER, database => $PgNearTest::APP_DB,
                         password => $PgNearTest::APP_PASSWORD);
    return "login failed" unless $st->{ok};
    my $sock = $w->socket;
    my $out = pack('a N', 'S', 4) x $n;
    my ($off, $in, $deadline) = (0, '', time + 120);
    my $want = 6 * $n;
    my $sel = IO::Select->new($sock);
    while (length($in) < $want) {
        return sprintf('stalled: %d of %d bytes sent, %d of %d received', $off, length $out,
                       length $in, $want) if time > $deadline;
        my ($r, $wr) = IO::Select->select($sel, $off < length $out ? $sel : undef, undef, 5);
        if ($wr && @$wr) {
            my $k = syswrite($sock, $out, 65536, $off);
            $off += $k if defined $k;
        }
        if ($r && @$r) {
            my $k = sysread($sock, my $chunk, 262144);
            return "connection closed after " . length($in) . " bytes" if !$k;
            $in .= $chunk;
        }
    }
    $w->terminate;
    return $in eq pack('a N a', 'Z', 5, 'I') x $n ? 'ok' : 'wrong replies';
}

sub pipelined_syncs_tls {
    my ($port, $n) = @_;
    my $w = PgNearTest::TlsWire->connect(host => '127.0.0.1', port => $port, ca => $ca->cert,
                                          timeout => 120);
    my $st = $w->startup(user => $PgNearTest::APP_USER, database => $PgNearTest::APP_DB,
                         password => $PgNearTest::APP_PASSWORD);
    return "login failed: " . $w->stderr unless $st->{ok};
    $w->send_raw(pack('a N', 'S', 4) x $n);    # s_client reads while it writes
    my $in = $w->read_bytes(6 * $n);
    $w->terminate;
    return !defined $in ? 'connection closed' : $in eq pack('a N a', 'Z', 5, 'I') x $n ? 'ok' : 'wrong replies';
}

for my $server_side ('plain', 'tls') {
    my $p = $proxy{$server_side};
    for my $client_side ('plain', 'tls') {
        my $name = "client $client_side, server $server_side";
        my $ci = $p->conninfo($client_side eq 'tls'
            ? (sslmode => 'verify-full', sslrootcert => $ca->cert, host => 'localhost',
               channel_binding => 'disable') : ());    # passthrough: see 060_tls.t
        my $t0 = time;
        is psql($ci, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'),
           $server_side eq 'tls' ? 't' : 'f', "$name: the server connection is as configured";

        # Queries: the 17,000-character one, and 16 MB in one Query message.
        is psql($ci, "SELECT length('" . ('x' x 17_000) . "')"), 17_000, "$name: a 17,000-character query";
        # (The literal once: a 16 MB Query, not 32 MB that took twice the time to build, send and parse.)
        my ($rc, $out, $err) = psql_raw($ci, undef,
            stdin => "SELECT length(v), md5(v) FROM (VALUES ('$big_literal')) s (v);\n");
        is $rc, 0, "$name: a 16 MB query" or diag $err;
        chomp $out;
        is $out, (16 * $MB) . '|' . md5_hex($big_literal), "$name: ... answered with the right length and md5";

        # Rows out: one 2 MB row, a 100,000-byte value, then 16 MB of 2 KB rows.
        ($rc, $out, $err) = psql_raw($ci, "SELECT repeat('y', 2097152)");
        is $rc . ':' . length($out) . ':' . ($out =~ tr/y//), '0:2097153:2097152', "$name: a 2 MB row" or diag $err;
        is psql($ci, "SELECT md5(repeat('y', 100000))"), md5_hex('y' x 100_000), "$name: a 100,000-byte value";
        ($rc, $out, $err) = psql_raw($ci,
            "SELECT i, repeat(md5('row-' || i), 66) FROM generate_series(1, $ROWS) i ORDER BY i");
        is $rc, 0, "$name: 16 MB of rows out" or diag $err;
        is md5_hex($out), md5_hex(join '', map { "$_|$row_values[$_ - 1]\n" } 1 .. $ROWS),
           "$name: ... every row arrived whole and in order";

        # COPY in from 8 KB writes (psql), then from one large write (DBD::Pg).
        psql($ci, 'TRUNCATE t');
        ($rc, $out, $err) = psql_raw($ci, 'COPY t FROM STDIN', stdin => $copy_text);
        is $rc, 0, "$name: COPY in of 16 MB from psql" or diag $err;
        is $pg->psql_admin("SELECT count(*), md5(string_agg(id || E'\\t' || v || E'\\n', '' ORDER BY id)) FROM t",
                           dbname => $PgNearTest::APP_DB),
           "$ROWS|$copy_md5", "$name: ... the server holds exactly those rows";
        psql($ci, 'TRUNCATE t');
        my $dbh = dbi_connect($ci, pg_enable_utf8 => 0);
        ok $dbh, "$name: DBD::Pg connects" or diag $DBI::errstr;
        my $copied = $dbh && eval {
            $dbh->do('COPY t FROM STDIN') && $dbh->pg_putcopydata($copy_text) && $dbh->pg_putcopyend;
        };
        ok $copied, "$name: COPY in of 16 MB in one pg_putcopydata" or diag $dbh && $dbh->errstr;
        $dbh->disconnect if $dbh;

        # COPY out, compared with what went in.
        ($rc, $out, $err) = psql_raw($ci, 'COPY (SELECT * FROM t ORDER BY id) TO STDOUT');
        is $rc, 0, "$name: COPY out of 16 MB" or diag $err;
        is length($out) . ' ' . md5_hex($out), length($copy_text) . " $copy_md5",
           "$name: ... the bytes that went in";

        # Pipelined Syncs: 25,000 (125 KB out, 150 KB of ReadyForQuery back while more goes out) are
        # thousands of messages each way at once, many times the 16 KB a loopback socket starts with;
        # 100,000 took four times as long (half a minute with TLS on both sides) for no more.
        my $SYNCS = 25_000;
        my $res = $client_side eq 'tls' ? pipelined_syncs_tls($p->port, $SYNCS)
                                        : pipelined_syncs_plain($p->port, $SYNCS);
        is $res, 'ok', "$name: 25,000 pipelined Syncs, 25,000 ReadyForQuery";
        note sprintf '%s took %.1fs', $name, time - $t0;
    }
    ok $p->is_running, "server $server_side: pgnear is still running";
    unlike $p->log_contents, qr/could not send|out of memory/, "server $server_side: no send errors logged";
}

done_testing;
