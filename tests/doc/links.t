#!/usr/bin/perl
# README.md is the front page: at most 300 lines, with the quick start's
# two commands; the rest lives in doc/.  Every relative link of README.md
# and doc/*.md names a file of the source tree and, after a #, a heading
# of that page (tests/lib/DocLinks.pm); the checker itself is first shown
# to catch a missing file, a missing heading and a link out of the tree.
use strict;
use warnings;
use File::Basename qw(dirname);
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

# ---- every relative link of README.md and doc/*.md holds
my @pages = ('README.md', map { s{^\Q$src\E/}{}r } sort glob("$src/doc/*.md"));
cmp_ok(scalar @pages, '>=', 5, 'README.md and the pages of doc/: ' . join(', ', @pages));
my @problems = DocLinks::check($src, @pages);
is(scalar @problems, 0, 'every relative link names an existing file and heading')
  or diag(join "\n", @problems);

# ---- README.md links every page of doc/, so that none is lost
for my $page (grep { m{^doc/} } @pages) {
    like($readme, qr{\]\(\Q$page\E[)#]}, "README.md links $page");
}

done_testing();
