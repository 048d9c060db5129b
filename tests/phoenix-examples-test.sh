#!/usr/bin/env bash
# Checks examples/phoenix/ as far as this machine can without Phoenix (hex
# is not reachable, so the modules are not compiled against it): the Elixir
# modules parse and implement the callbacks of the behaviours they declare
# (tests/phoenix_examples.exs, Phoenix v1.7.21's callbacks), and the
# phoenix.js hook parses as an ES module. Installs elixir and nodejs from
# apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v elixir >/dev/null 2>&1 || need+=(elixir)
command -v node >/dev/null 2>&1 || need+=(nodejs)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]} (apt)"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_ apt-get -o DPkg::Lock::Timeout=600 update -qq
  $sudo_ apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
elixir tests/phoenix_examples.exs examples/phoenix
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for js in examples/phoenix/*.js; do
  # .mjs: node parses it as an ES module (it imports "phoenix").
  cp "$js" "$tmp/$(basename "$js" .js).mjs"
  node --check "$tmp/$(basename "$js" .js).mjs"
  echo "ok   $(basename "$js") parses as an ES module"
done
