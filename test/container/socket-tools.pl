# What Node cannot do, in Perl, whose core (perl-base) every Debian image has,
# the mesh-init image's base included. Node has no setsockopt() for
# IP_TRANSPARENT and no raw sockets; the mesh-init image itself has no Perl.
#
#   perl socket-tools.pl transparent PORT
#       A TPROXY proxy's listener: IP_TRANSPARENT on 0.0.0.0:PORT (needs
#       CAP_NET_ADMIN), so the kernel hands it connections to addresses and
#       ports that are not its own. For each connection it sends one JSON line:
#       the address the client connected to (kept by TPROXY) and the client's.
#   perl socket-tools.pl invalid SOURCE HOST PORT
#       Sends one TCP segment with SYN and FIN set, which conntrack calls
#       INVALID, from SOURCE to HOST:PORT (a raw socket: needs CAP_NET_RAW).
use strict;
use warnings;
use Socket qw(AF_INET SOCK_STREAM SOCK_RAW SOL_SOCKET SO_REUSEADDR IPPROTO_IP IPPROTO_TCP
  INADDR_ANY inet_aton inet_ntoa pack_sockaddr_in unpack_sockaddr_in);

use constant IP_TRANSPARENT => 19;

$| = 1;
my ($command, @args) = @ARGV;
$command //= '';

if ($command eq 'transparent') {
  my $port = $args[0] or die "usage: socket-tools.pl transparent PORT\n";
  socket(my $server, AF_INET, SOCK_STREAM, 0) or die "socket: $!\n";
  setsockopt($server, SOL_SOCKET, SO_REUSEADDR, 1) or die "SO_REUSEADDR: $!\n";
  setsockopt($server, IPPROTO_IP, IP_TRANSPARENT, 1) or die "IP_TRANSPARENT: $!\n";
  bind($server, pack_sockaddr_in($port, INADDR_ANY)) or die "bind: $!\n";
  listen($server, 64) or die "listen: $!\n";
  $SIG{TERM} = sub { exit 0 };
  print "transparent listener listening on $port\n";
  while (my $peer = accept(my $conn, $server)) {
    my ($local_port, $local) = unpack_sockaddr_in(getsockname($conn));
    my ($peer_port, $peer_address) = unpack_sockaddr_in($peer);
    syswrite($conn, sprintf(qq({"server":"transparent","local":"%s:%d","peer":"%s:%d"}\n),
      inet_ntoa($local), $local_port, inet_ntoa($peer_address), $peer_port));
    close($conn);
  }
  die "accept: $!\n";
} elsif ($command eq 'invalid') {
  my ($source, $host, $port) = @args;
  die "usage: socket-tools.pl invalid SOURCE HOST PORT\n" unless defined $port;
  # Source port 40000, sequence 1, header length 5 words, flags FIN|SYN, window 65535.
  my $segment = pack('nnNNCCnnn', 40000, $port, 1, 0, 5 << 4, 0x03, 65535, 0, 0);
  my $pseudo = inet_aton($source) . inet_aton($host) . pack('CCn', 0, 6, length $segment);
  my $sum = 0;
  $sum += $_ for unpack('n*', $pseudo . $segment);
  $sum = ($sum & 0xffff) + ($sum >> 16) while $sum >> 16;
  substr($segment, 16, 2) = pack('n', ~$sum & 0xffff);
  socket(my $raw, AF_INET, SOCK_RAW, IPPROTO_TCP) or die "socket: $!\n";
  bind($raw, pack_sockaddr_in(0, inet_aton($source))) or die "bind: $!\n";
  send($raw, $segment, 0, pack_sockaddr_in(0, inet_aton($host))) or die "send: $!\n";
  print qq({"sent":1}\n);
} else {
  die "usage: socket-tools.pl transparent PORT | invalid SOURCE HOST PORT\n";
}
