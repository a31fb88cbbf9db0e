# shellcheck shell=bash
# Sourced by .ci/world/images.sh and .ci/world/e2e-images.sh (each hashes this file into its image tags).
# skeleton DIR: the files a distroless-style image has besides its binaries: passwd and group with root,
# nobody and nonroot, nsswitch.conf, CA certificates, a sticky /tmp, /usr/local/bin, /var/run.
skeleton() {
  mkdir -p "$1/etc/ssl/certs" "$1/tmp" "$1/usr/local/bin" "$1/var/run"
  chmod 1777 "$1/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$1/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$1/etc/group"
  printf 'hosts: files dns\n' >"$1/etc/nsswitch.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/"
}
