#!/usr/bin/env bash
# govulncheck over the module, against a vulnerability database built
# locally from golang.org/x/vulndb (its data/osv files, indexed by the
# vulndb's own cmd/indexdb), because vuln.go.dev cannot be reached from here
# or from CI while the Go module proxy can. The database is as new as the
# vulndb version pinned below: bump VULNDB_VERSION to the newest the proxy
# lists (go list -m -versions golang.org/x/vulndb shows none: use
#   curl -s https://proxy.golang.org/golang.org/x/vulndb/@v/list
# or `go list -m golang.org/x/vulndb@latest`).
#
#   scripts/vulncheck.sh            # ./...
#   scripts/vulncheck.sh -show verbose ./cmd/...
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 # as scripts/test.sh
VULNDB_VERSION="${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}"
GOVULNCHECK_VERSION=v1.9.0
db="$PWD/.tools/vulndb-$VULNDB_VERSION"
if [ ! -f "$db/index/db.json" ]; then
  echo "building the Go vulnerability database from golang.org/x/vulndb@$VULNDB_VERSION into $db (once)..." >&2
  src="$(GOFLAGS= go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  if [ -z "$src" ] || [ ! -d "$src/data/osv" ]; then
    echo "scripts/vulncheck.sh: golang.org/x/vulndb@$VULNDB_VERSION has no data/osv; pick another VULNDB_VERSION" >&2
    exit 1
  fi
  rm -rf "$db.tmp"
  GOFLAGS= go run "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION" -vulns "$src/data/osv" -out "$db.tmp"
  mv "$db.tmp" "$db"
fi
if [ "$#" -eq 0 ]; then
  set -- ./...
fi
echo "govulncheck $GOVULNCHECK_VERSION, database golang.org/x/vulndb@$VULNDB_VERSION ($(go env GOVERSION))" >&2
GOFLAGS= go run "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION" -db "file://$db" "$@"
