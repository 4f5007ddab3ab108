#!/usr/bin/env bash
# Builds a local equivalent of debian:trixie-slim, for machines that reach
# Debian's package mirror but no container registry: debootstrap a minbase
# rootfs, give it the apt/dpkg settings the official slim images carry, strip
# docs/man/locales, and `docker import` it.
#
#   bash scripts/base-image.sh [TAG]      (default TAG: mesh-init-base:trixie)
#
# Skips the work when TAG already exists (FORCE=1 rebuilds). The mirror is the
# one this host's apt uses (override with MIRROR=URL).
set -euo pipefail

tag=${1:-${BASE_TAG:-mesh-init-base:trixie}}
suite=${SUITE:-trixie}
log() { printf 'base-image: %s\n' "$*" >&2; }

if [[ ${FORCE:-0} != 1 ]] && docker image inspect "$tag" >/dev/null 2>&1; then
  log "$tag already exists: skipping (FORCE=1 rebuilds)"
  exit 0
fi

if [[ $(id -u) != 0 ]]; then
  log "debootstrap needs root; run: sudo bash scripts/base-image.sh"
  exit 1
fi

if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# The main archive (not -security) from this host's apt sources, deb822 or one-line.
host_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -e $f ]] || continue
    awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) if ($i !~ /-security/) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -e $f ]] || continue
    awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/ && $i ~ /\/debian\/?$/) { print $i; exit } }' "$f"
  done
}
mirror=${MIRROR:-$(host_mirror | head -n 1)}
if [[ -z $mirror ]]; then
  log "cannot find a Debian mirror in /etc/apt; set MIRROR=URL"
  exit 1
fi

rootfs=$(mktemp -d /var/tmp/mesh-init-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

log "debootstrap --variant=minbase $suite from $mirror"
debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
  tail -n 30 "$rootfs.log" >&2
  rm -f "$rootfs.log"
  exit 1
}
rm -f "$rootfs.log"

# What the official slim images add (debuerreotype's "minimizing" and docker
# configs): no apt caches or translations in layers, no docs/man/locales.
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
printf 'Apt::AutoRemove::SuggestsImportant "false";\n' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
echo 'force-unsafe-io' >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"

rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
  "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/*
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/{man,info,groff,lintian,linda,locale}/*
# Docker provides these per container; a copy of the build host's would leak into the image.
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/hostname"
: >"$rootfs/etc/machine-id"

log "docker import as $tag"
tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' \
  --message "debootstrap --variant=minbase $suite, slimmed like debian:$suite-slim" \
  - "$tag" >/dev/null
log "$tag: $(docker image inspect --format '{{.Size}}' "$tag" | awk '{ printf "%.1f MB", $1 / 1e6 }')"
