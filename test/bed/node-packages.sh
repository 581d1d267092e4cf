#!/usr/bin/env bash
# Installs the Debian packages the bed's real node needs (dockerd to build the image,
# containerd to run Pods, mmdebstrap for the base image, the CNI plugins and iptables),
# only those missing. Needs root and Debian's apt.
set -euo pipefail
packages=(docker.io containerd mmdebstrap containernetworking-plugins iptables gcc libc6-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "node-packages: the real node needs root and apt-get to install: ${missing[*]}" >&2
  exit 3
fi
printf 'node-packages: installing %s with apt-get (about 1 min, once)\n' "${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# Debian's packages must not start services here: the bed starts dockerd and containerd itself.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 0755 "$policy"; made_policy=1; fi
trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
