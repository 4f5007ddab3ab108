#!/usr/bin/env bash
# Runs inside image/Dockerfile's first stage, after apt has installed the
# packages there: copies into /rootfs only what the init container runs, so the
# final stage can start FROM scratch. That is the runtime closure (Depends and
# Pre-Depends, recursively) of nodejs, iptables, nftables (`nft`, for
# --native-nftables), iproute2 (`ip`, which puts ::6 on lo in IPv6 pods) and
# dash, without docs, man pages, locales, iconv modules or corepack. No apt,
# dpkg, perl or coreutils.
#
# The packages' dpkg status goes to /var/lib/dpkg/status.d/ (as distroless
# images do) and /etc/os-release is kept, so image scanners still see what the
# image holds.
set -euo pipefail

out=/rootfs
roots=(nodejs iptables nftables iproute2 dash)
# Not needed at run time: corepack (the npm/yarn/pnpm shim), debconf (Perl, and no perl here),
# and the libraries only iproute2's other programs link (Berkeley DB for arpd; Sun
# RPC and Kerberos for ss; libcap2-bin's tools): of iproute2, mesh-init runs `ip`
# alone. Leaving them out (and those programs, and glibc's unused libmvec) makes room
# for nftables and the start-up snapshot (~6 MB) under the image's 130 MB budget.
skip_packages='^(node-corepack|debconf|libdb5\.3t64|libtirpc3t64|libtirpc-common|libgssapi-krb5-2|libkrb5-3|libk5crypto3|libkrb5support0|libcom-err2|libkeyutils1|libcap2-bin)$'
skip_files='^/usr/share/(man|info|locale|lintian|bug|doc-base)/|^/usr/share/doc/.*/[^/]*$|^/usr/lib/x86_64-linux-gnu/gconv/|^/usr/share/nodejs/@types/'
skip_files+='|^/(usr/)?s?bin/(arpd|bridge|ctstat|dcb|devlink|genl|ifstat|lnstat|nstat|rdma|routel|rtacct|rtmon|rtstat|ss|tc|tipc|vdpa)$'
skip_files+='|^/usr/lib/x86_64-linux-gnu/(tc/|libmvec\.so)'

mapfile -t packages < <(
  apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "${roots[@]}" |
    grep '^[a-z0-9]' | grep -Ev "$skip_packages" | sort -u
)
echo "rootfs.sh: packages: ${packages[*]}"

mkdir -p "$out"
cd "$out"
# Merged /usr, as in the base.
for dir in bin lib lib64 sbin; do
  ln -s "usr/$dir" "$dir"
done
mkdir -p usr/bin usr/lib usr/lib64 usr/sbin etc/alternatives run tmp var/tmp var/lib/dpkg/status.d root
chmod 1777 tmp var/tmp

for pkg in "${packages[@]}"; do
  dpkg-query -s "$pkg" >"var/lib/dpkg/status.d/$pkg"
  dpkg -L "$pkg"
done |
  sort -u |
  while read -r path; do
    if [[ -L $path || -f $path ]]; then
      if [[ ! $path =~ $skip_files || $path == /usr/share/doc/*/copyright ]]; then
        printf '%s\n' "$path"
      fi
    fi
  done >/tmp/rootfs-files
tar -cf - --no-recursion -T /tmp/rootfs-files 2>/dev/null | tar -xf - --keep-directory-symlink

# What maintainer scripts made rather than shipped: the alternatives for the
# plain iptables names (nft, Debian's default), the loader cache, the accounts.
for name in /usr/sbin/{ip,ip6,arp,eb}tables{,-save,-restore}; do
  if [[ -L $name ]]; then
    cp -a "$name" "$out$name"
    cp -a "/etc/alternatives/${name##*/}" etc/alternatives/
  fi
done
cp -a /etc/passwd /etc/group /etc/ld.so.cache /etc/ld.so.conf /etc/ld.so.conf.d /etc/os-release \
  /etc/debian_version etc/
if [[ -e /etc/nsswitch.conf ]]; then
  cp -a /etc/nsswitch.conf etc/
fi
cp -a --parents /usr/lib/os-release "$out"
# From util-linux only nsenter (--network-namespace runs every program through it);
# its libraries (libselinux, libpcre2) come with iproute2 already.
cp -a /usr/bin/nsenter usr/bin/

echo "rootfs.sh: $(wc -l </tmp/rootfs-files) files, $(du -sh "$out" | cut -f1)"
