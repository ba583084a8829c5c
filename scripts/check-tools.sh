#!/bin/sh
# Checks that every program that pgnear's tests, scripts, bench/ and
# Makefile run comes from a package that scripts/install-deps.sh installs,
# or from one that every Debian system has (Essential, or priority
# required: what `debootstrap --variant=minbase` installs).  A program that
# is here only because something else brought it (ss from iproute2, pgrep
# from procps) is what makes the README's commands fail on a fresh machine:
# that fails this check.  Run scripts/install-deps.sh first.
#   scripts/check-tools.sh                   check; exit 1 on a problem
#   scripts/check-tools.sh --list            print each program, its package, where it is run
#   scripts/check-tools.sh --packages "P..." check against these packages instead
#                                            of `scripts/install-deps.sh --list`
# The programs are found by reading the files: the first word of each shell
# command (through variables, sudo, setpriv and env), require_tool(),
# run_cmd([...]), system(), exec and IPC::Run in Perl, posix_spawnp() and
# friends in C, child_process in JavaScript, the recipes of Makefile.am,
# and the interpreters of #! lines.
set -eu
cd "$(dirname "$0")/.."

die() {
    echo "check-tools: $*" >&2
    exit 2
}

list=no
packages=""
while [ $# -gt 0 ]; do
    case $1 in
    --list) list=yes ;;
    --packages)
        [ $# -ge 2 ] || die "--packages needs a list"
        packages=$2
        shift
        ;;
    -h | --help)
        sed -n '2,17s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown argument '$1' (usage: scripts/check-tools.sh [--list] [--packages \"P...\"])" ;;
    esac
    shift
done
[ -n "$packages" ] || packages=$(scripts/install-deps.sh --list)
command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this check is for Debian"

PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
# Where the programs are looked for: a plain PATH, not the caller's.
SEARCH="$PG_BINDIR:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Programs that need not be installed, each only in the files named, and why.
# A file pattern is a shell glob.
EXEMPT='
sudo        scripts/install-deps.sh     only when not run as root, and it says so when sudo is missing
debootstrap scripts/check-minimal.sh    CI only: it installs debootstrap on the host itself
git         scripts/check-minimal.sh    CI only: clones the checkout, on the host that cloned it
pgnear      scripts/check-package.sh    /usr/bin/pgnear: the package that the check builds installs it
no-such-tool-pgnear tests/integration/000_harness.t  the test that require_tool fails on a missing tool
'

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# ---- 1. which programs are run, and where ----
SHELL_FILES=$(ls scripts/*.sh .ci/run autogen.sh 2>/dev/null)
PERL_FILES=$(ls tests/integration/*.t tests/lib/*.pm tests/lib/*.pl bench/*.pl scripts/*.pl 2>/dev/null)
C_FILES=$(ls tests/unit/*.c bench/*.c 2>/dev/null)
JS_FILES=$(ls scripts/*.js tests/*/*.js bench/*.js 2>/dev/null || true)
# shellcheck disable=SC2086
perl - <<'PERL' >"$tmp/uses" -- $SHELL_FILES -- $PERL_FILES -- $C_FILES -- $JS_FILES -- Makefile.am
use strict;
use warnings;

shift @ARGV if @ARGV && $ARGV[0] eq '--';
my (@sh, @pl, @c, @js);
for my $list (\@sh, \@pl, \@c, \@js) {
    while (@ARGV && $ARGV[0] ne '--') { push @$list, shift @ARGV }
    shift @ARGV;
}
my @mk = @ARGV;

my %seen;
sub found {
    my ($tool, $where) = @_;
    return if !defined $tool || $tool eq '';
    print "$tool\t$where\n" unless $seen{"$tool\t$where"}++;
}

# ---------- shell ----------
my %BUILTIN = map { $_ => 1 } qw(
  . : [ alias bg break cd command continue echo eval exec exit export false fg
  getopts hash jobs kill local printf pwd read readonly return set shift test
  times trap true type ulimit umask unalias unset wait);
my %KEYWORD = map { $_ => 1 } qw(if then else elif fi do done while until for in case esac { } !);
# Programs that run the program named after their options.
my %PREFIX = map { $_ => 1 } qw(sudo env setpriv nohup nice timeout exec xargs time);

# Splits shell code into words and operators; quotes stay in the words.
# $( and backquotes open a nested command, returned as an operator.
sub sh_tokens {
    my ($s) = @_;
    my @t;
    my $w;
    my $flush = sub { if (defined $w) { push @t, $w; undef $w } };
    my $i = 0;
    my $n = length $s;
    while ($i < $n) {
        my $c = substr($s, $i, 1);
        if ($c eq "\n") { $flush->(); push @t, ';'; $i++; next }
        if ($c =~ /\s/) { $flush->(); $i++; next }
        if ($c eq '#' && !defined $w) { last }
        if ($c eq "'") {
            my $j = index($s, "'", $i + 1);
            $j = $n - 1 if $j < 0;
            $w .= substr($s, $i, $j - $i + 1);
            $i = $j + 1;
            next;
        }
        if ($c eq '"') {
            # a double-quoted word; a $(...) inside is a nested command
            my $j = $i + 1;
            my $buf = '"';
            while ($j < $n && substr($s, $j, 1) ne '"') {
                if (substr($s, $j, 1) eq '\\') { $buf .= substr($s, $j, 2); $j += 2; next }
                if (substr($s, $j, 2) eq '$(' && substr($s, $j, 3) ne '$((') {
                    my ($inner, $end) = balanced($s, $j + 2);
                    push @t, ['sub', $inner];
                    $buf .= '$(...)';
                    $j = $end + 1;
                    next;
                }
                $buf .= substr($s, $j, 1);
                $j++;
            }
            $w .= $buf . '"';
            $i = $j + 1;
            next;
        }
        if ($c eq '\\') { $w .= substr($s, $i, 2); $i += 2; next }
        if (substr($s, $i, 3) eq '$((') {
            my ($inner, $end) = balanced($s, $i + 2);
            $w .= '$((...))';
            $i = $end + 2;
            next;
        }
        if (substr($s, $i, 2) eq '$(') {
            my ($inner, $end) = balanced($s, $i + 2);
            push @t, ['sub', $inner];
            $w .= '$(...)';
            $i = $end + 1;
            next;
        }
        if (substr($s, $i, 2) eq '${') {
            my $j = index($s, '}', $i);
            $j = $n - 1 if $j < 0;
            $w .= substr($s, $i, $j - $i + 1);
            $i = $j + 1;
            next;
        }
        if ($c eq '`') {
            my $j = index($s, '`', $i + 1);
            $j = $n if $j < 0;
            push @t, ['sub', substr($s, $i + 1, $j - $i - 1)];
            $w .= '`...`';
            $i = $j + 1;
            next;
        }
        if ($c =~ /[;&|()<>]/) {
            $flush->();
            my $op = substr($s, $i, 2);
            if ($op =~ /^(;;|&&|\|\||>>|<<|>&|<&|&>)$/) { push @t, $op; $i += 2 }
            else { push @t, $c; $i++ }
            next;
        }
        $w .= $c;
        $i++;
    }
    $flush->();
    return @t;
}

# From just after an opening "(", returns the text up to its ")" and where that is.
sub balanced {
    my ($s, $i) = @_;
    my $depth = 1;
    my $start = $i;
    my $q = '';
    while ($i < length $s) {
        my $c = substr($s, $i, 1);
        if ($q) { $q = '' if $c eq $q; $i++; next }
        if ($c eq "'" || $c eq '"') { $q = $c }
        elsif ($c eq '(') { $depth++ }
        elsif ($c eq ')') { return (substr($s, $start, $i - $start), $i) if --$depth == 0 }
        $i++;
    }
    return (substr($s, $start), length $s);
}

sub unquote {
    my ($w) = @_;
    $w =~ s/^"(.*)"$/$1/s;
    $w =~ s/^'(.*)'$/$1/s;
    return $w;
}

# What a word at the start of a command runs: (name, how), or () when it
# is the project's own program or cannot be known.
sub sh_command_word {
    my ($word, $vars, $where) = @_;
    my $w = unquote($word);
    return () if $w eq '';
    if ($w =~ /^\$\{?(\w+)\}?$/) {              # $var: what it was set to
        my $v = $vars->{$1} or return ();
        return map { sh_command_word($_, $vars, $where) } @$v;
    }
    if ($w =~ m{^\$\{?PG_BINDIR\}?/([\w.-]+)$} || $w =~ m{^\$\((PG_BINDIR)\)/([\w.-]+)$}) {
        return ($2 // $1);     # the PostgreSQL tools are looked for in PG_BINDIR first
    }
    return () if $w =~ /\$/;                   # some other variable: the project's programs
    return ($w) if $w =~ m{^/};                # an absolute path
    return () if $w =~ m{/};                   # a relative path: the project's own files
    return () if $w =~ /^-/ || $w =~ /[*?\[=]/;
    return ($w);
}

# Does the line end inside a quoted string?
sub open_quote {
    my ($s) = @_;
    my $q = '';
    my $word = 0;
    for (my $i = 0; $i < length $s; $i++) {
        my $c = substr($s, $i, 1);
        if ($q eq "'") { $q = '' if $c eq "'"; next }
        if ($c eq '\\') { $i++; next }
        if ($q eq '"') { $q = '' if $c eq '"'; next }
        if ($c eq "'" || $c eq '"') { $q = $c; $word = 1; next }
        if ($c eq '#' && !$word) { last }
        $word = $c !~ /\s/;
    }
    return $q ne '';
}

# Finds the programs that shell code runs.  $st holds what the file set so
# far: variables (their first words), functions, and whether the scan is
# inside a case statement (1: a pattern comes next, 2: in a pattern).
sub sh_scan {
    my ($code, $where, $st) = @_;
    my @t = sh_tokens($code);
    my ($vars, $funcs) = ($st->{vars}, $st->{funcs});
    my $at_cmd = 1;
    my $prefix = 0;     # after sudo/setpriv/env: options, then the command
    my $for = 0;
    for (my $k = 0; $k < @t; $k++) {
        my $tok = $t[$k];
        if (ref $tok) { sh_scan($tok->[1], $where, { vars => $vars, funcs => $funcs, case => 0 }); next }
        my $case = $st->{case};
        if ($tok =~ /^(;|;;|&&|\|\||\||&|\()$/) {
            $at_cmd = 1; $prefix = 0; $for = 0;
            $st->{case} = 1 if $tok eq ';;';
            next;
        }
        if ($tok eq ')') {
            $at_cmd = 1; $prefix = 0;
            $st->{case} = 0 if $case == 2;
            next;
        }
        if ($tok =~ /^(>|<|>>|<<|>&|<&|&>)$/) { $k++; next }     # skip the redirection's target
        if ($case == 1 && $tok eq 'esac') { $st->{case} = 0; $at_cmd = 0; next }
        if ($case == 1 || $case == 2) { $st->{case} = 2; next }     # a case pattern
        next unless $at_cmd || $prefix;
        if ($for) { next }
        if ($at_cmd && $tok eq 'case') { $at_cmd = 0; $k++ while $k + 1 < @t && $t[$k] ne 'in'; $st->{case} = 1; next }
        if ($at_cmd && $tok eq 'for') { $for = 1; next }
        if ($at_cmd && $tok eq 'esac') { $st->{case} = 0; next }
        if ($at_cmd && $KEYWORD{$tok}) { next }
        if ($at_cmd && $tok =~ /^(\w+)=(.*)$/s) {            # an assignment: remember its first word
            my ($var, $val) = ($1, $2);
            my $first = (split ' ', unquote($val))[0];
            push @{ $vars->{$var} }, $first if defined $first && $first ne '$(...)';
            next;
        }
        if ($prefix) {
            next if $tok =~ /^-/ || $tok =~ /^\w+=/;
            next if $prefix == 2 && $tok =~ /^[\d.]+[smhd]?$/;   # timeout's duration
        }
        if ($at_cmd && $tok =~ /^(\w+)\(\)$/) { $funcs->{$1} = 1; $at_cmd = 0; next }
        if ($at_cmd && $tok =~ /^\w+$/ && $k + 2 < @t && $t[$k + 1] eq '(' && $t[$k + 2] eq ')') {
            $funcs->{$tok} = 1; $k += 2; $at_cmd = 1; next;
        }
        my $was_prefix = $prefix;
        $at_cmd = 0;
        $prefix = 0;
        if ($tok eq 'command') {                          # command -v X only looks
            $k++ while $k + 1 < @t && !ref $t[$k + 1] && $t[$k + 1] !~ /^(;|&&|\|\||\||&|\))$/;
            next;
        }
        my $name = unquote($tok);
        if ($BUILTIN{$name} && !$PREFIX{$name}) { next }
        if ($funcs->{$name}) { next }
        for my $cmd (sh_command_word($tok, $vars, $where)) {
            my $base = $cmd; $base =~ s{.*/}{};
            if ($PREFIX{$base}) {
                found($cmd, $where) unless $BUILTIN{$base};
                $prefix = $base eq 'timeout' ? 2 : 1;
                next;
            }
            next if $funcs->{$cmd};
            found($cmd, $where);
        }
    }
}

sub sh_file {
    my ($file, $mk) = @_;
    open my $fh, '<', $file or die "$file: $!\n";
    my @lines = <$fh>;
    close $fh;
    my $st = { vars => {}, funcs => {}, case => 0 };
    # functions first, so that calls before their definition are known
    for (@lines) { $st->{funcs}{$1} = 1 if /^\s*(\w+)\s*\(\)/ }
    my $heredoc;
    for (my $i = 0; $i < @lines; $i++) {
        my $line = $lines[$i];
        my $no = $i + 1;
        chomp $line;
        if (defined $heredoc) {
            my ($end, $strip, $quoted) = @$heredoc;
            my $l = $strip ? ($line =~ s/^\t+//r) : $line;
            if ($l eq $end) { undef $heredoc; next }
            next if $quoted;
            while ($line =~ /\$\(([^()]*(?:\([^()]*\)[^()]*)*)\)/g) { sh_scan($1, "$file:$no", { %$st, case => 0 }) }
            next;
        }
        while ($line =~ /\\$/ && $i + 1 < @lines) {          # continued lines
            $line =~ s/\\$//;
            my $next = $lines[++$i];
            chomp $next;
            $line .= ' ' . $next;
        }
        while (open_quote($line) && $i + 1 < @lines) {       # a string over several lines
            my $next = $lines[++$i];
            chomp $next;
            $line .= "\n" . $next;
        }
        if ($mk) {
            # Makefile.am: recipes (a tab first) and the test drivers
            if ($line =~ /^\w*(?:LOG_DRIVER|LOG_COMPILER)\s*=\s*(.*)$/) { $line = $1 }
            elsif ($line !~ /^\t/) { next }
            $line =~ s/^\t[@-]*//;
            found(lc $1, "$file:$no") while $line =~ /\$\((CLANG|PROVE|AWK)\)/g;
            $line =~ s/\$\((?:SHELL)\)/sh/g;
            $line =~ s/\$\((CLANG|PROVE|AWK|MAKE)\)/lc $1 eq 'make' ? 'make' : lc $1/ge;
            $line =~ s/\$\$/\$/g;
            $line =~ s/\$\((\w+)\)/\${$1}/g;
        }
        if ($line =~ /<<(-?)\s*(['"]?)(\w+)\2/) {
            $heredoc = [$3, $1 eq '-', $2 ne ''];
        }
        # trap 'code' SIG...: the code runs later
        while ($line =~ /\btrap\s+'([^']*)'/g) { sh_scan($1, "$file:$no", { %$st, case => 0 }) }
        # sh -c 'code': the code runs too
        while ($line =~ /\bsh\s+(?:-\w+\s+)*-c\s+'([^']*)'/g) { sh_scan($1, "$file:$no", { %$st, case => 0 }) }
        sh_scan($line, "$file:$no", $st);
    }
}

# ---------- Perl ----------
sub pl_file {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!\n";
    my $pod = 0;
    while (my $line = <$fh>) {
        my $where = "$file:$.";
        if ($line =~ /^=(\w+)/) { $pod = $1 ne 'cut'; next }
        next if $pod || $line =~ /^\s*#/;
        $line =~ s/\s#\s.*$//;
        my $q = qr/['"]([\w.+\/-]+)['"]/;
        found($1, $where) while $line =~ /require_tool\(\s*$q\s*\)/g;
        if ($line =~ /require_tool\(\s*\$_\s*\)\s+for\s+qw\(([^)]*)\)/) { found($_, $where) for split ' ', $1 }
        found($1, $where) while $line =~ /\b(?:run_cmd|IPC::Run::run|IPC::Run::start|run|start)\(\s*\[\s*$q/g;
        found($1, $where) while $line =~ /\bsystem\(?\s*['"]([\w.+\/-]+)/g;
        found($1, $where) while $line =~ /\bexec\s*\{\s*$q\s*\}/g;
        found($1, $where) while $line =~ /\bexec\s*\(?\s*$q/g;
        found($1, $where) while $line =~ /open\w*\(.*['"]-\|['"]\s*,\s*$q/g;
        found($1, $where) while $line =~ /(?:(?:=|\(|return)\s*`|\bqx\s*[{(\/])\s*([\w.+-]+)/g;
        found('perl', $where) if $line =~ /\$\^X/;
    }
    close $fh;
}

# ---------- C ----------
sub c_file {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!\n";
    while (my $line = <$fh>) {
        next if $line =~ m{^\s*(/?\*|//)};
        found($1, "$file:$.") while $line =~ /\bposix_spawnp?\([^"]*"([^"]+)"/g;
        found($1, "$file:$.") while $line =~ /\b(?:execl|execlp|execle|system|popen)\(\s*"([^" ]+)/g;
    }
    close $fh;
}

# ---------- JavaScript (node) ----------
sub js_file {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!\n";
    my $text = do { local $/; <$fh> };
    close $fh;
    # child_process.spawn('npm', ...), execFileSync("git", ...), exec('tar ...')
    while ($text =~ /\b(?:spawn|spawnSync|execFile|execFileSync|exec|execSync|fork)\(\s*['"`]([\w.+\/-]+)/g) {
        my $tool = $1;
        my $line = 1 + (() = substr($text, 0, pos $text) =~ /\n/g);
        found($tool, "$file:$line");
    }
}

# ---------- #! lines: the interpreter runs the file ----------
sub shebang {
    my ($file) = @_;
    open my $fh, '<', $file or return;
    my $first = <$fh> // '';
    close $fh;
    return unless $first =~ m{^#!\s*(\S+)(?:\s+(\S+))?};
    my ($interp, $arg) = ($1, $2);
    $interp =~ s{^/(?:usr/)?bin/(?=\w+$)}{};
    found($interp =~ m{(^|/)env$} && defined $arg ? $arg : $interp, "$file:1");
}

sh_file($_, 0) for @sh;
pl_file($_) for @pl;
c_file($_) for @c;
js_file($_) for @js;
sh_file($_, 1) for @mk;
shebang($_) for @sh, @pl, @js;
PERL

# ---- 2. where each program is, which package has it, and may it ----
allowed=" $(echo $packages) "
exempt_for() { # TOOL FILE -> the reason, if TOOL need not be installed for FILE
    echo "$EXEMPT" | while read -r t pattern reason; do
        [ -n "$t" ] && [ "$t" = "$1" ] || continue
        # shellcheck disable=SC2254
        case $2 in $pattern) echo "$reason"; break ;; esac
    done
}
owner() { # PATH -> the package that has it (usrmerge: /bin is /usr/bin)
    for p in "$1" "$(readlink -f "$1")"; do
        for q in "$p" "$(echo "$p" | sed -n 's|^/usr/\(s\{0,1\}bin/\)|/\1|p')" \
            "$(echo "$p" | sed -n 's|^/\(s\{0,1\}bin/\)|/usr/\1|p')"; do
            [ -n "$q" ] || continue
            pkg=$(dpkg-query -S "$q" 2>/dev/null | grep -v '^diversion by' | sed -n "s|^\([^:]*\)\(:[a-z0-9]*\)\{0,1\}: $q\$|\1|p" | head -n 1)
            [ -n "$pkg" ] && { echo "$pkg"; return 0; }
        done
    done
    return 1
}
why_allowed() { # PACKAGE -> why it is on every system with install-deps, or nothing
    case $allowed in *" $1 "*) echo "install-deps"; return ;; esac
    set -- $(dpkg-query -W -f='${Essential} ${Priority}' "$1" 2>/dev/null)
    [ "${1:-}" = yes ] && { echo "Essential"; return; }
    [ "${2:-}" = required ] && echo "required"
    return 0
}

status=0
cut -f1 "$tmp/uses" | sort -u >"$tmp/tools"
while read -r tool; do
    where=$(awk -F'\t' -v t="$tool" '$1 == t { print $2 }' "$tmp/uses")
    files=$(echo "$where" | sed 's/:[0-9]*$//' | sort -u)
    first=$(echo "$where" | head -n 1)
    nwhere=$(echo "$where" | wc -l)
    more=""
    [ "$nwhere" -gt 1 ] && more=" and $((nwhere - 1)) more"
    # exempt in every file that runs it?
    reason=""
    for f in $files; do
        r=$(exempt_for "${tool##*/}" "$f")
        [ -n "$r" ] || { reason=""; break; }
        reason=$r
    done
    case $tool in
    /*) path=$tool; [ -x "$path" ] || path="" ;;
    *) path=$(PATH=$SEARCH command -v "$tool" 2>/dev/null || true) ;;
    esac
    case $path in /*) ;; *) path="" ;; esac      # a shell builtin is no program
    if [ -z "$path" ]; then
        if [ -n "$reason" ]; then
            [ "$list" = yes ] && printf '%-14s %-28s %s\n' "${tool##*/}" "(not installed)" "$first$more: $reason"
            continue
        fi
        echo "check-tools: '$tool' is run by $first$more but is not installed (run scripts/install-deps.sh first; if it did, add the package that has '$tool' to it)" >&2
        status=1
        continue
    fi
    pkg=$(owner "$path") || pkg=""
    if [ -z "$pkg" ]; then
        if [ -n "$reason" ]; then
            [ "$list" = yes ] && printf '%-14s %-28s %s\n' "${tool##*/}" "($path: no package)" "$first$more: $reason"
            continue
        fi
        echo "check-tools: '$tool' ($path, run by $first$more) belongs to no Debian package: a fresh machine has no such program" >&2
        status=1
        continue
    fi
    why=$(why_allowed "$pkg")
    if [ -n "$why" ]; then
        [ "$list" = yes ] && printf '%-14s %-28s %s\n' "${tool##*/}" "$pkg ($why)" "$first$more"
    elif [ -n "$reason" ]; then
        [ "$list" = yes ] && printf '%-14s %-28s %s\n' "${tool##*/}" "$pkg (exempt)" "$first$more: $reason"
    else
        echo "check-tools: '$tool' is run by $first$more; it comes from package $pkg, which scripts/install-deps.sh does not install and a minimal Debian lacks: add $pkg to install-deps.sh" >&2
        status=1
    fi
done <"$tmp/tools"

n=$(wc -l <"$tmp/tools")
if [ "$status" -eq 0 ]; then
    echo "check-tools: all $n programs run by the tests, scripts, bench/ and the Makefile come from install-deps.sh's packages or Essential/required ones"
fi
exit "$status"
