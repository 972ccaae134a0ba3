#!/bin/bash
# Calls a gridd method with a replay-proof HMAC-SHA256 signature (docs/api.md, "gridd
# extensions: HMAC signing"), using only bash, openssl and curl.
#
#   GRIDD_URL=http://127.0.0.1:8080 GRIDD_API_KEY=… GRIDD_SECRET=… \
#     hmac-request.sh grid/server/list v=1.9 format=json
#
# Each call makes a fresh nonce; GRIDD_NONCE and GRIDD_TIMESTAMP fix them (to show that gridd
# refuses the same request twice); GRIDD_PRINT_URL=1 prints the signed URL instead of calling
# it. Prints the answer's body; exits 22 on an HTTP error.
set -euo pipefail

: "${GRIDD_URL:?set GRIDD_URL, e.g. http://127.0.0.1:8080}"
: "${GRIDD_API_KEY:?set GRIDD_API_KEY}"
: "${GRIDD_SECRET:?set GRIDD_SECRET}"
(($# >= 1)) || { echo "usage: $0 METHOD [NAME=VALUE...]" >&2; exit 2; }

method_path="/api/${1#/api/}"
method_path="/${method_path#/}"
shift

# RFC 3986 percent-encoding: letters, digits and -._~ stay, every other byte becomes %XX.
encode() {
  local LC_ALL=C text=$1 out='' c i
  for ((i = 0; i < ${#text}; i++)); do
    c=${text:i:1}
    case $c in
      [a-zA-Z0-9.~_-]) out+=$c ;;
      *) printf -v c '%%%02X' "'$c"; out+=$c ;;
    esac
  done
  printf '%s' "$out"
}

timestamp=${GRIDD_TIMESTAMP:-$(date +%s)}
nonce=${GRIDD_NONCE:-$(openssl rand -hex 16)}
pairs=("api_key=$GRIDD_API_KEY" "sig_method=HMAC-SHA256" "timestamp=$timestamp" "nonce=$nonce" "$@")

encoded=()
for pair in "${pairs[@]}"; do
  encoded+=("$(encode "${pair%%=*}")=$(encode "${pair#*=}")")
done
# Sorted by name, then value, byte by byte.
query=$(printf '%s\n' "${encoded[@]}" | LC_ALL=C sort -t= -k1,1 -k2 | paste -sd'&' -)

canonical=$(printf 'GET\n%s\n%s\n%s\n%s' "$method_path" "$query" "$timestamp" "$nonce")
sig=$(printf '%s' "$canonical" | openssl dgst -sha256 -hmac "$GRIDD_SECRET" -r | cut -d' ' -f1)

if [[ ${GRIDD_PRINT_URL:-} == 1 ]]; then
  printf '%s\n' "$method_path?$query&sig=$sig"
  exit 0
fi
curl -sS --fail-with-body ${GRIDD_CURL_OPTIONS:-} "$GRIDD_URL$method_path?$query&sig=$sig"
echo
