#!/usr/bin/perl
# pgnear's own connections (auth_query, the routines' catalog, LISTEN,
# moves, migrations) choose their hosts in one place (proxy/base/pgconn.h):
# which regions a database lives in is placement_of's (placement_hosts),
# which of their hosts and in what order pgconn_hosts', a region's primary
# region_primary's (routing/region.c).  A file that opens such a
# connection (it builds a conninfo with pgconn_conninfo or job_conninfo,
# or lies in proxy/dbmove or proxy/migrate, whose connections are all
# pgnear's own) does not look at a host's health or walk a region's hosts
# itself: no host_is_up, host_is_standby, or a region's ->hosts or
# ->nhosts in its code.  And no file under proxy/ restates region_primary's test (a host
# up and not a standby) but pgconn.c.  The test fails on each such line,
# file:line, and on an exception below that no longer has one (stale).
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Find;
use Test::More;

my $src = $ENV{PGNEAR_SRCDIR} // dirname(dirname(dirname(__FILE__)));

# The one place, and the files that may still walk a region's hosts, with why.
my $the_place = 'proxy/base/pgconn.c';
my %may_walk = (
    # The records of moves read before any health check (--check, the start):
    # every host in the configured order, blocking, till one answers.
    'proxy/dbmove/follow.c' => 1,
);

# The text with its comments and string literals blanked out, lines kept.
sub code_of {
    my ($text) = @_;
    $text =~ s{("(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')|(/\*.*?\*/|//[^\n]*)}
              {defined $1 ? '""' : ($2 =~ s/[^\n]/ /gr)}gse;
    return $text;
}

sub slurp {
    my ($path) = @_;
    open(my $fh, '<', $path) or die "$path: $!\n";
    local $/;
    return scalar <$fh>;
}

ok(-d "$src/proxy", "proxy/ is in the source tree ($src)")
  or BAIL_OUT("PGNEAR_SRCDIR ($src) is not pgnear's source tree");
my @files;
find({ no_chdir => 1, wanted => sub {
    push @files, $File::Find::name =~ s{^\Q$src\E/}{}r if /\.c$/ && -f $_;
} }, "$src/proxy");

my $choosing = qr/\bhost_is_up\s*\(|\bhost_is_standby\s*\(|(?:->|\.)\s*n?hosts\b/;
my $restated = qr/host_is_up\s*\([^()]*\)\s*&&\s*!\s*host_is_standby\s*\(/;
my (@own, @walks, @restates, %walked);
for my $file (sort @files) {
    next if $file eq $the_place;
    my $code = code_of(slurp("$src/$file"));
    my $is_own = $file =~ m{^proxy/(?:dbmove|migrate)/} || $code =~ /\b(?:pgconn|job)_conninfo\s*\(/;
    push @own, $file if $is_own;
    my $line = 0;
    for my $text (split /\n/, $code, -1) {
        $line++;
        push @restates, "$file:$line: $text" if $text =~ $restated;
        next unless $is_own && $text =~ $choosing;
        if ($may_walk{$file}) {
            $walked{$file} = 1;
            next;
        }
        push @walks, "$file:$line: $text";
    }
}

ok(scalar(grep { $_ eq 'proxy/base/func_catalog.c' } @own) && scalar(grep { $_ eq 'proxy/session/notify_conn.c' } @own),
   'the routines\' catalog and the listening connection are among the files read')
  or diag("files read: @own");
is_deeply(\@walks, [], "the files of pgnear's own connections take their hosts from pgconn_hosts or region_primary")
  or diag(join("\n", 'Each line below looks at hosts itself; ask pgconn_hosts (or placement_hosts, '
                   . 'region_primary) instead:', @walks));
is_deeply(\@restates, [], "no file restates region_primary's test but $the_place")
  or diag(join("\n", 'Each line below restates "up and not a standby":', @restates));
is_deeply([sort grep { !$walked{$_} } keys %may_walk], [], 'every exception still walks a region\'s hosts')
  or diag('Delete the stale exceptions from %may_walk.');

done_testing;
