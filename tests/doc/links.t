#!/usr/bin/perl
# README.md is the front page: at most 300 lines, with the quick start's
# two commands, the tutorial linked first where it says where to read on;
# the rest lives in doc/.  Every relative link of README.md and of every
# page under doc/ (doc/howto/ too) names a file of the source tree and,
# after a #, a heading of that page (tests/lib/DocLinks.pm); the checker
# itself is first shown to catch a missing file, a missing heading and a
# link out of the tree.  Every page is linked from somewhere: the README
# links each page of doc/, and a page further down is linked by another.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Find qw(find);
use File::Spec;
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use DocLinks;

my $src = $ENV{PGNEAR_SRCDIR} // dirname(dirname($FindBin::RealBin . '/x'));
binmode(Test::More->builder->$_, ':encoding(UTF-8)') for qw(output failure_output todo_output);

# ---- the checker, on a tree of its own
{
    my $tmp = tempdir(CLEANUP => 1);
    my $root = "$tmp/tree";
    DocLinks::spew("$root/doc/b.md", "# B page\n\n## Two words, `code` = x\n\n## Again\n\n## Again\n");
    DocLinks::spew("$root/conf/x.ini", "[x]\n");
    DocLinks::spew("$tmp/outside.md", "# Outside\n");
    DocLinks::spew("$root/README.md", <<'MD');
# Top

Good: [b](doc/b.md), [heading](doc/b.md#two-words-code--x), [second](doc/b.md#again-1),
[here](#top), [a dir](conf/), [ini](conf/x.ini), [web](https://example.com/nothing),
and a link split
over [two
lines](doc/b.md#b-page).

```
[in a fence](doc/none.md)
```
Not a link either: `[in a span](doc/none.md)`.

Bad: [gone](doc/none.md) [no heading](doc/b.md#three) [here](#nowhere)
[out](../outside.md) [frag on ini](conf/x.ini#x) [empty]()
MD
    my @p = DocLinks::check($root, 'README.md', 'doc/b.md');
    my @want = (
        qr{^README\.md:14: \[gone\]\(doc/none\.md\): no such file},
        qr{^README\.md:14: \[no heading\]\(doc/b\.md#three\): no heading with the anchor #three},
        qr{^README\.md:14: \[here\]\(#nowhere\): no heading},
        qr{^README\.md:15: \[out\]\(\.\./outside\.md\): leaves the tree},
        qr{^README\.md:15: \[frag on ini\]\(conf/x\.ini#x\): #x on a file that is not a Markdown page},
        qr{^README\.md:15: \[empty\]\(\): empty target},
    );
    is(scalar @p, scalar @want, 'the checker finds the six broken links of its own tree, no more')
      or diag(join "\n", @p);
    for my $i (0 .. $#want) {
        like($p[$i] // '', $want[$i], "... problem " . ($i + 1));
    }
}

# ---- README.md is a front page
my $readme = DocLinks::slurp("$src/README.md");
my $lines = () = $readme =~ /\n/g;
cmp_ok($lines, '<=', 300, "README.md has at most 300 lines ($lines)");
like($readme, qr{^scripts/demo\.sh\s}m, 'README.md gives scripts/demo.sh');
like($readme, qr{^scripts/test\.sh\s}m, '... and scripts/test.sh');
like($readme, qr{\.ci/run}, '... and says what CI (.ci/run) runs');

# ---- the README says where to read on, the tutorial first
my ($read_on) = $readme =~ /^## Where to read (?:on|more)\n(.*?)(?=^## |\z)/ms;
ok(defined $read_on, 'README.md has a section that says where to read on');
my ($first) = ($read_on // '') =~ /\]\(([^)]+)\)/;
is($first, 'doc/tutorial.md', '... and links the tutorial first there');

# ---- every relative link of README.md and of the pages under doc/ holds
my @docs;
find({ no_chdir => 1, wanted => sub { push @docs, $File::Find::name if /\.md$/ && -f } }, "$src/doc");
my @pages = ('README.md', map { s{^\Q$src\E/}{}r } sort @docs);
cmp_ok(scalar @pages, '>=', 5, 'README.md and the pages of doc/: ' . join(', ', @pages));
ok((grep { m{^doc/howto/} } @pages), 'the pages of doc/howto/ are among them');
my @problems = DocLinks::check($src, @pages);
is(scalar @problems, 0, 'every relative link names an existing file and heading')
  or diag(join "\n", @problems);

# ---- README.md links every page of doc/, so that none is lost; a page
# further down (doc/howto/) is linked by some other page
my %text = map { $_ => DocLinks::prose(DocLinks::slurp("$src/$_")) } @pages;
for my $page (grep { m{^doc/} } @pages) {
    if ($page =~ m{^doc/[^/]+$}) {
        like($readme, qr{\]\(\Q$page\E[)#]}, "README.md links $page");
        next;
    }
    my @by = grep {
        my $from = $_;
        my $rel = File::Spec->abs2rel("$src/$page", dirname("$src/$from"));
        $from ne $page && $text{$from} =~ /\]\(\Q$rel\E[)#]/
    } @pages;
    ok(@by, "$page is linked from another page" . (@by ? " ($by[0])" : ''));
}

done_testing();
