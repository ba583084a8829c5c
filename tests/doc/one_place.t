#!/usr/bin/perl
# Small knowledge written once: pieces that were copied by new code, each
# now in one place that every user calls.  A copy is recognised by a
# line of code (comments and strings blanked) that only that piece needs;
# the test fails on such a line outside its one place (file:line), and on
# a place that no longer holds it (the table here is stale).
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Find;
use Test::More;

my $src = $ENV{PGNEAR_SRCDIR} // dirname(dirname(dirname(__FILE__)));

# What, the line that gives a copy away, and the one file that may hold it.
my @once = (
    # The UTF-8 encoder of a code point (utf8_put): the lead byte of a
    # four-byte sequence, 0xF0 | ... (json.c and sql_calls.c had one each).
    ['the UTF-8 encoder of a code point', qr/\b0[xX][fF]0\s*\|/, 'protocol/utf8.c'],
    # Whether an address is inside a prefix (cidr_contains): the mask of a
    # prefix's last, partial byte (hba.c had its own).
    ['an address matched against a prefix', qr/<<\s*\(\s*8\s*-/, 'routing/cidr.c'],
    # The keyed counter table under the shared limits (count_table.c):
    # the growth of an array of counts (client_limits.c and pool_limits.c
    # each had a find, create and drop of their own).
    ['a table of counts grown', qr/\brealloc\s*\(/, 'proxy/base/count_table.c',
     qr{^proxy/base/(?:\w+_limits|count_table)\.c$}],
);

# The text with its comments and string literals blanked out, lines kept.
sub code_of {
    my ($text) = @_;
    $text =~ s{("(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')|(/\*.*?\*/|//[^\n]*)}
              {defined $1 ? '""' : ($2 =~ s/[^\n]/ /gr)}gse;
    return $text;
}

my %code;
for my $top (qw(proxy protocol routing)) {
    ok(-d "$src/$top", "$top/ is in the source tree ($src)")
      or BAIL_OUT("PGNEAR_SRCDIR ($src) is not pgnear's source tree");
    find({ no_chdir => 1, wanted => sub {
        return unless /\.[ch]$/ && -f $_;
        open(my $fh, '<', $_) or die "$_: $!\n";
        $code{ $File::Find::name =~ s{^\Q$src\E/}{}r } = code_of(do { local $/; <$fh> });
    } }, "$src/$top");
}

for my $row (@once) {
    my ($what, $line_re, $home, $among) = @$row;
    my (@bad, $found);
    for my $file (sort keys %code) {
        next if defined $among && $file !~ $among;
        my $n = 0;
        for my $line (split /\n/, $code{$file}) {
            $n++;
            next unless $line =~ $line_re;
            $found = 1 if $file eq $home;
            push @bad, "$file:$n: " . ($line =~ s/^\s+//r) if $file ne $home;
        }
    }
    is_deeply(\@bad, [], "$what: only in $home") or diag(join("\n", @bad));
    ok($found, "$home holds $what (the table of this test is up to date)");
}

done_testing();
