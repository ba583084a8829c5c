package DocPage;

# A page's fenced code, for the tests that run what a how-to tells its
# reader to run (tests/doc/howto_*.t):
#
#   my $sql = DocPage::block($page_text, $page_path, 'Heading', 'sql');
#
# The first ```LANG block (LANG '' for a bare ```) under the "## Heading"
# whose text starts so, up to the next "## ".  A missing section or block
# bails out, naming the page: a page changed so that the test runs
# nothing must fail, not pass.

use strict;
use warnings;
require Test::More;

sub block {
    my ($page, $path, $heading, $lang) = @_;
    my ($section) = $page =~ /^## \Q$heading\E[^\n]*\n(.*?)(?=^## |\z)/ms
      or Test::More::BAIL_OUT("no section \"$heading\" in $path");
    my ($in, @code);
    for (split /\n/, $section) {
        if (!defined $in) {
            $in = $1 if /^```(\w*)$/;
        } elsif (/^```$/) {
            return join('', map { "$_\n" } @code) if $in eq $lang;
            ($in, @code) = ();
        } else {
            push @code, $_;
        }
    }
    Test::More::BAIL_OUT("no ```$lang block under \"$heading\" in $path");
}

1;
