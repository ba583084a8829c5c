# A reload keeps no memory.  The city table and the GeoIP databases of a
# configuration whose files have not changed are shared with the new
# configuration rather than built again, and what an old configuration
# frees goes back: 100 reloads of an unchanged configuration leave pgnear's
# resident memory within a few MiB of where it was, idle and under pgbench.
# A cities_file or geoip_db changed on disk (rewritten in place, or replaced
# by a rename) is read again by the next reload, so sharing never keeps a
# stale table.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IPC::Run ();
use Time::HiRes qw(time sleep);
use PgNearTest;

require_tool($_) for qw(psql pgbench);

my $SRCDIR = $ENV{PGNEAR_SRCDIR} // "$FindBin::RealBin/../..";
my $MK = "$SRCDIR/tests/lib/make_mmdb.pl";
my $dir = tmpdir(name => 'reload-mem', mode => 0755);
my $cities = "$dir/cities.csv";
my $mmdb = "$dir/city.mmdb";

# The shipped table, 135,000 places, and one made-up place to move around.
my $shipped = slurp_file("$SRCDIR/conf/cities.csv");
sub write_cities {
    my ($path, $lat, $lon) = @_;
    write_file($path, $shipped . "Pgnearville,IE,$lat,$lon,1,,,\n");
}

sub write_mmdb {
    my ($path, @nets) = @_;
    my ($rc, $out, $err) = run_cmd([$^X, $MK, '--layout', 'maxmind', '--ip-version', 6, '--out', $path, @nets],
                                   timeout => 60);
    die "make_mmdb.pl: $err" if $rc;
}

# Written first: a file changed within the second before a load is read
# again at the next reload (pgnear cannot tell it from one changed after),
# and the clusters take longer than that to start.
write_cities($cities, '53.350', '-6.260');    # Dublin
write_cities("$dir/dublin.csv", '53.350', '-6.260');
write_mmdb($mmdb, '127.0.0.5/32=Boston,US,42.3601,-71.0589');

# Everything else a reload builds too: the auth file, and TLS on both sides.
my $ca = PgNearTest::CA->new;
my $us = PgNearTest::Cluster->new(name => 'us-east', ca => $ca);
my $eu = PgNearTest::Cluster->new(name => 'eu-west', ca => $ca);
my $cert = $ca->issue(name => 'pgnear', cn => 'localhost', san => ['IP:127.0.0.1'], owner => undef);
my $userlist = "$dir/userlist.txt";
write_file($userlist, '"app" "' . $eu->scram_verifier('app') . "\"\n");

# Under AddressSanitizer freed memory waits in a quarantine (256 MB by
# default) before it is reused, so resident memory would follow what the
# reloads allocated in all (10 MiB more every 50 reloads, measured) rather
# than what they keep: this pgnear runs without one, so that the same
# bounds hold in both builds.
local $ENV{ASAN_OPTIONS} = join ':', grep { defined && length } $ENV{ASAN_OPTIONS}, 'quarantine_size_mb=0';
my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
    settings => { auth => 'scram', auth_file => $userlist, client_tls => 'allow',
                  client_tls_cert_file => $cert->{cert}, client_tls_key_file => $cert->{key},
                  server_tls => 'verify-ca', server_tls_ca_file => $ca->cert, cities_file => $cities,
                  geoip_db => $mmdb, default_region => 'eu-west', health_check_interval => '500ms',
                  # this test is about memory: a machine busy with other work must not fail it
                  server_connect_timeout => '30s' });

sub rss_kib {
    my $status = slurp_file("/proc/" . $p->pid . "/status");
    my ($kib) = $status =~ /^VmRSS:\s+(\d+)\s+kB/m or die "no VmRSS for pid " . $p->pid;
    return $kib;
}

sub mib { sprintf '%.1f MiB', $_[0] / 1024 }

sub admin {
    my ($sql) = @_;
    return psql($p->conninfo(host => $p->socket_dir, dbname => 'pgnear', user => 'pgnear-admin',
                             password => undef), $sql);
}

sub reloads_done { scalar(() = $p->log_contents =~ /configuration reloaded from/g) }

# The log from $off on, an offset in its text as log_size gives (under
# log_format = json not the file's bytes): the harness renders only what
# is new, so the polls below do not read the whole log each time.
sub log_from {
    my ($off) = @_;
    my $text = $p->log_contents;
    return $off < length $text ? substr($text, $off) : '';
}

# SIGHUP, and wait until the log says the reload is done.
sub reload_and_wait {
    my $off = $p->log_size;
    $p->signal('HUP');
    return wait_until(sub { log_from($off) =~ /configuration reloaded from/ },
                      timeout => 30, interval => 0.01);
}

# The region SHOW ROUTE picks first for a city or an address.
sub route_for {
    my ($what, $value) = @_;
    my ($first) = split /\n/, admin("SHOW ROUTE FOR $what '$value'");
    return (split /\|/, $first // '')[1] // '';
}

my $ci = $p->conninfo(connect_timeout => 30);
my ($rc, $out, $err) = pgbench(['-i', '-s', '1', '-q'], $ci, timeout => 60);
is $rc, 0, 'pgbench -i through pgnear' or diag $err;
is route_for('CITY', 'Pgnearville'), 'eu-west', 'the made-up place is in Dublin: eu-west';

# ------------------------------------------------------------------ idle

# A few reloads first: what the first reloads allocate once and keep (the
# loader thread's arena and stack) is not what this measures.  Under
# AddressSanitizer, the first 50 reloads add 4.4 MiB (its allocator's
# caches and their shadow, measured) and the next 250 add 0.4 MiB.
my $warmups = sanitizer_of() ? 60 : 3;
my $warm = 0;
for (1 .. $warmups) { reload_and_wait() or last; $warm++ }
is $warm, $warmups, "$warmups warm-up reloads";
my $off = $p->log_size;
my $rss0 = rss_kib();
my $done = 0;
for (1 .. 100) { reload_and_wait() or last; $done++ }
is $done, 100, '100 reloads of an unchanged configuration, one after the other';
my $rss1 = rss_kib();
my $log = substr($p->log_contents, $off);
is scalar(() = $log =~ /cities_file \Q$cities\E is unchanged: its city table is shared/g), 100,
   'each reload shares the city table instead of building it again';
is scalar(() = $log =~ /geoip_db \Q$mmdb\E is unchanged: its database is shared/g), 100,
   '... and the GeoIP database instead of opening it again';
# Without sharing, every reload built a 17 MiB table aside and these 100
# reloads left RSS 49 MiB higher (and 40 MiB under pgbench, below).  With
# it, a reload builds a few KiB of settings, regions and TLS contexts: RSS
# moved by 0.3 MiB idle and 0.7 MiB under pgbench (1 and 1.4 MiB under
# AddressSanitizer, 2.5 MiB there with PGNEAR_TEST_WORKERS=3).  4 MiB
# leaves room for the allocators' bookkeeping, and is far below one table.
note sprintf 'idle: RSS %s before 100 reloads, %s after', mib($rss0), mib($rss1);
cmp_ok $rss1 - $rss0, '<', 4 * 1024,
    sprintf('idle: RSS after 100 reloads within 4 MiB of before (%s, %s)', mib($rss0), mib($rss1));

# ------------------------------------------------------------------ under pgbench

# Two loads at once: clients that keep their sessions, over TLS (which keep
# the configuration they started under), and clients that open a session
# per transaction (which take each new configuration as it comes).
sub start_load {
    my ($seconds) = @_;
    my @h;
    for my $args (['-c', '4', '-j', '1'], ['-c', '4', '-j', '1', '-C']) {
        my ($o, $e) = ('', '');
        my $target = $args->[-1] eq '-C' ? $ci : $p->conninfo(sslmode => 'require', connect_timeout => 30);
        push @h, [IPC::Run::start([require_tool('pgbench'), @$args, '-T', $seconds, '-n', '-S', $target],
                                  '>', \$o, '2>', \$e, IPC::Run::timeout($seconds + 60)), \$o, \$e];
    }
    return \@h;
}

# end => 1: end it now.  SIGALRM ends pgbench's run as -T does, with its
# report (a pgbench that died of it instead would fail the checks below).
sub finish_load {
    my ($load, $what, %o) = @_;
    if ($o{end}) {
        ok !grep({ !$_->[0]->pumpable } @$load), "$what: the load still ran when it was ended";
        $_->[0]->signal('ALRM') for grep { $_->[0]->pumpable } @$load;
    }
    for my $l (@$load) {
        my ($h, $o, $e) = @$l;
        my $finished = eval { $h->finish; 1 };
        my $r = parse_pgbench($$o);
        ok $finished && $h->result == 0 && ($r->{processed} // 0) > 0,
           "$what: pgbench (" . ($r->{processed} // 0) . ' transactions) ends well' or diag "$$o\n$$e";
        is $r->{failed} // 0, 0, "$what: no failed transactions";
    }
}

# The same load without reloads first: what serving it costs is in the baseline.
finish_load(start_load(6), 'warm-up load');
$rss0 = rss_kib();
my $first = reloads_done();
$off = $p->log_size;
# 60 s is only a bound: the load is ended once every reload is done, so
# that it runs through all of them however long they take.
my $load = start_load(60);
my $peak = 0;
sleep 1;
# 100 SIGHUPs in 5 s: those that arrive during a reload make one more.
for (1 .. 100) {
    $p->signal('HUP');
    my $rss = rss_kib();
    $peak = $rss if $rss > $peak;
    sleep 0.05;
}
is admin('RELOAD'), 'RELOAD', 'RELOAD after the SIGHUPs: every reload asked for is done';
finish_load($load, 'under reloads', end => 1);
my $reloads = reloads_done() - $first;
$rss1 = rss_kib();
note sprintf 'under pgbench: %d reloads for 100 SIGHUPs; RSS %s before, peak %s during, %s after',
    $reloads, mib($rss0), mib($peak), mib($rss1);
cmp_ok $reloads, '>', 10, "$reloads reloads happened under load";
$log = substr($p->log_contents, $off);
is scalar(() = $log =~ /its city table is shared/g), $reloads, 'each of them shared the city table';
unlike $log, qr/reload failed/, 'none failed';
cmp_ok $rss1 - $rss0, '<', 4 * 1024,
    sprintf('under pgbench: RSS after the reloads within 4 MiB of before (%s, %s)', mib($rss0), mib($rss1));

# ------------------------------------------------------------------ changed files

# Rewritten in place: the same file (inode) and size, other contents.
write_cities($cities, '40.710', '-74.01');    # New York, as many bytes as Dublin
is -s $cities, -s "$dir/dublin.csv", 'the rewrite has the size of the file before';
$off = $p->log_size;
ok reload_and_wait(), 'reload after cities_file was rewritten in place';
like substr($p->log_contents, $off), qr/city table loaded from \Q$cities\E: 135195 places/,
     '... builds the table again';
is route_for('CITY', 'Pgnearville'), 'us-east', '... and the made-up place is now in New York: us-east';

# A file changed within a second of the load that read it may change again
# without its times telling (they have the file system's granularity): the
# next reload reads it again rather than share it, until a load reads it a
# second or more after its last change.  (A machine so slow that a second
# passes between the write and the load makes the first load settled: up
# to three tries.)
my $recent = 0;
for (1 .. 3) {
    write_cities($cities, '40.710', '-74.01');
    $off = $p->log_size;
    reload_and_wait() or last;
    last if $recent = substr($p->log_contents, $off) =~ /city table loaded from .*: the next reload reads it again/;
}
ok $recent, 'a reload right after a rewrite says that the next reload reads the file again';
$off = $p->log_size;
ok reload_and_wait(), 'the next reload';
like substr($p->log_contents, $off), qr/city table loaded from \Q$cities\E/, '... reads the file again';
sleep 1.5;
ok reload_and_wait(), 'a reload a second after the change';
$off = $p->log_size;
ok reload_and_wait(), 'and the one after';
like substr($p->log_contents, $off), qr/its city table is shared/, '... shares the table again';
is route_for('CITY', 'Pgnearville'), 'us-east', 'the made-up place is still in New York: us-east';

# Replaced by a rename, as updaters do.
write_cities("$cities.new", '53.350', '-6.260');
rename "$cities.new", $cities or die "rename: $!";
ok reload_and_wait(), 'reload after cities_file was replaced by a rename';
is route_for('CITY', 'Pgnearville'), 'eu-west', '... the made-up place is in Dublin again: eu-west';

# The GeoIP database, replaced by a rename (databases are mapped: they must
# not be rewritten in place while pgnear reads them).
is route_for('IP', '127.0.0.5'), 'us-east', 'GeoIP places 127.0.0.5 in Boston: us-east';
write_mmdb("$mmdb.new", '127.0.0.5/32=Paris,FR,48.8566,2.3522');
rename "$mmdb.new", $mmdb or die "rename: $!";
$off = $p->log_size;
ok reload_and_wait(), 'reload after geoip_db was replaced';
unlike substr($p->log_contents, $off), qr/geoip_db .* is unchanged/, '... does not share the old database';
is route_for('IP', '127.0.0.5'), 'eu-west', '... and GeoIP now places 127.0.0.5 in Paris: eu-west';

# ------------------------------------------------------------------ tables built again

# A table built again replaces the one before, which goes back whole once
# no configuration holds it: 20 reloads, each after the file changed.
sleep 1.1;
ok reload_and_wait(), 'a reload a second after the last change';
$off = $p->log_size;
ok reload_and_wait(), 'and the one after';
like substr($p->log_contents, $off), qr/its city table is shared/, '... shares the table';
$rss0 = rss_kib();
$off = $p->log_size;
$done = 0;
for (1 .. 20) {
    utime undef, undef, $cities or die "utime: $!";    # changed now: read again
    reload_and_wait() or last;
    $done++;
}
is $done, 20, '20 reloads, each after cities_file changed';
is scalar(() = substr($p->log_contents, $off) =~ /city table loaded from/g), 20, '... each built the table again';
sleep 1.1;
ok reload_and_wait(), 'a reload a second after the last change';
$off = $p->log_size;
ok reload_and_wait(), 'and the one after';
like substr($p->log_contents, $off), qr/its city table is shared/, '... shares the table: the others are freed';
$rss1 = rss_kib();
note sprintf 'tables built again: RSS %s before 20 rebuilds, %s after', mib($rss0), mib($rss1);
# Before a table was a mapping of its own, its blocks came from the heap
# after the first one was freed, and RSS stayed 36 MiB higher.
cmp_ok $rss1 - $rss0, '<', 4 * 1024,
    sprintf('RSS after 20 tables built and freed within 4 MiB of before (%s, %s)', mib($rss0), mib($rss1));

ok $p->is_running, 'pgnear is running';
done_testing;
