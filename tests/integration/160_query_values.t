# The console's values (protocol/query_values.c, through the helper
# tests/unit/print_query_values) against what a real PostgreSQL server
# writes for the same values with TimeZone UTC: text as psql prints it,
# binary as COPY ... (FORMAT binary) sends it (each field there is what the
# type's send function writes, as in a DataRow).  Timestamps go the other
# way: the server reads our binary encoding and prints it, and its epoch
# must be the instant we meant.  Values are pseudo-random with a fixed seed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use File::Basename qw(dirname);
use Test::More;
use PgNearTest;

die "PGNEAR is not set\n" unless $ENV{PGNEAR};
my $helper = dirname($ENV{PGNEAR}) . '/tests/unit/print_query_values';
die "$helper is missing: make check (or make tests/unit/print_query_values) builds it\n"
  unless -x $helper;

my $pg = PgNearTest::Cluster->new(name => 'values', conf => { TimeZone => 'UTC' });
my $admin = conninfo_string(host => $pg->socket_dir, port => $pg->port, user => 'postgres',
                            dbname => 'postgres');
srand(160);

# Our answers ("text|hex" or "ERR"), one per request line.
sub ours {
    my @req = @_;
    my ($rc, $out, $err) = run_cmd([$helper], stdin => join('', map { "$_\n" } @req),
                                   timeout => 60);
    die "print_query_values failed ($rc): $err" if $rc != 0;
    my @ans = split /\n/, $out;
    die 'print_query_values answered ' . scalar(@ans) . ' of ' . scalar(@req) . "\n"
      if @ans != @req;
    return @ans;
}

sub values_sql {
    my ($type, @exprs) = @_;
    my $i = 0;
    return 'SELECT v FROM (VALUES ' . join(',', map { '(' . $i++ . ", ($_)::$type)" } @exprs)
      . ') AS t(i, v) ORDER BY i';
}

# The server's text for each expression.
sub pg_text {
    my ($type, @exprs) = @_;
    # Through stdin: the statement is far longer than one argument may be.
    my $out = psql($admin, undef, stdin => values_sql($type, @exprs) . ";\n", timeout => 120);
    my @rows = split /\n/, $out, -1;
    die 'server printed ' . scalar(@rows) . ' of ' . scalar(@exprs) . " rows\n" if @rows != @exprs;
    return @rows;
}

# The server's binary encoding (hex) of each expression.
sub pg_binary {
    my ($type, @exprs) = @_;
    my ($rc, $out, $err) = run_cmd([require_tool('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1',
                                    '-d', $admin],
                                   stdin => 'COPY (' . values_sql($type, @exprs)
                                     . ") TO STDOUT (FORMAT binary);\n",
                                   timeout => 120);
    die "COPY TO failed ($rc): $err" if $rc != 0;
    die "not a binary COPY\n" unless substr($out, 0, 11) eq "PGCOPY\n\xff\r\n\0";
    my $pos = 19;
    my @hex;
    for (@exprs) {
        my ($n, $len) = unpack('s> l>', substr($out, $pos, 6));
        die "unexpected row layout\n" unless $n == 1 && $len >= 0;
        push @hex, unpack('H*', substr($out, $pos + 6, $len));
        $pos += 6 + $len;
    }
    return @hex;
}

# Compares our answers with the server's texts and binaries; one test each.
sub compare {
    my ($what, $requests, $ours, $texts, $bins) = @_;
    my (@bad_text, @bad_bin);
    for my $i (0 .. $#$requests) {
        my ($t, $b) = split /\|/, $ours->[$i], 2;
        push @bad_text, "$requests->[$i]: ours '$ours->[$i]', server '$texts->[$i]'"
          if $t ne $texts->[$i];
        push @bad_bin, "$requests->[$i]: ours '$ours->[$i]', server '$bins->[$i]'"
          if $bins && ($b // '') ne $bins->[$i];
    }
    ok !@bad_text, "$what: text of " . @$requests . ' values as the server prints them'
      or diag join("\n", @bad_text[0 .. ($#bad_text < 9 ? $#bad_text : 9)]);
    return unless $bins;
    ok !@bad_bin, "$what: binary of " . @$requests . ' values as the server sends them'
      or diag join("\n", @bad_bin[0 .. ($#bad_bin < 9 ? $#bad_bin : 9)]);
}

sub random_bits { join '', map { sprintf '%04x', int(rand(65536)) } 1 .. 4 }
sub double_of   { unpack 'd>', pack 'H16', $_[0] }
sub bits_of     { unpack 'H16', pack 'd>', $_[0] }
sub finite      { my $d = shift; $d == $d && $d != 9**9**9 && $d != -9**9**9 }

# A double as an exact SQL literal.
sub float8_literal {
    my $d = shift;
    return "'NaN'" if $d != $d;
    return $d > 0 ? "'Infinity'" : "'-Infinity'" unless finite($d);
    return sprintf("'%.17g'::float8", $d);
}

# ---- float8: random bit patterns, powers of two and their neighbours, plain numbers
{
    my @d = map { double_of($_) } grep { finite(double_of($_)) } map { random_bits() } 1 .. 1500;
    push @d, map { (2**$_, -2**$_) } -1074 .. 1023;
    push @d, map { int(rand(2e17)) - 1e17 } 1 .. 300;
    push @d, map { rand(2e6) - 1e6 } 1 .. 300;
    push @d, (0.1, 0.1 + 0.2, 1e20, 1.5e-5, 1e15, 1e14, 0.0001, 0, 9**9**9, -9**9**9,
              double_of('7ff8000000000000'), double_of('8000000000000000'),
              double_of('43c5757239bd3aa2'), double_of('0000000000000001'));
    my @req = map { 'float8 ' . bits_of($_) } @d;
    my @exprs = map { float8_literal($_) } @d;
    compare('float8', \@req, [ours(@req)], [pg_text('float8', @exprs)],
            [pg_binary('float8', @exprs)]);
}

# ---- numeric from a double at a scale: as round(v::numeric, scale)
{
    my @cases = ([0.125, 2], [2.675, 2], [-0.001, 2], [1.5, 4], [0.5, 0], [-0.5, 0],
                 [999.995, 2], [1e20, 2], [0.1, 20], [-1.7976931348623157e308, 3],
                 [9**9**9, 2], [-9**9**9, 0], [9**9**9 - 9**9**9, 1]);
    push @cases, map { [(rand(2) - 1) * 10**(int(rand(25)) - 6), int(rand(13))] } 1 .. 1200;
    my @req = map { "numeric " . bits_of($_->[0]) . " $_->[1]" } @cases;
    my @exprs = map {
        finite($_->[0]) ? 'round(' . float8_literal($_->[0]) . "::numeric, $_->[1])"
                        : float8_literal($_->[0]) . '::numeric'
    } @cases;
    compare('numeric', \@req, [ours(@req)], [pg_text('numeric', @exprs)],
            [pg_binary('numeric', @exprs)]);
}

# ---- integers and bool
{
    my @i8 = ('0', '-1', '9223372036854775807', '-9223372036854775808', '42');
    push @i8, map { sprintf '%d', int(rand(2e14)) - 1e14 } 1 .. 100;
    my @req = map { "int8 $_" } @i8;
    my @exprs = map { $_ eq '-9223372036854775808' ? '-9223372036854775807::int8 - 1' : $_ } @i8;
    compare('int8', \@req, [ours(@req)], [pg_text('int8', @exprs)], [pg_binary('int8', @exprs)]);

    my @i4 = ('0', '-1', '2147483647', '-2147483648', map { sprintf '%d', int(rand(2e9)) - 1e9 } 1 .. 50);
    @req = map { "int4 $_" } @i4;
    @exprs = map { $_ eq '-2147483648' ? '-2147483647 - 1' : $_ } @i4;
    compare('int4', \@req, [ours(@req)], [pg_text('int4', @exprs)], [pg_binary('int4', @exprs)]);

    @req = ('bool 1', 'bool 0');
    compare('bool', \@req, [ours(@req)], [pg_text('bool', 'true', 'false')],
            [pg_binary('bool', 'true', 'false')]);
}

# ---- timestamptz: the server reads our binary, prints it and its epoch
{
    # PostgreSQL's range runs from 4714-11-24 BC (-210866803200) to 294276 AD;
    # extract(epoch) is exact below about 294247 AD.
    my @ts = ([1795342530, 123456], [1795342530, 120000], [1795342530, 0], [0, 0],
              [946684800, 0], [-1, 999999], [-62167219200, 0], [951868799, 500000],
              [-210866803200, 0], [9223372036, 854775]);
    for (1 .. 1500) {
        my $s = int(rand(9.2e12 + 210866803200)) - 210866803200;
        push @ts, [$s, (0, 120000, int(rand(1e6)))[int(rand(3))]];
    }
    my @req = map { "timestamptz $_->[0] $_->[1]" } @ts;
    my @ans = ours(@req);
    my @refused = grep { $ans[$_] eq 'ERR' } 0 .. $#ans;
    is_deeply \@refused, [], 'timestamps inside the range are all encoded';

    my $copy = "PGCOPY\n\xff\r\n\0" . pack('l> l>', 0, 0);
    for my $i (0 .. $#ans) {
        my (undef, $hex) = split /\|/, $ans[$i];
        $copy .= pack('s> l> l> l>', 2, 4, $i, 8) . pack('H16', $hex);
    }
    $copy .= pack('s>', -1);
    psql($admin, 'CREATE TABLE ts (i int, v timestamptz)');
    my ($rc, $out, $err) = run_cmd([require_tool('psql'), '-X', '-q', '-d', $admin, '-c',
                                    'COPY ts FROM STDIN (FORMAT binary)'],
                                   stdin => $copy, timeout => 120);
    is $rc, 0, 'the server takes our binary timestamptz' or diag $err;
    my @rows = split /\n/, psql($admin, "SELECT v::text || '|' || extract(epoch FROM v)::text "
                                        . 'FROM ts ORDER BY i', timeout => 120);
    my (@texts, @bad_epoch);
    for my $i (0 .. $#ts) {
        my ($text, $epoch) = split /\|/, $rows[$i] // '|';
        push @texts, $text;
        my $want = sprintf('%d.%06d', @{ $ts[$i] });
        $want = sprintf('-%d.%06d', -$ts[$i][0] - 1, 1000000 - $ts[$i][1])
          if $ts[$i][0] < 0 && $ts[$i][1] > 0;
        push @bad_epoch, "$req[$i]: server epoch $epoch" if $epoch ne $want;
    }
    ok !@bad_epoch, 'timestamptz: the server reads the instant we meant'
      or diag join("\n", @bad_epoch[0 .. ($#bad_epoch < 9 ? $#bad_epoch : 9)]);
    compare('timestamptz', \@req, \@ans, \@texts, undef);
    is $texts[0], '2026-11-22 10:15:30.123456+00', '2026-11-22 10:15:30.123456 UTC as the server prints it';
}

done_testing;
