# What Node cannot do, in Perl, whose core (perl-base) every Debian image has,
# the mesh-init image's base included. Node has no setsockopt() for
# IP_TRANSPARENT and no raw sockets; the mesh-init image itself has no Perl.
# An address with a colon means IPv6, as in the kernel suite's probe.py.
#
#   perl socket-tools.pl transparent PORT [ADDRESS]
#       A TPROXY proxy's listener: IP_TRANSPARENT (IPV6_TRANSPARENT for ::) on
#       ADDRESS:PORT, default 0.0.0.0 (needs CAP_NET_ADMIN), so the kernel hands
#       it connections to addresses and ports that are not its own. For each
#       connection it sends one JSON line: the address the client connected to
#       (kept by TPROXY) and the client's, IPv6 ones as [address]:port.
#       On :: it is IPv6-only, so it can share PORT with a listener on 0.0.0.0.
#   perl socket-tools.pl invalid SOURCE HOST PORT
#       Sends one TCP segment with SYN and FIN set, which conntrack calls
#       INVALID, from SOURCE to HOST:PORT (a raw socket: needs CAP_NET_RAW).
use strict;
use warnings;
use Socket qw(AF_INET AF_INET6 SOCK_STREAM SOCK_RAW SOL_SOCKET SO_REUSEADDR IPPROTO_IP
  IPPROTO_IPV6 IPPROTO_TCP IPV6_V6ONLY inet_pton inet_ntop pack_sockaddr_in unpack_sockaddr_in
  pack_sockaddr_in6 unpack_sockaddr_in6);

use constant IP_TRANSPARENT => 19;
use constant IPV6_TRANSPARENT => 75;
use constant IPV6_CHECKSUM => 7;

$| = 1;
my ($command, @args) = @ARGV;
$command //= '';

sub family_of { $_[0] =~ /:/ ? AF_INET6 : AF_INET }

sub sockaddr_of {
  my ($address, $port) = @_;
  my $family = family_of($address);
  my $packed = inet_pton($family, $address) // die "not an address: $address\n";
  return $family == AF_INET6 ? pack_sockaddr_in6($port, $packed) : pack_sockaddr_in($port, $packed);
}

sub endpoint_of {
  my ($family, $sockaddr) = @_;
  if ($family == AF_INET6) {
    my ($port, $address) = unpack_sockaddr_in6($sockaddr);
    return sprintf('[%s]:%d', inet_ntop(AF_INET6, $address), $port);
  }
  my ($port, $address) = unpack_sockaddr_in($sockaddr);
  return sprintf('%s:%d', inet_ntop(AF_INET, $address), $port);
}

if ($command eq 'transparent') {
  my ($port, $address) = @args;
  die "usage: socket-tools.pl transparent PORT [ADDRESS]\n" unless defined $port;
  $address //= '0.0.0.0';
  my $family = family_of($address);
  socket(my $server, $family, SOCK_STREAM, 0) or die "socket: $!\n";
  setsockopt($server, SOL_SOCKET, SO_REUSEADDR, 1) or die "SO_REUSEADDR: $!\n";
  if ($family == AF_INET6) {
    setsockopt($server, IPPROTO_IPV6, IPV6_V6ONLY, 1) or die "IPV6_V6ONLY: $!\n";
    setsockopt($server, IPPROTO_IPV6, IPV6_TRANSPARENT, 1) or die "IPV6_TRANSPARENT: $!\n";
  } else {
    setsockopt($server, IPPROTO_IP, IP_TRANSPARENT, 1) or die "IP_TRANSPARENT: $!\n";
  }
  bind($server, sockaddr_of($address, $port)) or die "bind: $!\n";
  listen($server, 64) or die "listen: $!\n";
  $SIG{TERM} = sub { exit 0 };
  print "transparent listener listening on $address port $port\n";
  while (my $peer = accept(my $conn, $server)) {
    syswrite($conn, sprintf(qq({"server":"transparent","local":"%s","peer":"%s"}\n),
      endpoint_of($family, getsockname($conn)), endpoint_of($family, $peer)));
    close($conn);
  }
  die "accept: $!\n";
} elsif ($command eq 'invalid') {
  my ($source, $host, $port) = @args;
  die "usage: socket-tools.pl invalid SOURCE HOST PORT\n" unless defined $port;
  my $family = family_of($host);
  # Source port 40000, sequence 1, header length 5 words, flags FIN|SYN, window 65535.
  my $segment = pack('nnNNCCnnn', 40000, $port, 1, 0, 5 << 4, 0x03, 65535, 0, 0);
  socket(my $raw, $family, SOCK_RAW, IPPROTO_TCP) or die "socket: $!\n";
  if ($family == AF_INET6) {
    # IPv6 raw sockets can have the kernel sum the pseudo-header and segment into
    # the checksum field at offset 16 (TCP's); IPv4 ones cannot, so it is done by hand.
    setsockopt($raw, IPPROTO_IPV6, IPV6_CHECKSUM, 16) or die "IPV6_CHECKSUM: $!\n";
  } else {
    my $pseudo = inet_pton(AF_INET, $source) . inet_pton(AF_INET, $host)
      . pack('CCn', 0, 6, length $segment);
    my $sum = 0;
    $sum += $_ for unpack('n*', $pseudo . $segment);
    $sum = ($sum & 0xffff) + ($sum >> 16) while $sum >> 16;
    substr($segment, 16, 2) = pack('n', ~$sum & 0xffff);
  }
  bind($raw, sockaddr_of($source, 0)) or die "bind: $!\n";
  send($raw, $segment, 0, sockaddr_of($host, 0)) or die "send: $!\n";
  print qq({"sent":1}\n);
} else {
  die "usage: socket-tools.pl transparent PORT [ADDRESS] | invalid SOURCE HOST PORT\n";
}
