#!/usr/bin/env bash
# A local podman image with Debian's in.tftpd, for the tftp role's container method (no registry
# is reachable here): tftpd-hpa and the libraries in.tftpd links (apt-get download, dpkg-deb -x)
# plus passwd/group entries for the tftp user make the root filesystem; `podman import` makes the
# image. Rebuilt only when its inputs change (a label holds their hash).
#
# usage: build-tftpd-image.sh <image> <work dir>
set -euo pipefail

image="$1"
workdir="$2"
label="netboot.test.inputs"
packages=(tftpd-hpa libc6 libwrap0 libnsl2 libtirpc3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libcom-err2
  libkrb5support0 libkeyutils1)
inputs="$( { sha256sum "${BASH_SOURCE[0]}"; printf '%s\n' "${packages[@]}"; } | sha256sum | cut -d' ' -f1)"

if [ "$(podman image inspect --format "{{ index .Labels \"$label\" }}" "$image" 2>/dev/null || true)" = "$inputs" ]; then
  echo "unchanged: $image"
  exit 0
fi

mkdir -p "$workdir/debs"
(cd "$workdir/debs" && apt-get download -q -o APT::Sandbox::User=root "${packages[@]}" >/dev/null)
rootfs="$workdir/rootfs"
rm -rf "$rootfs" && mkdir -p "$rootfs/etc"
# the packages' file trees, one tar stream after another, unpacked in one go
for deb in "$workdir"/debs/*.deb; do dpkg-deb --fsys-tarfile "$deb"; done | tar -x --ignore-zeros -C "$rootfs"
printf 'root:x:0:0:root:/root:/bin/false\ntftp:x:101:101:tftp daemon:/srv/tftp:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\ntftp:x:101:\n' > "$rootfs/etc/group"
tar -C "$rootfs" -c . | podman import --quiet --change "LABEL $label=$inputs" - "$image" >/dev/null
rm -rf "$rootfs"
echo "built: $image"
podman run --rm "$image" /usr/sbin/in.tftpd -V
