#!/usr/bin/perl
# make install DESTDIR=... puts every file where doc/install.md says:
# pgnear in bindir, the man page, the city table in pkgdatadir, README.md,
# every page of doc/ and the examples they link to in docdir (every link
# holding there too), and the systemd unit in the configured unit
# directory, its ExecStart naming the installed pgnear, its stop and
# descriptor limits fitting the defaults of shutdown_timeout and
# max_client_conn, and `systemd-analyze verify` finding nothing to say.
# make uninstall then removes every file.  A missing tool fails the test.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Compare qw(compare);
use File::Find qw(find);
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use DocLinks;

my $src = $ENV{PGNEAR_SRCDIR} // dirname(dirname($FindBin::RealBin . '/x'));
my $build = $ENV{PGNEAR_BUILDDIR} // (defined $ENV{PGNEAR} ? dirname($ENV{PGNEAR}) : '.');
my $tmp = tempdir(CLEANUP => 1);
my $stage = "$tmp/stage";
binmode(Test::More->builder->$_, ':encoding(UTF-8)') for qw(output failure_output todo_output);

# The make of the test's own, not the jobs of the make check running it.
delete @ENV{qw(MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES)};

sub run {
    my ($cmd) = @_;
    my $rc = system("$cmd >'$tmp/out' 2>'$tmp/err'");
    return ($rc == -1 ? -1 : $rc >> 8, DocLinks::slurp("$tmp/out"), DocLinks::slurp("$tmp/err"));
}

sub tool {
    my ($name, $package) = @_;
    my ($rc) = run("command -v $name");
    ok($rc == 0, "$name is installed") or diag("install the Debian package $package");
}

ok(-f "$build/Makefile", "a configured build directory: $build") or BAIL_OUT('run through make check');
tool('make', 'make');
tool('systemd-analyze', 'systemd');

# The installation directories, as the Makefile has them.
open(my $mk, '>', "$tmp/dirs.mk") or die $!;
print $mk "print-dirs:\n";
print $mk "\t\@echo '$_=\$($_)'\n" for qw(bindir mandir docdir pkgdatadir systemdsystemunitdir);
close $mk;
my ($rc, $out, $err) = run("make -s -C '$build' --no-print-directory -f Makefile -f '$tmp/dirs.mk' print-dirs");
is($rc, 0, 'the Makefile names its installation directories') or diag($err);
my %dir = map { split /=/, $_, 2 } grep { /=/ } split /\n/, $out;
ok($dir{$_} =~ m{^/}, "$_ is absolute: $dir{$_}") for qw(bindir mandir docdir pkgdatadir);

($rc, $out, $err) = run("make -s -C '$build' --no-print-directory install DESTDIR='$stage'");
is($rc, 0, 'make install DESTDIR=...') or diag($err);

my $bin = "$stage$dir{bindir}/pgnear";
ok(-x $bin, "pgnear in bindir: $dir{bindir}/pgnear");
ok(-s "$stage$dir{mandir}/man1/pgnear.1", 'the man page in mandir/man1');
for my $f (qw(cities.csv cities.README.md)) {
    my $path = "$stage$dir{pkgdatadir}/$f";
    ok(-f $path && compare($path, "$src/conf/$f") == 0, "conf/$f in pkgdatadir, unchanged");
}

# ---- the documents: every page of doc/, with what they link to
my $docs = "$stage$dir{docdir}";
my @pages = ('README.md', map { s{^\Q$src\E/}{}r } sort glob("$src/doc/*.md"), glob("$src/doc/*/*.md"));
for my $page (@pages) {
    ok(-f "$docs/$page" && compare("$docs/$page", "$src/$page") == 0, "$page in docdir");
}
my @problems = DocLinks::check($docs, grep { -f "$docs/$_" } @pages);
is(scalar @problems, 0, 'every relative link of the installed documents holds in docdir')
  or diag(join "\n", @problems);

# ---- the systemd unit
my $unitdir = $dir{systemdsystemunitdir} // '';
if ($unitdir eq '') {
    # configure --without-systemdsystemunitdir
    my @units;
    find(sub { push @units, $File::Find::name if /^pgnear\@?\.service$/ }, $stage);
    is(scalar @units, 0, 'configured without a systemd unit directory: no unit installed')
      or diag(join "\n", @units);
} else {
    ok($unitdir =~ m{^/}, "the systemd unit directory is absolute: $unitdir");
    check_unit('pgnear.service', 'SIGTERM');
    # The template for upgrades in turn: its stop waits for the sessions (SIGUSR2).
    check_unit('pgnear@.service', 'SIGUSR2');
}

sub check_unit {
    my ($name, $kill) = @_;
    my $unit = "$stage$unitdir/$name";
    ok(-f $unit, "$name in the unit directory, $unitdir") or BAIL_OUT("no $unit");
    my $text = DocLinks::slurp($unit);
    my %key;
    for (split /\n/, $text) {
        next if /^\s*(#|;|\[|$)/;
        my ($k, $v) = /^(\w+)=(.*)$/ or next;
        push @{ $key{$k} }, $v;
    }
    unlike($text, qr/@\w+@/, 'no @placeholder@ is left');
    is_deeply($key{ExecStart}, ["$dir{bindir}/pgnear /etc/pgnear/pgnear.ini"],
        'ExecStart runs the installed pgnear, in the foreground, on /etc/pgnear/pgnear.ini');
    is_deeply($key{Type}, ['simple'], 'Type=simple (pgnear stays in the foreground)');
    is_deeply($key{ExecReload}, ["$dir{bindir}/pgnear --check /etc/pgnear/pgnear.ini", '/bin/kill -HUP $MAINPID'],
        'a reload checks the file, then sends SIGHUP');
    is_deeply($key{KillSignal}, [$kill], "$name: a stop is $kill");

    # The defaults the unit must fit, from the reference's settings tables.
    my $ref = DocLinks::slurp("$src/doc/pgnear.md");
    my ($shutdown) = $ref =~ /^\| `shutdown_timeout` \| `(\d+)s` \|/m;
    my ($max_client) = $ref =~ /^\| `max_client_conn` \| `(\d+)` \|/m;
    ok(defined $shutdown && defined $max_client, 'the defaults of shutdown_timeout and max_client_conn')
      or BAIL_OUT('doc/pgnear.md changed its tables');
    my ($stop) = ($key{TimeoutStopSec} // [''])->[0] =~ /^(\d+s|infinity)$/;
    if ($kill eq 'SIGUSR2') {
        is($stop, 'infinity', "$name: TimeoutStopSec=infinity (SIGUSR2 waits for every session)");
    } else {
        ok(defined $stop && $stop =~ /^(\d+)s$/ && $1 > $shutdown,
            "TimeoutStopSec (${\($stop // 'none')}) outlasts shutdown_timeout ($shutdown s)");
    }
    my ($nofile) = ($key{LimitNOFILE} // [''])->[0] =~ /^(\d+)$/;
    ok(defined $nofile && $nofile >= 2 * $max_client + 1000,
        "LimitNOFILE (${\($nofile // 'none')}) holds max_client_conn ($max_client) clients with a server connection each");
    is_deeply($key{User}, ['pgnear'], 'it runs as the user pgnear');

    # systemd-analyze verify wants the programs where the unit says: a copy
    # with the staged paths.  A copy with a key systemd does not know shows
    # that the check can fail.
    (my $staged = $text) =~ s{\Q$dir{bindir}\E/pgnear}{$bin}g;
    DocLinks::spew("$tmp/$name", $staged);
    ($rc, $out, $err) = run("cd '$tmp' && systemd-analyze verify --man=no './$name'");
    is($rc, 0, "$name: systemd-analyze verify");
    # What it says of the machine's other units (pgpool2.service's obsolete
    # StandardOutput=syslog, say) is not about this one.
    my @said = grep { !m{^/(?:usr/)?lib/systemd/system/|^/etc/systemd/} } split /\n/, $out . $err;
    is(join("\n", @said), '', '... finds nothing to say about it');
    DocLinks::spew("$tmp/bad/$name", $staged =~ s/^KillSignal=(\w+)$/KillSignal=$1\nNoSuchKey=1/mr);
    ($rc, $out, $err) = run("cd '$tmp/bad' && systemd-analyze verify --man=no './$name'");
    like($out . $err, qr/NoSuchKey/, '... and does say something about a unit with a key systemd does not know');
}

# ---- make uninstall takes it all away
($rc, $out, $err) = run("make -s -C '$build' --no-print-directory uninstall DESTDIR='$stage'");
is($rc, 0, 'make uninstall DESTDIR=...') or diag($err);
my @left;
find(sub { push @left, $File::Find::name if -f $_ }, $stage);
is(scalar @left, 0, '... leaves no file') or diag(join "\n", @left);

done_testing();
