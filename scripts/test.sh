#!/usr/bin/env bash
# The test command named in the README. It installs the test peers that do not
# come from the Go module proxy (Azurite, from npm) into .tools/, then runs
# every Go test. Extra arguments go to `go test` (e.g. -run TestStorage -v).
set -euo pipefail
cd "$(dirname "$0")/.."

# The Go toolchain of tests and releases: go1.27.3, which the go command
# fetches from the module proxy on first use (~76 MB, seconds). go1.26.8,
# which go.mod still accepts, has standard-library vulnerabilities that
# scripts/vulncheck.sh reports (net/http, crypto/tls, crypto/x509, ...).
export GOTOOLCHAIN=go1.27.3

AZURITE_VERSION=3.37.0
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS"

if [ ! -f "$TOOLS/azurite/node_modules/azurite/dist/src/blob/main.js" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "scripts/test.sh: npm is needed to install Azurite (the Azure Blob test peer): apt-get install -y nodejs npm" >&2
    exit 1
  fi
  echo "installing azurite@$AZURITE_VERSION into .tools/azurite (once)..." >&2
  mkdir -p "$TOOLS/azurite"
  npm install --prefix "$TOOLS/azurite" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >&2
fi
export TRACECTL_AZURITE="$TOOLS/azurite/node_modules/azurite/dist/src/blob/main.js"

# goreleaser validates .goreleaser.yaml (TestGoreleaserCheck). v2.15.4 is the
# newest release that builds with Go 1.26 from the module proxy.
GORELEASER_VERSION=v2.15.4
if ! command -v goreleaser >/dev/null 2>&1 && [ ! -x "$TOOLS/bin/goreleaser" ]; then
  echo "installing goreleaser $GORELEASER_VERSION into .tools/bin (once; a few minutes)..." >&2
  GOBIN="$TOOLS/bin" GOFLAGS= go install "github.com/goreleaser/goreleaser/v2@$GORELEASER_VERSION" >&2
fi
export PATH="$TOOLS/bin:$PATH"

# Cloud SDKs must never look for credentials on the network during tests.
export AWS_EC2_METADATA_DISABLED=true
export GOFLAGS="${GOFLAGS:--mod=readonly}"

# go.mod and go.sum say exactly what the code needs (no edit is pending).
if ! go mod tidy -diff >/dev/null; then
  echo "scripts/test.sh: go.mod/go.sum are not tidy; run: GOTOOLCHAIN=$GOTOOLCHAIN go mod tidy" >&2
  exit 1
fi
go vet ./...
go test -count=1 -timeout 30m "$@" ./...

# The packages where concurrency is the product (the head and its tag
# index, the WAL, the query API, trace lookup) again under the race
# detector (RACE=0 skips). Only on a whole run, as the fuzzing below.
if [ "$#" -eq 0 ] && [ "${RACE:-1}" != 0 ]; then
  go test -race -count=1 -timeout 30m ./internal/server/ ./internal/headtags/ ./internal/wal/ ./internal/query/ ./internal/blocks/
fi

# Every fuzz target then fuzzes briefly beyond its seed corpus (FUZZTIME each,
# default 3s; FUZZTIME=0 skips). Only on a whole run: with extra arguments
# (e.g. -run X) the caller asked for something narrower. A failure leaves the
# input under testdata/fuzz/ and fails the run; commit it as a seed.
if [ "$#" -eq 0 ] && [ "${FUZZTIME:-3s}" != 0 ]; then
  FUZZTIME="${FUZZTIME:-3s}" scripts/fuzz.sh
fi

# Known vulnerabilities in what the code calls, against the Go vulnerability
# database (VULNCHECK=0 skips). Only on a whole run, as the fuzzing.
if [ "$#" -eq 0 ] && [ "${VULNCHECK:-1}" != 0 ]; then
  scripts/vulncheck.sh
fi
