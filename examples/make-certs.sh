#!/usr/bin/env bash
# Makes the certificates of a cib-replicator geo cluster with openssl: one
# certificate authority (CA) for all sites, and one certificate per site.
#
# Every site uses its certificate both ways: the publisher presents it to
# subscribers (server), the subscriber presents it to publishers (client).
# The publisher authorizes a subscriber by the names in its certificate
# (the `allow` list of each [[ticket]] in publisher.toml), so use the name
# you will write there.
#
# Usage:
#   examples/make-certs.sh [-d DIR] [-n DAYS] NAME[,SAN...] ...
#
#   -d DIR    where to write (default ./certs); created if missing
#   -n DAYS   validity of the site certificates (default 825)
#   NAME      the site's name (a DNS name), e.g. site-a.example; it becomes
#             the subject CN and the first subjectAltName
#   SAN       further names the site is reached by: DNS:host or IP:address
#
# Example (two sites plus an arbitrator, all on this machine):
#   examples/make-certs.sh -d certs \
#     site-a.example,DNS:localhost,IP:127.0.0.1 \
#     site-b.example,DNS:localhost,IP:127.0.0.1 \
#     arbitrator.example
#
# Writes, in DIR:
#   ca.pem, ca.key        the CA (made once; reused on later runs, so sites
#                         can be added). Keep ca.key off the cluster nodes.
#   NAME.pem, NAME.key    each site's certificate and private key (EC P-256,
#                         PKCS#8, mode 0600). Copy them, with ca.pem, to the
#                         nodes of that site only.
#
# Existing site files are never overwritten: remove them first to renew.
# Inspect a certificate with: openssl x509 -in DIR/NAME.pem -noout -text
set -euo pipefail

dir=certs
days=825
ca_days=3650

usage() {
  sed -n '/^# Usage:/,/^#   SAN/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

while getopts "d:n:h" opt; do
  case "$opt" in
    d) dir="$OPTARG" ;;
    n) days="$OPTARG" ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ "$#" -ge 1 ] || usage
case "$days" in
  '' | *[!0-9]*) echo "make-certs: -n wants a number of days, got '$days'" >&2; exit 2 ;;
esac
command -v openssl >/dev/null || { echo "make-certs: openssl not found (apt-get install openssl)" >&2; exit 2; }

# Check every name before making anything.
for spec in "$@"; do
  name="${spec%%,*}"
  case "$name" in
    '' | *[!A-Za-z0-9.-]*)
      echo "make-certs: '$name' is not a DNS name (letters, digits, '.', '-')" >&2
      exit 2
      ;;
  esac
  if [ -e "$dir/$name.pem" ] || [ -e "$dir/$name.key" ]; then
    echo "make-certs: $dir/$name.pem or .key exists; remove both to renew" >&2
    exit 2
  fi
done

umask 077
mkdir -p "$dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ -e "$dir/ca.pem" ] || [ -e "$dir/ca.key" ]; then
  if [ ! -e "$dir/ca.pem" ] || [ ! -e "$dir/ca.key" ]; then
    echo "make-certs: $dir has only one of ca.pem and ca.key" >&2
    exit 2
  fi
  echo "make-certs: using the existing CA $dir/ca.pem"
else
  openssl req -x509 -new -sha256 -days "$ca_days" -nodes \
    -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    -subj "/O=cib-replicator/CN=cib-replicator multi-site CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  chmod 0644 "$dir/ca.pem"
  echo "make-certs: made the CA $dir/ca.pem (key $dir/ca.key)"
fi

for spec in "$@"; do
  name="${spec%%,*}"
  extra=""
  [ "$spec" = "$name" ] || extra=",${spec#*,}"
  cat >"$work/ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:$name$extra
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
  openssl req -new -sha256 -nodes \
    -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$work/$name.key" -out "$work/$name.csr" \
    -subj "/O=cib-replicator/CN=$name" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  openssl x509 -req -sha256 -days "$days" \
    -in "$work/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" \
    -extfile "$work/ext" -out "$work/$name.pem" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  openssl verify -CAfile "$dir/ca.pem" "$work/$name.pem" >/dev/null
  mv "$work/$name.key" "$dir/$name.key"
  mv "$work/$name.pem" "$dir/$name.pem"
  chmod 0600 "$dir/$name.key"
  chmod 0644 "$dir/$name.pem"
  echo "make-certs: made $dir/$name.pem for DNS:$name$extra (valid $days days)"
done
