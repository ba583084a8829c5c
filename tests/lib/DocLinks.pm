package DocLinks;

# The relative links of Markdown pages, and whether they hold: for
# tests/doc/links.t (the source tree) and tests/doc/install.t (the
# documents as make install puts them).
#
#   my @problems = DocLinks::check($root, @pages);
#
# @pages are paths under $root.  Every inline link [text](target) outside
# code (fenced blocks and `spans`) whose target has no scheme must name a
# file or directory that exists, relative to its page, without leaving
# $root; a #fragment must be the anchor of a heading of the page it names
# (a Markdown page), as GitHub makes anchors.  Each problem is a line
# "PAGE:LINE: [text](target): why".

use strict;
use warnings;
use Cwd qw(realpath);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;

sub slurp {
    my ($path) = @_;
    open(my $fh, '<:encoding(UTF-8)', $path) or die "$path: $!\n";
    local $/;
    return scalar <$fh>;
}

sub spew {
    my ($path, $text) = @_;
    make_path(dirname($path));
    open(my $fh, '>:encoding(UTF-8)', $path) or die "$path: $!\n";
    print $fh $text;
    close $fh or die "$path: $!\n";
}

# The text with fenced code blocks and code spans blanked out (newlines
# kept, so that offsets still give line numbers).
sub prose {
    my ($text) = @_;
    my @out;
    my $fence;
    for my $line (split /(?<=\n)/, $text) {
        if (defined $fence) {
            undef $fence if $line =~ /^\s*\Q$fence\E\s*$/;
            $line =~ s/[^\n]/ /g;
        } elsif ($line =~ /^\s*(```+|~~~+)/) {
            $fence = $1;
            $line =~ s/[^\n]/ /g;
        }
        push @out, $line;
    }
    my $t = join '', @out;
    $t =~ s/(\x60+)(.+?)\1/' ' x (length($1) * 2 + length($2))/gse;    # `code`
    return $t;
}

# GitHub's anchor of a heading: lower case, punctuation dropped, each
# space a hyphen; a repeated one gets -1, -2, ...
sub anchors {
    my ($text) = @_;
    my (%seen, %anchor);
    my $fence;
    for my $line (split /\n/, $text) {
        if (defined $fence) {
            undef $fence if $line =~ /^\s*\Q$fence\E\s*$/;
            next;
        }
        if ($line =~ /^\s*(```+|~~~+)/) {
            $fence = $1;
            next;
        }
        next unless $line =~ /^#{1,6}\s+(.*?)\s*#*\s*$/;
        my $a = lc $1;
        $a =~ s/[^\p{L}\p{N}\s_-]//g;
        $a =~ s/ /-/g;
        my $n = $seen{$a}++;
        $anchor{$n ? "$a-$n" : $a} = 1;
    }
    return \%anchor;
}

sub check {
    my ($root, @pages) = @_;
    my $top = realpath($root) // die "$root: $!\n";
    my @problems;
    my %anchors_of;
    for my $page (@pages) {
        my $path = "$root/$page";
        my $text = slurp($path);
        my $t = prose($text);
        while ($t =~ /\[([^\]]*)\]\(([^)\s]*)(?:\s+"[^"]*")?\)/g) {
            my ($label, $target) = ($1, $2);
            my $line = 1 + (substr($t, 0, $-[0]) =~ tr/\n//);
            my $say = sub { push @problems, "$page:$line: [$label]($target): $_[0]" };
            $label =~ s/\s+/ /g;
            next if $target =~ m{^[a-z][a-z0-9+.-]*:}i;    # http:, mailto: ...
            if ($target eq '') {
                $say->('empty target');
                next;
            }
            my ($file, $frag) = split /#/, $target, 2;
            my $dest = $file eq '' ? $path : File::Spec->catfile(dirname($path), $file);
            my $real = realpath($dest);
            if (!defined $real || !-e $real) {
                $say->("no such file: $file");
                next;
            }
            if ($real ne $top && index($real, "$top/") != 0) {
                $say->("leaves the tree ($real)");
                next;
            }
            next unless defined $frag;
            if ($real !~ /\.md$/ || -d $real) {
                $say->("#$frag on a file that is not a Markdown page");
                next;
            }
            $anchors_of{$real} //= anchors(slurp($real));
            $say->("no heading with the anchor #$frag in " . ($file eq '' ? $page : $file))
              unless $anchors_of{$real}{$frag};
        }
    }
    return @problems;
}

1;
