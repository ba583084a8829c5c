package PgNearNearest;

# What the tests of target_session_attrs = nearest share (260-263): a
# primary in us-east and its standby in eu-west as pgnear's two regions,
# a caller in Dublin logging in through pgnear, the first column of an
# answer, where a session's transaction ran, and extended-protocol
# messages as bytes.
#
#   my $p = PgNearTest::Proxy->new(regions => nearest_regions($us, $eu), settings => {...});
#   my $w = dublin_login($p->port, user => 'app', password => 'app-secret');
#   one($w, 'SELECT 1');          # '1', or "SQLSTATE message"
#   where($w);                    # the cluster_name of the server that ran it
#   $w->send_raw(ext_statement('INSERT INTO t VALUES ($1)', 7) . sync_message());

use strict;
use warnings;

use Exporter 'import';
use PgNearTest ();

our @EXPORT = qw(nearest_regions dublin_login one where ext_statement sync_message query_message);

# Dublin's coordinates, as a startup hint.
our $DUBLIN = '-c pgnear.location=53.35,-6.26';

# us-east (Ashburn) and eu-west (Dublin), each with its hosts (a cluster or "host:port").
sub nearest_regions {
    my ($us, $eu) = @_;
    return [{ name => 'us-east', location => '39.04, -77.49', hosts => [$us] },
            { name => 'eu-west', location => '53.35, -6.26', hosts => [$eu] }];
}

# A raw-protocol session from Dublin to port (pgnear's): user, password, database (movr),
# options appended to the location hint; dies when the login fails.
sub dublin_login {
    my ($port, %o) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port, timeout => 30);
    my $r = $w->startup(user => $o{user} // 'app', database => $o{database} // 'movr',
                        password => $o{password} // 'app-secret',
                        params => { options => join(' ', $DUBLIN, $o{options} // ()) });
    die 'login through pgnear failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n"
      unless $r->{ok};
    return $w;
}

# The first column of the first row of a Query's answer, or its error as "SQLSTATE message".
sub one {
    my ($w, $sql) = @_;
    my $q = $w->query($sql);
    return $q->{error} ? "$q->{error}{C} $q->{error}{M}" : $q->{rows}[0][0];
}

# The cluster_name of the server that ran the session's transaction.
sub where { one($_[0], q{SELECT current_setting('cluster_name')}) }

sub _msg { $_[0] . pack('N', 4 + length $_[1]) . $_[1] }

# Parse, Bind (text parameters) and Execute of one statement, unnamed, as bytes (no Sync).
sub ext_statement {
    my ($sql, @params) = @_;
    return _msg('P', "\0$sql\0" . pack('n', 0))
         . _msg('B', "\0\0" . pack('nn', 0, scalar @params)
                     . join('', map { pack('N', length $_) . $_ } @params) . pack('n', 0))
         . _msg('E', "\0" . pack('N', 0));
}
sub sync_message  { _msg('S', '') }
sub query_message { _msg('Q', "$_[0]\0") }

1;
