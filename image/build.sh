#!/usr/bin/env bash
# Builds the init container image: `npm run image` (or `bash image/build.sh`).
#
#   IMAGE=mesh-init:dev   tag to build (default mesh-init:dev)
#   BASE=...              base image, passed as --build-arg BASE (default in the
#                         Dockerfile: debian:trixie-slim; CI passes the local
#                         equivalent made by scripts/base-image.sh)
#   SKIP_BUNDLE=1         reuse dist/ instead of running `npm run build`
#
# The build context is a temporary directory holding the Dockerfile, rootfs.sh
# and the two bundles (which need no node_modules at run time): the plain one and
# the entry of the start-up snapshot, which the build makes with the image's own
# node (see the Dockerfile). Nothing else of the work tree is sent to the engine. The legacy builder is used because it
# works offline with local base images.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

image=${IMAGE:-mesh-init:dev}

if [[ ${SKIP_BUNDLE:-0} != 1 ]]; then
  npm run --silent build
fi
for bundle in dist/mesh-init.cjs dist/mesh-init-snapshot.cjs; do
  if [[ ! -s $bundle ]]; then
    echo "image/build.sh: $bundle is missing: run npm run build" >&2
    exit 1
  fi
done

build_args=()
if [[ -n ${BASE:-} ]]; then
  build_args+=(--build-arg "BASE=$BASE")
fi

context=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$context" "$log"' EXIT
cp image/Dockerfile image/rootfs.sh dist/mesh-init.cjs dist/mesh-init-snapshot.cjs "$context/"
if ! DOCKER_BUILDKIT=0 docker build --force-rm "${build_args[@]}" -t "$image" "$context" >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "image/build.sh: docker build failed" >&2
  exit 1
fi
size=$(docker image inspect --format '{{.Size}}' "$image")
echo "image/build.sh: built $image ($(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1e6 }'))"
