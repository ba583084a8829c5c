#!/usr/bin/perl
# nearest's machine and its one door (doc/architecture.md, near.h): its
# real states are the legs of near_legs.c's table, not flags, so its
# private state (near_int.h's structs) holds at most 10 booleans; only
# near.c moves the leg (near_leg_to, near_leg_enter), and checks each
# move's result; transaction pooling (proxy/session/txn.c) includes one
# nearest header, near.h, and makes at most 12 calls into nearest.  The
# test fails with the booleans, the movers, the headers or the calls it
# found.
use strict;
use warnings;
use File::Basename qw(dirname);
use Test::More;

my $src = $ENV{PGNEAR_SRCDIR} // dirname(dirname(dirname(__FILE__)));
my $dir = "$src/proxy/session";
ok(-d $dir, "proxy/session/ is in the source tree ($src)")
  or BAIL_OUT("PGNEAR_SRCDIR ($src) is not pgnear's source tree");

sub slurp {
    my ($path) = @_;
    open(my $fh, '<', $path) or die "$path: $!\n";
    local $/;
    return <$fh>;
}

# The text with its comments and string literals blanked out.
sub code_of {
    my ($text) = @_;
    $text =~ s{("(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')|(/\*.*?\*/|//[^\n]*)}
              {defined $1 ? '""' : ($2 =~ s/[^\n]/ /gr)}gse;
    return $text;
}

# ---- the booleans of nearest's state
my $int = code_of(slurp("$dir/near_int.h"));
my @structs = qw(near_placed near_slots near_hold near_forward near_state);
my @bools;
for my $name (@structs) {
    my ($body) = $int =~ /^struct\s+$name\s*\{(.*?)^\};/ms;
    ok(defined $body, "near_int.h defines struct $name") or next;
    for my $decl ($body =~ /^\s*bool\s+([^;]+);/mg) {
        push @bools, map { "$name." . s/^\s+|\s+$//gr } split /,/, $decl;
    }
}
cmp_ok(scalar(@bools), '<=', 10, "nearest's state holds at most 10 booleans (it holds " . scalar(@bools) . ')')
  or diag(join("\n", @bools));

# ---- one mover of the leg
opendir(my $dh, $dir) or die "$dir: $!\n";
my @files = sort grep { /\.[ch]$/ } readdir($dh);
closedir($dh);
my (@movers, @unchecked);
for my $file (@files) {
    my $code = code_of(slurp("$dir/$file"));
    my $n = 0;
    for my $line (split /\n/, $code) {
        $n++;
        next unless $line =~ /\b(near_leg_to|near_leg_enter)\s*\(/;
        my $fn = $1;
        # near_legs.[ch] declare and define near_leg_enter; near.c defines near_leg_to.
        next if $file =~ /^near_legs\.[ch]$/ && $fn eq 'near_leg_enter';
        next if $line =~ /^\s*(?:static\s+)?bool\s+near_leg_to\s*\(/;
        push @movers, "$file:$n" unless $file eq 'near.c';
        # A call whose result nothing reads: a statement of its own.
        push @unchecked, "$file:$n: " . ($line =~ s/^\s+//r) if $line =~ /^\s*near_leg_to\s*\(.*\);\s*$/;
    }
}
is_deeply(\@movers, [], 'only near.c moves the leg (near_leg_to, near_leg_enter)') or diag(join("\n", @movers));
is_deeply(\@unchecked, [], "every move of the leg acts on near_leg_to's result") or diag(join("\n", @unchecked));

# ---- txn.c's door into nearest
my $txn_text = slurp("$dir/txn.c");
my @headers = $txn_text =~ m{^\s*#\s*include\s*"proxy/session/(near\w*\.h)"}mg;
is_deeply(\@headers, ['near.h'], 'txn.c includes one nearest header, near.h')
  or diag("txn.c includes: @headers");

# nearest's functions: those its headers declare.
my %nearest;
for my $h (grep { /^near\w*\.h$/ } @files) {
    my $code = code_of(slurp("$dir/$h"));
    $nearest{$_} = $h for $code =~ /\b(near_\w+)\s*\(/g;
}
ok(keys %nearest > 20, 'the nearest headers declare their functions (' . scalar(keys %nearest) . ')');
my $txn = code_of($txn_text);
my @calls;
my $n = 0;
for my $line (split /\n/, $txn) {
    $n++;
    push @calls, map { "txn.c:$n: $_ ($nearest{$_})" } grep { $nearest{$_} } $line =~ /\b(near_\w+)\s*\(/g;
}
cmp_ok(scalar(@calls), '<=', 12, 'txn.c makes at most 12 calls into nearest (it makes ' . scalar(@calls) . ')')
  or diag(join("\n", @calls));

done_testing();
