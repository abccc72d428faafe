#!/usr/bin/env bash
# Serving certificate for pullguard on clusters without cert-manager.
#
# Makes (once) a private CA and a serving certificate for pullguard.<namespace>.svc signed by it,
# then writes for manifests/overlays/plain:
#   tls-secret.yaml         Secret pullguard-tls (tls.crt, tls.key, ca.crt)
#   webhook-ca-bundle.yaml  patch that sets clientConfig.caBundle in each of the webhooks
# Idempotent: a run keeps the CA and a serving certificate that is still good (right names, signed
# by the CA, more than 30 days left) and only rewrites the two files. So running it again is also
# how certificates are renewed; see docs/operating.md "Certificates and rotation".
#
# Usage: certs/gen.sh [options]
#   -n, --namespace NS   namespace pullguard runs in (default: pullguard)
#   --service NAME       Service name (default: pullguard)
#   --pki DIR            where the CA and keys are kept (default: certs/out; keep it private)
#   --out DIR            where the manifests are written (default: manifests/overlays/plain)
#   --days N             serving certificate lifetime in days (default: 365)
#   --renew              issue a new serving certificate even if the current one is still good
#   --renew-ca           make a new CA; the old one stays in the caBundle until it expires or
#                        certs/out/ca.old.crt is deleted, so pods still serving the old
#                        certificate stay trusted during the rollout
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
namespace=pullguard
service=pullguard
pki="$here/out"
out="$(cd "$here/.." && pwd)/manifests/overlays/plain"
days=365
renew=false
renew_ca=false
# must match metadata.name and every webhooks[].name in
# manifests/base/validatingwebhookconfiguration.yaml (test/manifests/certs.test.ts compares them):
# the caBundle patch is merged by webhook name, so a name missing here would leave that webhook
# without a caBundle, and a name unknown to the base would add an incomplete webhook that the API
# server rejects.
webhook_config=pullguard
webhook_names=(images.pullguard.io enforce.images.pullguard.io warn.images.pullguard.io audit.images.pullguard.io)
secret_name=pullguard-tls
renew_within_days=30

die() { echo "gen.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--namespace) namespace="${2:?}"; shift 2 ;;
    --service) service="${2:?}"; shift 2 ;;
    --pki) pki="${2:?}"; shift 2 ;;
    --out) out="${2:?}"; shift 2 ;;
    --days) days="${2:?}"; shift 2 ;;
    --renew) renew=true; shift ;;
    --renew-ca) renew_ca=true; renew=true; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ "$days" =~ ^[1-9][0-9]*$ ]] || die "--days wants a positive number"
command -v openssl >/dev/null || die "openssl is required"

dns1="$service.$namespace.svc"
dns2="$service.$namespace.svc.cluster.local"

mkdir -p "$out"
umask 077
mkdir -p "$pki"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Own minimal openssl configs, so the system openssl.cnf (or LibreSSL's) adds nothing surprising.
cat >"$work/ca.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = pullguard-ca
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
cat >"$work/leaf.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $dns1
[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:$dns1, DNS:$dns2
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
still_valid() { openssl x509 -in "$1" -noout -checkend $((renew_within_days * 86400)) >/dev/null 2>&1; }
sans_of() { openssl x509 -in "$1" -noout -text | sed -n '/Subject Alternative Name/{n;s/^ *//;p;}'; }
pubkey_of_cert() { openssl x509 -in "$1" -noout -pubkey; }
pubkey_of_key() { openssl pkey -in "$1" -pubout; }

actions=()

# --- CA -------------------------------------------------------------------------------------
if $renew_ca && [ -f "$pki/ca.crt" ]; then
  mv -f "$pki/ca.crt" "$pki/ca.old.crt"
  rm -f "$pki/ca.key"
  actions+=("kept the previous CA in the caBundle as ca.old.crt")
fi
if [ ! -f "$pki/ca.crt" ] || [ ! -f "$pki/ca.key" ] || ! still_valid "$pki/ca.crt"; then
  [ -f "$pki/ca.crt" ] && ! $renew_ca && actions+=("the CA was missing its key or expiring: replaced it")
  new_key "$pki/ca.key"
  openssl req -x509 -new -config "$work/ca.cnf" -key "$pki/ca.key" -sha256 -days 3650 \
    -out "$pki/ca.crt"
  renew=true
  actions+=("made a new CA (10 years)")
fi

# --- serving certificate --------------------------------------------------------------------
reasons=()
if [ ! -f "$pki/tls.crt" ] || [ ! -f "$pki/tls.key" ]; then reasons+=("none yet")
else
  $renew && reasons+=("asked to renew")
  still_valid "$pki/tls.crt" || reasons+=("expires within $renew_within_days days")
  [ "$(sans_of "$pki/tls.crt")" = "DNS:$dns1, DNS:$dns2" ] || reasons+=("names differ")
  openssl verify -CAfile "$pki/ca.crt" "$pki/tls.crt" >/dev/null 2>&1 || reasons+=("not signed by the CA")
  [ "$(pubkey_of_cert "$pki/tls.crt")" = "$(pubkey_of_key "$pki/tls.key")" ] || reasons+=("key does not match")
fi
if [ ${#reasons[@]} -gt 0 ]; then
  new_key "$work/tls.key"
  openssl req -new -config "$work/leaf.cnf" -key "$work/tls.key" -out "$work/tls.csr"
  openssl x509 -req -in "$work/tls.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -sha256 -days "$days" \
    -extfile "$work/leaf.cnf" -extensions v3_leaf -out "$work/tls.crt" 2>/dev/null
  mv -f "$work/tls.key" "$pki/tls.key"
  mv -f "$work/tls.crt" "$pki/tls.crt"
  why="$(printf '%s, ' "${reasons[@]}")"
  actions+=("issued a serving certificate for $dns1 (${why%, })")
fi

# An old CA stays trusted until it expires or is deleted (CA rotation without a failed call).
bundle="$work/ca-bundle.pem"
cat "$pki/ca.crt" >"$bundle"
if [ -f "$pki/ca.old.crt" ]; then
  if openssl x509 -in "$pki/ca.old.crt" -noout -checkend 0 >/dev/null 2>&1; then
    cat "$pki/ca.old.crt" >>"$bundle"
  else
    rm -f "$pki/ca.old.crt"
    actions+=("dropped the expired previous CA")
  fi
fi

# --- manifests (deterministic: an idle run rewrites the same bytes) ---------------------------
b64() { openssl base64 -A -in "$1"; }
expiry="$(openssl x509 -in "$pki/tls.crt" -noout -enddate | sed 's/^notAfter=//')"
umask 022
cat >"$out/tls-secret.yaml.tmp" <<EOF
# Written by certs/gen.sh: serving certificate for $dns1, valid until $expiry.
# Holds a private key: do not commit.
apiVersion: v1
kind: Secret
metadata:
  name: $secret_name
  namespace: $namespace
  labels:
    app.kubernetes.io/name: pullguard
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$pki/tls.crt")
  tls.key: $(b64 "$pki/tls.key")
  ca.crt: $(b64 "$pki/ca.crt")
EOF
ca_bundle="$(b64 "$bundle")"
{
  cat <<EOF
# Written by certs/gen.sh: the CA(s) the API server trusts when calling pullguard, for every webhook.
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: $webhook_config
webhooks:
EOF
  for name in "${webhook_names[@]}"; do
    printf '  - name: %s\n    clientConfig:\n      caBundle: %s\n' "$name" "$ca_bundle"
  done
} >"$out/webhook-ca-bundle.yaml.tmp"
chmod 600 "$out/tls-secret.yaml.tmp"
mv -f "$out/tls-secret.yaml.tmp" "$out/tls-secret.yaml"
mv -f "$out/webhook-ca-bundle.yaml.tmp" "$out/webhook-ca-bundle.yaml"

if [ ${#actions[@]} -eq 0 ]; then
  echo "certificates are current (serving certificate valid until $expiry); manifests rewritten"
else
  printf '%s\n' "${actions[@]}"
fi
echo "wrote $out/tls-secret.yaml and $out/webhook-ca-bundle.yaml"
echo "next: kubectl apply -k manifests/overlays/plain"
