#!/usr/bin/perl
# The reference (doc/pgnear.md) and the man page made from it: the page
# renders with groff and man without a warning and fits 80 columns; every
# setting of proxy/base/config.c is documented with its real default and reload
# behaviour, and every option of proxy/main.c; the user-facing documents
# stand on their own.  A missing tool fails the test: nothing skips.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use Test::More;

my $src = $ENV{PGNEAR_SRCDIR} // dirname(dirname(dirname(__FILE__)));
my $build = defined $ENV{PGNEAR} ? dirname($ENV{PGNEAR}) : '.';
my $page = $ENV{PGNEAR_MANPAGE} // "$build/doc/pgnear.1";
my $md = "$src/doc/pgnear.md";
my $tmp = tempdir(CLEANUP => 1);
binmode(Test::More->builder->$_, ':encoding(UTF-8)') for qw(output failure_output todo_output);

sub slurp {
    my ($path) = @_;
    open(my $fh, '<:encoding(UTF-8)', $path) or die "$path: $!\n";
    local $/;
    return scalar <$fh>;
}

# Runs a shell command; returns its exit status, standard output and error.
sub run {
    my ($cmd) = @_;
    my $rc = system("$cmd >'$tmp/out' 2>'$tmp/err'");
    return ($rc == -1 ? -1 : $rc >> 8, slurp("$tmp/out"), slurp("$tmp/err"));
}

sub tool {
    my ($name, $package) = @_;
    my ($rc) = run("command -v $name");
    ok($rc == 0, "$name is installed") or diag("install the Debian package $package");
}

ok(-s $page, "the man page was built: $page") or BAIL_OUT("no $page: run make first");
my $md_text = slurp($md);

# ---- the converter refuses what it does not understand
{
    open(my $fh, '>', "$tmp/bad.md") or die $!;
    print $fh "# x — y\n\n#### too deep\n";
    close $fh;
    my ($rc, undef, $err) = run("perl '$src/scripts/md2man.pl' '$tmp/bad.md'");
    isnt($rc, 0, 'md2man.pl refuses Markdown it does not handle');
    like($err, qr/bad\.md:3:/, '... naming the line');
}

# ---- rendering
tool('groff', 'groff-base');
tool('man', 'man-db');
{
    my ($rc, $out, $err) = run("groff -man -Tutf8 -ww -z '$page'");
    is($rc, 0, 'groff -ww renders the page');
    is($err, '', '... without warnings');
}
my $text;
{
    my ($rc, $out, $err) =
      run("MANWIDTH=80 MANPAGER=cat PAGER=cat LC_ALL=C.UTF-8 man --warnings -l '$page'");
    is($rc, 0, 'man -l renders the page');
    is($err, '', '... without warnings');
    utf8::decode($out);
    $text = $out;
    my @long = grep { length > 80 } split /\n/, $out;
    is(scalar @long, 0, 'no line is wider than 80 columns') or diag(join "\n", @long);
    for my $section ('NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'EXIT STATUS', 'SIGNALS',
                     'CONFIGURATION FILE', 'SETTINGS', 'ROUTING', 'CITY TABLE', 'GEOIP',
                     'HEALTH CHECKS', 'AUTHENTICATION', 'CANCEL REQUESTS', 'TLS', 'LOGGING',
                     'ADMIN CONSOLE', 'METRICS', 'MIGRATIONS', 'SEE ALSO') {
        like($out, qr/^\Q$section\E$/m, "section $section");
    }
    like($out, qr/^ADMIN CONSOLE\n\s+Connect with psql/m, 'the admin console says how to reach it');
    like($out, qr/^\s+SHOW CLIENTS\s/m, '... and lists its commands');
    like($out, qr/^MIGRATIONS\n\s+pgnear runs schema migration steps in every region/m,
         'the migrations section begins by saying what they do');
    for my $sub ('Pause steps', 'Stopping a run', 'Going down', 'Settling a step') {
        like($out, qr/^\s+\Q$sub\E$/m, "migrations: $sub");
    }
    like($out, qr/^\s+MIGRATE ABORT\s/m, '... and MIGRATE ABORT is in the commands');
}

# ---- every setting, with its default and reload behaviour
my $config_c = slurp("$src/proxy/base/config.c");
my ($table) = $config_c =~ /config_settings\[\]\s*=\s*\{(.*?)\n\};/s
  or BAIL_OUT('config_settings[] not found in proxy/base/config.c');
my @settings;
while ($table =~ /\b([SE])\((\w+),\s*(.*?)\),?\s*$/mg) {
    my ($kind, $field, $rest) = ($1, $2, $3);
    my ($type, $def, $reload);
    if ($kind eq 'S') {
        ($type, $def, $reload) = $rest =~ /^(T_\w+),\s*"([^"]*)",\s*(true|false)$/
          or BAIL_OUT("cannot read S($field, $rest)");
    } else {
        ($def, $reload) = $rest =~ /^"([^"]*)",\s*(true|false),/
          or BAIL_OUT("cannot read E($field, $rest)");
        $type = 'T_ENUM';
    }
    my $name = $field;
    $name =~ s/_ms$// if $type eq 'T_MS';
    push @settings, { name => $name, def => $def, reload => $reload eq 'true' };
}
cmp_ok(scalar @settings, '>=', 30, 'the settings table of proxy/base/config.c was read');

my ($settings_md) = $md_text =~ /^## Settings\n(.*?)^## /ms
  or BAIL_OUT('no "## Settings" section in doc/pgnear.md');
my %doc;
for my $line (split /\n/, $settings_md) {
    next unless $line =~ /^\|\s*`(\w+)`\s*\|/;
    my @cells = map { s/^\s+|\s+$//gr } split /(?<!\\)\|/, $line;
    shift @cells;    # before the first |
    $doc{$1} = { default => $cells[1], reload => $cells[2] };
}
for my $s (@settings) {
    my $d = $doc{ $s->{name} };
    ok($d, "setting $s->{name} is documented") or next;
    is($d->{reload}, $s->{reload} ? 'yes' : 'restart', "... $s->{name}: reload column");
    like($d->{default}, qr/`\Q$s->{def}\E`/i, "... $s->{name}: default $s->{def}")
      if $s->{def} ne '';
    like($text, qr/^ {7}\Q$s->{name}\E\b/m, "... $s->{name} is in the man page");
}
my %known = map { $_->{name} => 1 } @settings;
for my $name (sort keys %doc) {
    ok($known{$name}, "documented setting $name exists in proxy/base/config.c");
}

# ---- every setting "Coming from PgBouncer" maps a PgBouncer setting to exists
{
    my $howto = slurp("$src/doc/howto/coming-from-pgbouncer.md");
    my ($table) = $howto =~ /^## Settings\n(.*?)^## /ms
      or BAIL_OUT('no "## Settings" section in doc/howto/coming-from-pgbouncer.md');
    my $n = 0;
    for my $line (grep { /^\| `/ } split /\n/, $table) {
        my @cells = map { s/^\s+|\s+$//gr } split /(?<!\\)\|/, $line;
        # "the same": pgnear's names are PgBouncer's
        my $names = $cells[2] =~ /^the same\b/ ? $cells[1] : $cells[2];
        for my $word ($names =~ /`([^`]+)`/g) {
            $word =~ s/\s*=.*//;    # `auth = scram`: the setting's name
            next unless $word =~ /^[a-z]+(?:_[a-z]+)+$/ || $word eq 'auth' || $word eq 'workers';
            $n++;
            ok($known{$word}, "coming-from-pgbouncer.md: pgnear's $word is a setting of proxy/base/config.c");
        }
    }
    cmp_ok($n, '>=', 40, "coming-from-pgbouncer.md: $n of pgnear's settings named");
}

# ---- every key of the [database NAME] and [user NAME] sections
my $sections_c = slurp("$src/proxy/base/config_sections.c");
my ($keys_table) = $sections_c =~ /section_keys\[\]\s*=\s*\{(.*?)\n\};/s
  or BAIL_OUT('section_keys[] not found in proxy/base/config_sections.c');
my @section_keys = $keys_table =~ /\{"(\w+)",/g;
cmp_ok(scalar @section_keys, '>=', 4, 'the section keys of proxy/base/config_sections.c were read');
my ($takes) = $md_text =~ /^Such a section takes (.*?)nothing else/ms
  or BAIL_OUT('no "Such a section takes ... nothing else" in doc/pgnear.md');
for my $key (@section_keys) {
    like($takes, qr/`\Q$key\E`/, "section key $key is documented");
}

# ---- every option of the command line
my $main_c = slurp("$src/proxy/main.c");
my @long = $main_c =~ /\{"([a-z-]+)",\s*(?:no|required|optional)_argument/g;
my ($short) = $main_c =~ /getopt_long\(argc,\s*argv,\s*"([^"]*)"/;
cmp_ok(scalar @long, '>=', 4, 'the long options of proxy/main.c were read');
ok(defined $short && length $short, 'the short options of proxy/main.c were read');
for my $opt ((map { "--$_" } @long), (map { "-$_" } grep { /\w/ } split //, $short // '')) {
    like($md_text, qr/`\Q$opt\E`/, "option $opt is documented");
}

# ---- the documents stand on their own
my @docs = ("$src/README.md", glob("$src/doc/*.md"), glob("$src/doc/*/*.md"), glob("$src/conf/*.ini"),
            glob("$src/conf/*.md"), glob("$src/tests/clients/*.md"));
cmp_ok(scalar @docs, '>=', 3, 'user documents found');
for my $path (@docs) {
    my $t = slurp($path);
    (my $rel = $path) =~ s{^\Q$src\E/}{};
    my @refs = grep { m{\.\./shared|DESIGN\.md} } split /\n/, $t;
    ok(!@refs, "$rel refers to nothing outside the repository") or diag(join "\n", @refs);
}
ok(slurp("$src/README.md") =~ m{\(doc/pgnear\.md\)}, 'README.md links to the reference');

done_testing();
