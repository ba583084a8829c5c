# PostgreSQL's own regression suite through pgnear.  The installed
# server's src/test/regress (scripts/install-deps.sh fetches Debian's
# source of exactly the installed postgresql-15 and builds its regress.so
# with PGXS into tests/regress/cache/VERSION) runs, all of
# parallel_schedule's tests in its order one at a time, with the
# installed pg_regress --use-existing: directly on a fresh cluster, and
# through pgnear on fresh clusters of the same kind in four shapes:
#   session      pool_mode = session, TLS both sides (client and server)
#   transaction  pool_mode = transaction, workers = 2
#   nearest      target_session_attrs = nearest (a primary and its
#                streaming standby), session pooling, workers = 2
#   nearest-txn  nearest with transaction pooling, TLS both sides, workers = 2
# Each test's output through pgnear is compared with the direct run's: one
# ok per test and shape.  tests/integration/pg_regress_known_differences.txt
# lists the differences known, per shape and test, each with its reason;
# any other difference fails (the diff's head in the diagnostics), and a
# known difference that is gone is said (diag), not failed.
# The shapes run two at a time.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use File::Path qw(make_path);
use Time::HiRes qw(time);
use PgNearTest;

require_tool($_) for qw(psql pg_basebackup openssl);
my $PG_REGRESS = '/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress';
my $top = "$FindBin::RealBin/../..";
chomp(my $version = `dpkg-query -W -f='\${Version}' postgresql-15 2>/dev/null`);
my $cache = "$top/tests/regress/cache/$version/regress";
BAIL_OUT("PostgreSQL ${version}'s regression suite is missing ($cache): run scripts/install-deps.sh")
  unless $version && -e "$cache/regress.so" && -e "$cache/parallel_schedule";
BAIL_OUT("$PG_REGRESS is missing (postgresql-client-15)") unless -x $PG_REGRESS;
# Where the archive does not serve the server's own source, the suite is the newest 15.x it
# does (install-deps.sh); both runs compared below use that one suite.
if (-e "$cache/SOURCE_VERSION") {
    chomp(my $source = slurp_file("$cache/SOURCE_VERSION"));
    diag("the regression suite is PostgreSQL ${source}'s, the server $version") if $source ne $version;
}

# The suite where the server (postgres) can read it: its COPY reads data/, loads regress.so.
my $suite = tmpdir(name => 'regress-suite', mode => 0755);
system('cp', '-a', "$cache/.", $suite) == 0 or die "cp $cache: $?";
system('chown', '-R', 'postgres', $suite) == 0 or die "chown $suite: $?" if $> == 0;
my @tests = map { /^test:\s*(.*)/ ? split(' ', $1) : () } split /\n/, slurp_file("$suite/parallel_schedule");

my %known = read_known("$FindBin::RealBin/pg_regress_known_differences.txt");
my $ca = PgNearTest::CA->new;
my $cert = $ca->issue(name => 'pgnear', cn => 'localhost', san => ['DNS:localhost', 'IP:127.0.0.1'], owner => undef);
my @trust = ('local all all trust', 'host all all 127.0.0.1/32 trust', 'host all all ::1/128 trust');

my %SHAPES = (
    direct      => {},
    session     => { pool_mode => 'session', tls => 1, workers => 1 },
    transaction => { pool_mode => 'transaction', workers => 2 },
    nearest     => { pool_mode => 'session', nearest => 1, workers => 2 },
    'nearest-txn' => { pool_mode => 'transaction', nearest => 1, tls => 1, workers => 2 },
);
my @ORDER = qw(direct session transaction nearest nearest-txn);

# One shape's run: its clusters, its pgnear, pg_regress; returns the results directory.
sub run_shape {
    my ($name) = @_;
    my $s = $SHAPES{$name};
    # prepared_xacts runs only where two-phase commit is on (pg_regress's own clusters have it)
    my %kind = (hba => \@trust, conf => { max_prepared_transactions => 10 }, ($s->{tls} ? (ca => $ca) : ()));
    my $pg = PgNearTest::Cluster->new(name => 'us-east', %kind);
    $pg->psql_admin('CREATE DATABASE regression');
    my @standby;
    @standby = (PgNearTest::Cluster->new_standby(primary => $pg, name => 'eu-west', %kind))
      if $s->{nearest};
    my ($host, $port, %env) = ('127.0.0.1', $pg->port, PGSSLMODE => 'disable',
                               PGPASSWORD => $PgNearTest::APP_PASSWORD);
    my $proxy;
    if ($name ne 'direct') {
        # Pooling needs pgnear's own SCRAM: the app's verifier, its password in PGPASSWORD.
        my $auth = tmpdir(name => "auth-$name");
        write_file("$auth/userlist.txt", qq{"app" "} . $pg->scram_verifier('app') . qq{"\n});
        my %set = (auth => 'scram', auth_file => "$auth/userlist.txt", pool_mode => $s->{pool_mode}, workers => $s->{workers},
                   server_tls => 'disable');
        %set = (%set, server_tls => 'verify-full', server_tls_ca_file => $ca->cert, client_tls => 'allow',
                client_tls_cert_file => $cert->{cert}, client_tls_key_file => $cert->{key}) if $s->{tls};
        # The standby is the nearest: reads go there.
        %set = (%set, target_session_attrs => 'nearest', default_region => 'eu-west') if $s->{nearest};
        my $regions = $s->{nearest}
          ? [{ name => 'eu-west', location => '53.35, -6.26', hosts => [@standby] },
             { name => 'us-east', location => '39.04, -77.49', hosts => [$pg] }]
          : [$pg];
        $proxy = PgNearTest::Proxy->new(regions => $regions, settings => \%set);
        $port = $proxy->port;
        $env{PGSSLMODE} = $s->{tls} ? 'require' : 'disable';
    }
    my $out = tmpdir(name => "regress-$name", mode => 0777);
    make_path("$out/results");
    chmod 0777, "$out/results";
    my @cmd = ($PG_REGRESS, '--use-existing', '--bindir=' . pg_bindir(), "--inputdir=$suite",
               "--outputdir=$out", "--dlpath=$suite", "--host=$host", "--port=$port", '--user=app',
               '--dbname=regression', @tests);
    my $t0 = time;
    my ($rc, $stdout, $stderr) = run_cmd(\@cmd, timeout => 1500, env => \%env);
    my $took = time - $t0;
    $proxy->stop if $proxy;
    $_->stop for @standby, $pg;
    return (dir => $out, took => sprintf('%.0f', $took), rc => $rc,
            log => ($stdout =~ /(\d+ of \d+ tests (?:passed|failed)[^\n]*)/ ? $1 : PgNearTest::_tail("$stdout$stderr", 5)));
}

# shape test reason, one a line ('#' starts a comment)
sub read_known {
    my ($file) = @_;
    my %k;
    for (split /\n/, slurp_file($file)) {
        next if /^\s*(#|$)/;
        my ($shape, $test, $reason) = /^(\S+)\s+(\S+)\s+(.+)$/ or die "$file: bad line '$_'\n";
        $k{"$shape $test"} = $reason;
    }
    return %k;
}

my $t0 = time;
my %run;
my @queue = @ORDER;
while (my @pair = splice(@queue, 0, 2)) {
    my @bg = map { my $n = $_; in_background(sub { run_shape($n) }) } @pair;
    for my $i (0 .. $#pair) {
        my $r = background_result($bg[$i], timeout => 1800);
        BAIL_OUT("shape $pair[$i]: $r->{died}") if $r->{died};
        $run{ $pair[$i] } = $r;
        note "$pair[$i]: $r->{took} s, pg_regress: $r->{log}";
    }
}
note sprintf('all shapes: %.0f s', time - $t0);

sub result {
    my ($shape, $test) = @_;
    my $f = "$run{$shape}{dir}/results/$test.out";
    return undef unless -e $f;
    my $text = slurp_file($f);
    $text =~ s/\Q$run{$shape}{dir}\E/OUTPUTDIR/g;
    return $text;
}

for my $shape (grep { $_ ne 'direct' } @ORDER) {
    my ($same, @differ) = (0);
    for my $test (@tests) {
        my ($want, $got) = (result('direct', $test), result($shape, $test));
        my $reason = $known{"$shape $test"};
        if (defined $want && defined $got && $want eq $got) {
            $same++;
            pass("$shape: $test as directly");
            diag("$shape $test: listed as a known difference ($reason) but now the same as directly")
              if $reason;
            next;
        }
        push @differ, $test;
        if ($reason) {
            pass("$shape: $test differs, known: $reason");
            note(diff_head($want, $got)) if defined $want && defined $got;
            next;
        }
        my $diff = defined $want && defined $got ? diff_head($want, $got) : 'no output: ' . ($want // 'direct') ;
        fail("$shape: $test as directly");
        diag($diff);
    }
    note sprintf('%s: %d same as direct, %d differ (%s)', $shape, $same, scalar @differ, join(', ', @differ));
}

sub diff_head {
    my ($want, $got) = @_;
    my $d = tmpdir(name => 'regress-diff');
    write_file("$d/direct", $want);
    write_file("$d/pgnear", $got);
    my (undef, $out) = run_cmd(['diff', '-u', "$d/direct", "$d/pgnear"]);
    my @l = split /\n/, $out;
    return join("\n", @l[0 .. ($#l < 40 ? $#l : 40)]);
}

done_testing;
