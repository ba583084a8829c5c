#!/usr/bin/perl
# md2man.pl — turns pgnear's reference (doc/pgnear.md) into the man page
# pgnear(1).  Only the Markdown the reference uses is understood, and
# anything else stops the conversion with the line number, so that the man
# page never silently loses text:
#
#   # name — one-line description      first line only: .TH and NAME
#   ## Heading                         .SH (upper-cased)
#   ### Heading                        .SS
#   paragraphs                         .PP, lines joined
#   - item / * item                    bullet list (.IP), continuation lines indented
#   1. item                            numbered list
#   ``` fenced code ```                .nf block, indented
#   | a | b | c |  tables              one .TP entry a row: the first cell is the tag,
#                                      middle cells "Header: cell", the last cell the text
#   `code`, **bold**, *italic*, [text](link), \| inside table cells
#
# Usage: md2man.pl [--version VERSION] [--section N] INPUT.md > OUTPUT.1
# Perl core only.
use v5.16;
use strict;
use warnings;
use utf8;
use Getopt::Long;

my $version = '';
my $section = 1;
GetOptions('version=s' => \$version, 'section=i' => \$section)
  or die "usage: $0 [--version VERSION] [--section N] INPUT.md\n";
@ARGV == 1 or die "usage: $0 [--version VERSION] [--section N] INPUT.md\n";
my $input = $ARGV[0];

open(my $fh, '<:encoding(UTF-8)', $input) or die "$0: $input: $!\n";
my @lines = <$fh>;
close $fh;
chomp @lines;
s/\r\z// for @lines;

my @out;           # roff lines
my $after_heading = 0;    # no .PP right after .SH/.SS
my $lineno = 0;

sub fail { die "$0: $input:$_[0]: $_[1]\n" }

# Characters roff would read as its own, and everything outside ASCII.
sub roff_chars {
    my ($s, $literal) = @_;
    $s =~ s/\\/\\e/g;
    $s =~ s/-/\\-/g if $literal;
    $s =~ s/([^\x00-\x7f])/sprintf('\\[u%04X]', ord $1)/ge;
    return $s;
}

# Inline Markdown to roff font changes.  Code spans are set aside first
# (nothing inside them is Markdown), so that emphasis may surround them.
sub inline {
    my ($text, $at) = @_;
    my @code;
    $text =~ s/`([^`]*)`/push @code, '\fB' . roff_chars($1, 1) . '\fR'; "\x10" . $#code . "\x11"/ge;
    fail($at, "unmatched backquote") if $text =~ /`/;
    # Links: the text; an absolute address follows it in angle brackets.
    $text =~ s{\[([^\]]+)\]\(([^)\s]+)\)}{
        my ($label, $url) = ($1, $2);
        $url =~ m{\A[a-z]+://} ? "$label \x01$url\x02" : $label
    }ge;
    fail($at, "link or image syntax not understood") if $text =~ /\]\(|!\[/;
    my $t = roff_chars($text, 0);
    $t =~ s/\*\*(.+?)\*\*/\\fB$1\\fR/g;
    $t =~ s/(?<![\w*])\*(?![\s*])(.+?)(?<![\s*])\*(?![\w*])/\\fI$1\\fR/g;
    fail($at, "stray emphasis marker") if $t =~ /\*\*/;
    $t =~ s/\x01/</g;
    $t =~ s/\x02/>/g;
    $t =~ s/\x10(\d+)\x11/$code[$1]/g;
    return $t;
}

# A text line for roff: never starting with a control character or a space.
sub text_line {
    my ($s) = @_;
    $s =~ s/^\s+//;
    $s =~ s/\s+$//;
    $s = "\\&$s" if $s =~ /^[.']/;
    return $s;
}

sub paragraph_break {
    push @out, '.PP' unless $after_heading;
    $after_heading = 0;
}

sub split_row {
    my ($line, $at) = @_;
    my $l = $line;
    $l =~ s/^\s*\|//;
    $l =~ s/\|\s*$// or fail($at, "table row must end with |");
    $l =~ s/\\\|/\x03/g;
    my @cells = map { my $c = $_; $c =~ s/\x03/|/g; $c =~ s/^\s+|\s+$//g; $c } split /\|/, $l, -1;
    return @cells;
}

# ---- the title line ----
$lineno = 1;
my $title = shift @lines // '';
$title =~ /\A# (\S+) (?:—|-{1,2}) (.+)\z/
  or fail(1, "the first line must be '# name — description'");
my ($name, $whatis) = ($1, $2);
push @out, ".\\\" Made from doc/pgnear.md by scripts/md2man.pl: edit that file, not this one.";
push @out, sprintf('.TH %s %d "" "%s" "User Commands"', uc $name, $section,
                   $version ne '' ? "$name $version" : $name);
# No hyphenation (it would split names of settings), ragged right.
push @out, '.nh', '.ad l';
push @out, '.SH NAME', text_line("$name \\- " . inline($whatis, 1));

# ---- blocks ----
my $i = 0;
while ($i < @lines) {
    my $line = $lines[$i];
    $lineno = $i + 2;
    if ($line =~ /^\s*$/) {
        $i++;
        next;
    }
    if ($line =~ /^(#+)\s+(.*?)\s*$/) {
        my ($level, $text) = (length $1, $2);
        fail($lineno, "only one level-1 heading, on the first line") if $level == 1;
        fail($lineno, "headings deeper than ### are not supported") if $level > 3;
        if ($level == 2) {
            push @out, '.SH', text_line(uc inline($text, $lineno));
        } else {
            push @out, '.SS', text_line(inline($text, $lineno));
        }
        $after_heading = 1;
        $i++;
        next;
    }
    if ($line =~ /^```/) {
        my $start = $lineno;
        paragraph_break();
        push @out, '.RS 4', '.nf';
        $i++;
        while (1) {
            fail($start, "code block not closed") if $i >= @lines;
            last if $lines[$i] =~ /^```\s*$/;
            my $code = $lines[$i];
            fail($i + 2, "tab in a code block") if $code =~ /\t/;
            $code = roff_chars($code, 1);
            $code = "\\&$code" if $code =~ /^[.']/ || $code eq '';
            push @out, $code;
            $i++;
        }
        push @out, '.fi', '.RE';
        $i++;
        next;
    }
    if ($line =~ /^\|/) {
        my $start = $lineno;
        my @head = split_row($line, $start);
        my $sep = $lines[$i + 1] // '';
        fail($start + 1, "a table needs a | --- | line under its header")
          unless $sep =~ /^\|(\s*:?-+:?\s*\|)+\s*$/;
        fail($start, "a table needs at least two columns") if @head < 2;
        $i += 2;
        $after_heading = 0;    # .TP starts its own paragraph
        while ($i < @lines && $lines[$i] =~ /^\|/) {
            my @cells = split_row($lines[$i], $i + 2);
            fail($i + 2, sprintf("%d cells where the header has %d", scalar @cells, scalar @head))
              if @cells != @head;
            push @out, '.TP', text_line(inline($cells[0], $i + 2));
            my @mid;
            for my $c (1 .. $#cells - 1) {
                next if $cells[$c] eq '';
                my $h = @mid ? $head[$c] : ucfirst $head[$c];
                push @mid, inline($h, $start) . ': ' . inline($cells[$c], $i + 2);
            }
            if (@mid) {
                push @out, text_line(join('; ', @mid) . '.');
                push @out, '.br' if $cells[-1] ne '';
            }
            push @out, text_line(inline($cells[-1], $i + 2)) if $cells[-1] ne '';
            $i++;
        }
        next;
    }
    if ($line =~ /^(?:[-*]|\d+\.)\s/) {
        $after_heading = 0;    # .IP starts its own paragraph
        while ($i < @lines && $lines[$i] =~ /^([-*]|\d+\.)\s+(.*)$/) {
            my ($mark, $text) = ($1, $2);
            my $at = $i + 2;
            $i++;
            while ($i < @lines && $lines[$i] =~ /^\s{2,}(\S.*)$/) {
                fail($i + 2, "nested lists are not supported") if $1 =~ /^(?:[-*]|\d+\.)\s/;
                $text .= " $1";
                $i++;
            }
            push @out, $mark =~ /\d/ ? ".IP $mark 4" : '.IP \(bu 2';
            push @out, text_line(inline($text, $at));
        }
        fail($i + 2, "a list must be followed by a blank line")
          if $i < @lines && $lines[$i] !~ /^\s*$/;
        next;
    }
    if ($line =~ /^\s*(?:>|<|\s{4})/) {
        fail($lineno, "block quotes, HTML and indented code are not supported");
    }
    # A paragraph: every line up to a blank line or another block.
    my $at = $lineno;
    my @para;
    while ($i < @lines && $lines[$i] !~ /^\s*$/ && $lines[$i] !~ /^(?:#|```|\||[-*]\s|\d+\.\s)/) {
        push @para, $lines[$i];
        $i++;
    }
    paragraph_break();
    push @out, text_line(inline(join(' ', map { s/^\s+|\s+$//gr } @para), $at));
}

binmode STDOUT, ':encoding(UTF-8)';
print "$_\n" for @out;
