#!/bin/bash
# Calls gridd's GoGrid API with nothing but curl and openssl: lists the account's servers,
# adds one on a free public IP, waits for its job, and (with --delete) deletes it again.
#
#   GOGRID_URL=http://127.0.0.1:8080 GOGRID_API_KEY=... GOGRID_SECRET=... \
#     scripts/examples/gogrid-curl.sh [--delete] [NAME]
#
# Every request is signed as GoGrid specifies: sig = md5(api_key + shared_secret + unix time),
# sent with api_key, v (the API version) and format=json.
set -euo pipefail

url=${GOGRID_URL:-http://127.0.0.1:8080}
: "${GOGRID_API_KEY:?set GOGRID_API_KEY}" "${GOGRID_SECRET:?set GOGRID_SECRET}"
delete=false
if [[ ${1:-} == --delete ]]; then
  delete=true
  shift
fi
name=${1:-curl-example-$$}
image=${GOGRID_IMAGE:-debian-12-amd64}

# gogrid METHOD [name=value ...]: one signed call; prints the JSON body, fails on HTTP >= 400.
gogrid() {
  local method=$1
  shift
  local sig
  sig=$(printf '%s%s%s' "$GOGRID_API_KEY" "$GOGRID_SECRET" "$(date +%s)" |
    openssl dgst -md5 -r | cut -d' ' -f1)
  local args=(--silent --show-error --fail-with-body --max-time 30 --get
    --data-urlencode "api_key=$GOGRID_API_KEY" --data-urlencode "sig=$sig"
    --data-urlencode "v=1.8" --data-urlencode "format=json")
  local pair
  for pair in "$@"; do args+=(--data-urlencode "$pair"); done
  curl "${args[@]}" "$url/api/$method"
}

# The first value of a string field in compact JSON (enough for these examples).
field() { grep -o "\"$1\":\"[^\"]*\"" | head -n 1 | cut -d'"' -f4; }

total=$(gogrid grid/server/list | grep -o '"total":[0-9]*' | head -n 1 | cut -d: -f2)
echo "servers in the account: ${total:-0}"

ip=$(gogrid grid/ip/list ip.state=Unassigned ip.type=Public | field ip)
if [[ -z $ip ]]; then
  echo "no unassigned public IP left in this account" >&2
  exit 1
fi
echo "adding server $name on $ip from $image"
gogrid grid/server/add "name=$name" "image=$image" server.ram=512MB "ip=$ip" >/dev/null

# The add runs as a job; poll it (bounded) until it has finished.
state=
for _ in $(seq 1 120); do
  state=$(gogrid grid/job/list "object=$name" job.objecttype=VirtualServer |
    grep -o '"currentstate":{[^}]*}' | head -n 1 | field name)
  [[ $state == Succeeded || $state == Failed ]] && break
  sleep 0.5
done
echo "job for $name: ${state:-unknown}"
[[ $state == Succeeded ]] || exit 1

gogrid grid/server/get "name=$name" | grep -o '"state":{[^}]*}' | head -n 1 | field name |
  sed 's/^/server state: /'

if $delete; then
  gogrid grid/server/delete "name=$name" >/dev/null
  echo "deleting $name"
fi
