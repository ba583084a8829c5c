# The crowd bench (bench/crowd.pl and its client, bench/crowd) runs and
# reports numbers that make sense:
#  - `crowd.pl --smoke`: 2,000 clients log in with SCRAM-SHA-256 through
#    pgnear (transaction pooling over 20), in two crowd processes from four
#    loopback source addresses, run `SELECT 1` and hold; then the same
#    against PgBouncer where it is installed.  Each crowd's JSON has every
#    client logged in, a login rate, the proxy's CPU a login, a positive
#    finite growth of its Rss and Pss a client, and probes answered with
#    p50 <= p99 <= max, while the crowd builds and while it holds; the
#    table is printed; the proxy's Rss once the crowd has left is measured,
#    and pgnear's is at most 1.2 times its Rss before the crowd.
#  - What stops a crowd is said: against a pgnear whose max_client_conn is
#    40, a crowd of 60 has 40 logged in, the rest refused with 53300, and
#    "limit" names it; the client exits 1 with its report.
#  - `pgnear --check` gives the capacity model's numbers for max_client_conn:
#    the open files (one a client under transaction pooling, two under
#    session) and the memory, and the room the open-files limit leaves.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use JSON::PP ();
use POSIX qw(isinf isnan);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
my $srcdir = $ENV{PGNEAR_SRCDIR} // die "PGNEAR_SRCDIR is not set (make check sets it)\n";
my $builddir = $ENV{PGNEAR_BUILDDIR} // die "PGNEAR_BUILDDIR is not set (make check sets it)\n";
my $crowd = "$builddir/bench/crowd";
die "$crowd is missing: make check (or make bench/crowd) builds it\n" unless -x $crowd;
my $have_bouncer = eval { require_tool('pgbouncer') } ? 1 : 0;
my $dir = tmpdir(name => 'crowd-smoke');

sub finite_positive { my ($v) = @_; defined $v && !isnan($v) && !isinf($v) && $v > 0 }

# ---- crowd.pl --smoke

my ($rc, $out, $err) = run_cmd([$^X, "$srcdir/bench/crowd.pl", '--smoke', '--json', "$dir/crowd.json"],
    timeout => 180, env => { CROWD => $crowd });
is($rc, 0, 'crowd.pl --smoke ran') or diag("stdout:\n$out\nstderr:\n$err");
note($out);
my $runs = eval { JSON::PP::decode_json(slurp_file("$dir/crowd.json")) } // {};
like($out, qr/^login rate, a second\s+\d+/m, 'the table has the login rate');

my @targets = ('pgnear', $have_bouncer ? 'pgbouncer' : ());
for my $name (@targets) {
    my $r = $runs->{$name}[0];
    ok($r, "$name: a report") or next;
    note("$name: " . JSON::PP->new->canonical->encode($r));
    is($r->{clients}, 2000, "$name: 2,000 clients");
    is($r->{logged_in}, 2000, "$name: every client logged in and answered") or diag(explain($r->{errors}));
    is($r->{auth}, 'scram-sha-256', "$name: with SCRAM-SHA-256");
    is($r->{processes}, 2, "$name: in two processes");
    is($r->{sources}, 4, "$name: from four source addresses");
    ok(finite_positive($r->{login_rate}), "$name: a login rate ($r->{login_rate} a second)");
    ok(finite_positive($r->{derive_ms}), "$name: the keys derived once ($r->{derive_ms} ms)");
    ok(finite_positive($r->{cpu_ms_per_login}), "$name: its CPU a login ($r->{cpu_ms_per_login} ms)");
    ok(defined $r->{cpu_ms_holding}, "$name: its CPU while the crowd holds ($r->{cpu_ms_holding} ms)");
    for my $m ('rss_kib', 'pss_kib') {
        ok(finite_positive($r->{"${m}_per_client"}), "$name: $m a client, positive and finite")
          or diag("$m before $r->{\"${m}_before\"}, after $r->{\"${m}_after\"}");
    }
    ok(defined $r->{slab_kib_per_client}, "$name: the kernel's socket slabs apart")
      or diag('/proc/slabinfo unreadable?');
    for my $phase ('probe_build', 'probe_hold') {
        my $p = $r->{$phase};
        ok($p->{answered} > 0, "$name: $phase answered ($p->{answered} of $p->{sent})");
        ok(defined $p->{p50_ms} && defined $p->{p99_ms} && defined $p->{max_ms}
           && $p->{p50_ms} > 0 && $p->{p50_ms} <= $p->{p99_ms} && $p->{p99_ms} <= $p->{max_ms},
           "$name: $phase p50 <= p99 <= max") or diag(explain($p));
    }
    is($r->{gone}, 0, "$name: no client lost while idle");
    ok(finite_positive($r->{rss_kib_left}), "$name: its Rss once the crowd left, measured")
      or diag('its open files never fell back within 30 s of the crowd leaving?');
    ok(!defined $r->{limit}, "$name: nothing stopped the crowd") or diag($r->{limit});
}

# What pgnear gave back once its crowd left: its Rss then, over its Rss
# before the crowd, at most 1.2 (1.04 on the machine this was written on,
# where the build before the sessions' slab gave 1.27 and PgBouncer 1.46).
# Under a sanitizer the memory is the sanitizer's (AddressSanitizer keeps
# what is freed in quarantine and never gives it back): `scripts/test.sh
# --plain` looks.
SKIP: {
    my $r = $runs->{pgnear}[0] or skip 'no report of pgnear', 1;
    my $san = sanitizer_of($ENV{PGNEAR});
    skip "pgnear is built with the $san sanitizer, whose memory this would measure", 1 if $san;
    my $ratio = $r->{rss_kib_left} && $r->{rss_kib_before} ? $r->{rss_kib_left} / $r->{rss_kib_before} : undef;
    ok(defined $ratio && $ratio <= 1.2, 'pgnear: its Rss once the crowd left is at most 1.2 times its Rss before')
      or diag(sprintf('before %s KiB, left %s KiB', $r->{rss_kib_before} // '?', $r->{rss_kib_left} // '?'));
}

# ---- what stops a crowd is said

my $pg = PgNearTest::Cluster->new(name => 'us-east');
write_file("$dir/userlist.txt", qq{"app" "} . $pg->scram_verifier('app') . qq{"\n});
my $proxy = PgNearTest::Proxy->new(regions => [$pg], args => ['-q'],
    settings => { auth => 'scram', auth_file => "$dir/userlist.txt", server_tls => 'disable',
                  pool_mode => 'transaction', pool_size => 5, max_client_conn => 40 });
($rc, $out, $err) = run_cmd([$crowd, '--port', $proxy->port, '--user', 'app', '--database', 'movr',
    '--password', 'app-secret', '--clients', 60, '--hold', 0.5, '--window', 10], timeout => 60);
is($rc, 1, 'a crowd past max_client_conn exits 1') or diag($err);
my $r = eval { JSON::PP::decode_json($out) } // {};
note($err);
# The probe holds a client slot while it runs; so does a login refused a moment ago.
ok(($r->{logged_in} // 0) >= 35 && ($r->{logged_in} // 99) <= 40,
   "at most max_client_conn logged in ($r->{logged_in})");
is(($r->{logged_in} // 0) + ($r->{failed} // 0), 60, 'the rest failed');
ok($r->{errors}{53300} && $r->{errors}{53300}{count} == $r->{failed}, 'refused with 53300')
  or diag(explain($r->{errors}));
like($r->{limit} // '', qr/^53300: .*too many clients/, 'limit names the refusal');
ok(!defined $r->{rss_kib_per_client}, 'no --pid, no memory of a process');

# ---- pgnear --check: the capacity model's numbers for max_client_conn

# One host, two workers: pgnear's own descriptors are 8 a worker, one a host and 64 spare (81); under
# transaction pooling a client takes one and the pool 20 (pool_size a host), under session two.
for my $case (['transaction', 100_000 + 20 + 81, int((5000 - 81 - 20) / 1)],
              ['session', 2 * 100_000 + 81, int((5000 - 81) / 2)]) {
    my ($mode, $files, $room) = @$case;
    write_file("$dir/check-$mode.ini", "[pgnear]\nlisten_port = 6432\nworkers = 2\npool_mode = $mode\n"
      . "pool_size = 20\nmax_client_conn = 100000\nserver_tls = disable\n"
      . "[region us-east]\nlocation = 39.04, -77.49\nhosts = 127.0.0.1:5432\n");
    my ($crc, $cout, $cerr) = run_cmd(['sh', '-c', 'ulimit -n 5000 && exec "$0" --check "$1"', $ENV{PGNEAR},
                                       "$dir/check-$mode.ini"]);
    is $crc, 0, "--check, $mode pooling" or diag $cerr;
    like $cout, qr/^open files: soft limit 5000, hard 5000 in this shell; .* room for about $room client sessions, fewer than max_client_conn/m,
      "... the open files leave room for $room clients";
    like $cout, qr/^crowd: 100000 idle clients need about $files open files \(@{[ $mode eq 'session' ? 2 : 1 ]} a client.*\) and about 87 MiB of pgnear's memory \(0\.9 KiB a client, 17 with TLS[^)]*\), the kernel about @{[ $mode eq 'session' ? 723 : 361 ]} MiB more/m,
      "... and a crowd of max_client_conn needs $files and the memory measured a client" or diag $cout;
}

done_testing();
