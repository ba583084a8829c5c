# COPY through pgnear: more than 10 MB in and out with checksums, a single
# 20 MB value (bigger than any proxy buffer) both ways, text and binary
# COPY compared with the same COPY taken straight from the server, and a
# COPY FROM with a bad row giving the server's error on a session that
# stays usable; and the 20 MB value both ways with TLS on both sides of
# pgnear (partial TLS writes, the relay's direct and queued paths in turn).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Digest::MD5 qw(md5_hex);
use Time::HiRes qw(time);
use PgNearTest;

require_tool('psql');
use DBI;
use DBD::Pg;

# One server for both parts: TLS on (for the last part's pgnear) costs the plain part nothing,
# its connections ask for none, and a second cluster for the TLS part would cost a start.
my $ca = PgNearTest::CA->new;
my $us = PgNearTest::Cluster->new(name => 'us-east', ca => $ca);
my $p  = PgNearTest::Proxy->new(regions => [$us],
                                settings => { auth => 'passthrough', server_tls => 'disable' });
my $via    = $p->conninfo;     # through pgnear
my $direct = $us->conninfo;    # straight to the server

# psql without the harness's trimming: exact stdout bytes.
sub psql_raw {
    my ($ci, $sql, %o) = @_;
    my @cmd = (require_tool('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', $sql, '-d', $ci);
    return run_cmd(\@cmd, timeout => $o{timeout} // 60, stdin => $o{stdin});
}

# ---- deterministic rows, > 10 MB of COPY text
# Columns: id int, a text, b text, n bigint.  No tab, newline or backslash
# in the values, so the COPY text form is the values joined by tabs.  Some
# rows carry UTF-8 (e-acute, as raw bytes) to check bytes pass untouched.
my $NROWS = 100_000;
my @lines;
for my $id (1 .. $NROWS) {
    my $a = "row-$id-" . ('abcdefghij' x (2 + $id % 9)) . ($id % 7 == 0 ? "-caf\xc3\xa9" : '');
    my $b = md5_hex("pgnear-$id") . md5_hex("copy-$id");
    my $n = ($id * 7919) % 1_000_003 - 500_000;
    push @lines, "$id\t$a\t$b\t$n";
}
my $copy_text = join('', map { "$_\n" } @lines);
my $perl_md5  = md5_hex(join("\n", @lines));
my $copy_md5  = md5_hex($copy_text);
cmp_ok length($copy_text), '>=', 10 * 1024 * 1024,
    sprintf('generated %.1f MB of COPY data', length($copy_text) / 1048576);
@lines = ();

psql($via, 'CREATE TABLE t (id int PRIMARY KEY, a text NOT NULL, b text NOT NULL, n bigint NOT NULL)');

# ---- COPY FROM STDIN through pgnear
my $t0 = time;
my ($rc, $out, $err) = psql_raw($via, 'COPY t FROM STDIN', stdin => $copy_text);
is $rc, 0, 'COPY t FROM STDIN through pgnear succeeds' or diag $err;
like $out . $err, qr/^$/, 'no output from a quiet COPY FROM' or diag "$out$err";
note sprintf 'COPY in took %.2fs', time - $t0;

my $server_md5_sql = "SELECT count(*) || ' ' || md5(string_agg(id || E'\\t' || a || E'\\t' || b || E'\\t' || n, "
                   . "E'\\n' ORDER BY id)) FROM t";
is $us->psql_admin($server_md5_sql, dbname => 'movr'), "$NROWS $perl_md5",
    'server-side md5(string_agg(... ORDER BY id)) equals the Perl-side md5 of the rows';
is psql($via, $server_md5_sql), "$NROWS $perl_md5", 'the same checksum computed through pgnear';

# ---- COPY TO STDOUT: through pgnear vs straight from the server
my $copy_out_sql = 'COPY (SELECT * FROM t ORDER BY id) TO STDOUT';
$t0 = time;
my ($rc_p, $out_p, $err_p) = psql_raw($via, $copy_out_sql);
note sprintf 'COPY out through pgnear took %.2fs', time - $t0;
my ($rc_d, $out_d, $err_d) = psql_raw($direct, $copy_out_sql);
is $rc_p, 0, 'COPY TO STDOUT through pgnear succeeds' or diag $err_p;
is $rc_d, 0, 'COPY TO STDOUT straight from the server succeeds' or diag $err_d;
is length($out_p), length($out_d), 'COPY out: same length through pgnear (' . length($out_p) . ' bytes)';
is md5_hex($out_p), md5_hex($out_d), 'COPY out: md5 through pgnear equals md5 straight from the server';
is md5_hex($out_p), $copy_md5, 'COPY out through pgnear reproduces the bytes that went in';
undef $out_p; undef $out_d;

# Binary format too (length words, NULL-free binary data).
my $bin_sql = 'COPY (SELECT id, n, decode(b, \'hex\') FROM t ORDER BY id) TO STDOUT (FORMAT binary)';
($rc_p, $out_p, $err_p) = psql_raw($via, $bin_sql);
($rc_d, $out_d, $err_d) = psql_raw($direct, $bin_sql);
is $rc_p, 0, 'binary COPY out through pgnear succeeds' or diag $err_p;
ok length($out_p) > 4_000_000 && length($out_p) == length($out_d),
    'binary COPY out: same length through pgnear (' . length($out_p) . ' bytes)';
is md5_hex($out_p), md5_hex($out_d), 'binary COPY out: same md5 through pgnear and directly';
undef $out_p; undef $out_d;
undef $copy_text;

# ---- one 20 MB value, both ways
# A non-repeating ASCII string: an md5 chain, 32 hex digits per link.
my $BIG = 20 * 1024 * 1024;
my $big = '';
{
    my $h = 'pgnear-big-value';
    my @parts;
    for (1 .. $BIG / 32) { $h = md5_hex($h); push @parts, $h }
    $big = join '', @parts;
}
is length($big), $BIG, 'the big value is 20 MB';
my $big_md5 = md5_hex($big);

psql($via, 'CREATE TABLE big (id int PRIMARY KEY, v text NOT NULL)');

# In: once as a COPY row (psql), once as a bind parameter (extended protocol).
($rc, $out, $err) = psql_raw($via, 'COPY big FROM STDIN', stdin => "1\t$big\n");
is $rc, 0, 'a 20 MB row COPYed in through pgnear' or diag $err;
{
    my $dbh = dbi_connect($via, pg_enable_utf8 => 0, pg_server_prepare => 1);
    ok $dbh, 'DBD::Pg connects through pgnear' or diag $DBI::errstr;
    my $n = $dbh && $dbh->do('INSERT INTO big VALUES (2, ?)', undef, $big);
    is $n, 1, 'a 20 MB bind parameter inserted through pgnear' or diag $dbh && $dbh->errstr;

    # Out over the extended protocol (DataRow of 20 MB).
    my $row = $dbh && $dbh->selectrow_arrayref('SELECT v FROM big WHERE id = $1', undef, 1);
    ok $row, 'the 20 MB value read back with DBD::Pg' or diag $dbh && $dbh->errstr;
    is length($row->[0] // ''), $BIG, 'DBD::Pg: length is 20 MB';
    is md5_hex($row->[0] // ''), $big_md5, 'DBD::Pg: md5 matches';
    $dbh->disconnect if $dbh;
}
is $us->psql_admin('SELECT id, length(v), md5(v) FROM big ORDER BY id', dbname => 'movr'),
   "1|$BIG|$big_md5\n2|$BIG|$big_md5", 'on the server both rows hold the exact 20 MB value';

# Out over the simple protocol with psql, and as COPY out.
for my $id (1, 2) {
    # unaligned, tuples only: the bare value and a newline
    ($rc, $out, $err) = run_cmd([require_tool('psql'), '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1',
                                 '-c', "SELECT v FROM big WHERE id = $id", '-d', $via], timeout => 60);
    is $rc, 0, "psql reads the 20 MB value of row $id through pgnear" or diag $err;
    $out =~ s/\n\z//;
    is length($out), $BIG, "row $id: length through pgnear is 20 MB";
    is md5_hex($out), $big_md5, "row $id: md5 through pgnear matches";
}
($rc_p, $out_p, $err_p) = psql_raw($via, 'COPY big TO STDOUT');
is $rc_p, 0, 'COPY out of the 20 MB rows through pgnear succeeds' or diag $err_p;
is md5_hex($out_p), md5_hex("1\t$big\n2\t$big\n"), 'COPY out of the 20 MB rows: md5 matches';
undef $out_p;

# ---- a bad row: the server's error, and the session goes on
# The bad row sits in the middle of ~6 MB, so the server fails while psql is
# still sending CopyData; pgnear must relay the error and the rest.
{
    my @rows;
    for my $id (1_000_001 .. 1_050_000) {
        push @rows, $id == 1_025_000 ? "not-a-number\tx\ty\t1" : "$id\tfill-" . ('z' x 80) . "\tb\t$id";
    }
    my $bad = join('', map { "$_\n" } @rows);
    my @cmd = (require_tool('psql'), '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=0',
               '-c', '\set VERBOSITY verbose',
               '-c', 'COPY t FROM STDIN',
               '-c', "SELECT 'still-alive:' || count(*) FROM t",
               '-d', $via);
    ($rc, $out, $err) = run_cmd(\@cmd, timeout => 60, stdin => $bad);
    is sqlstate($err), '22P02', 'bad COPY row: SQLSTATE 22P02 reaches the client' or diag $err;
    like $err, qr/invalid input syntax for type integer: "not-a-number"/, '... with the server\'s message';
    like $err, qr/COPY t, line 25000/, '... and the server\'s context (line 25000)';
    like $out, qr/^still-alive:$NROWS$/m, 'the same session runs the next query; table unchanged'
        or diag "stdout: $out\nstderr: $err";
}

# The same with DBD::Pg's COPY API, on one connection.
{
    my $dbh = dbi_connect($via);
    ok $dbh, 'DBD::Pg connects through pgnear' or diag $DBI::errstr;
    $dbh->do('COPY t FROM STDIN');
    my $sent = 1;
    for my $i (1 .. 2000) {
        my $line = $i == 1500 ? "oops\ta\tb\t1\n" : (2_000_000 + $i) . "\tx\ty\t$i\n";
        $sent &&= $dbh->pg_putcopydata($line);
    }
    my $end = eval { $dbh->pg_putcopyend };
    ok !$end, 'pg_putcopyend reports the failure';
    is $dbh->state, '22P02', 'DBD::Pg: SQLSTATE 22P02' or diag $dbh->errstr;
    my ($cnt) = $dbh->selectrow_array('SELECT count(*) FROM t');
    is $cnt, $NROWS, 'DBD::Pg: the session is usable after the failed COPY, table unchanged'
        or diag $dbh->errstr;
    # And a good COPY on the same session.
    $dbh->do('COPY t FROM STDIN');
    $dbh->pg_putcopydata("3000000\tgood\trow\t42\n");
    ok $dbh->pg_putcopyend, 'a good COPY on the same session succeeds' or diag $dbh->errstr;
    is(($dbh->selectrow_array('SELECT a FROM t WHERE id = 3000000'))[0], 'good', '... and its row is there');
    $dbh->disconnect;
}

# ---- the 20 MB value with TLS on both sides of pgnear
{
    my $cert = $ca->issue(name => 'pgnear', cn => 'localhost', san => ['DNS:localhost', 'IP:127.0.0.1'],
                          owner => undef);
    my $tls_pg = $us;
    my $tp = PgNearTest::Proxy->new(regions => [$tls_pg],
        settings => { auth => 'passthrough', client_tls => 'require', client_tls_cert_file => $cert->{cert},
                      client_tls_key_file => $cert->{key}, server_tls => 'verify-full',
                      server_tls_ca_file => $ca->cert });
    # passthrough with TLS on both sides: SCRAM works without channel binding
    my $tvia = $tp->conninfo(sslmode => 'verify-full', sslrootcert => $ca->cert, host => 'localhost',
                             channel_binding => 'disable');
    is psql($tvia, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'), 't',
       'TLS: pgnear -> server is TLS';
    psql($tvia, 'CREATE TABLE big_tls (id int PRIMARY KEY, v text NOT NULL)');
    ($rc, $out, $err) = psql_raw($tvia, 'COPY big_tls FROM STDIN', stdin => "1\t$big\n2\t$big\n");
    is $rc, 0, 'TLS: two 20 MB rows COPYed in through pgnear' or diag $err;
    is $tls_pg->psql_admin('SELECT count(*), min(md5(v)), max(md5(v)) FROM big_tls', dbname => 'movr'),
       "2|$big_md5|$big_md5", 'TLS: on the server both rows hold the exact value';
    ($rc_p, $out_p, $err_p) = psql_raw($tvia, 'COPY big_tls TO STDOUT');
    is $rc_p, 0, 'TLS: COPY out of 40 MB through pgnear succeeds' or diag $err_p;
    is md5_hex($out_p), md5_hex("1\t$big\n2\t$big\n"), 'TLS: COPY out md5 matches';
    undef $out_p;
    my $dbh = dbi_connect($tvia, pg_enable_utf8 => 0);
    my $row = $dbh && $dbh->selectrow_arrayref('SELECT v FROM big_tls WHERE id = $1', undef, 2);
    is md5_hex($row->[0] // ''), $big_md5, 'TLS: the 20 MB value as one DataRow over the extended protocol';
    $dbh->disconnect if $dbh;
    ok $tp->is_running, 'TLS: pgnear is still running';
}

ok $p->is_running, 'pgnear is still running';

done_testing;
