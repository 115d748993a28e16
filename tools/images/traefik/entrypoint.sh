#!/bin/sh
# The official image's entrypoint: flags (compose's command) and Traefik subcommands
# run traefik; anything else is run as given.
set -e

if [ "${1#-}" != "$1" ]; then
  set -- traefik "$@"
fi

if traefik "$1" --help >/dev/null 2>&1; then
  set -- traefik "$@"
else
  echo "= '$1' is not a Traefik command: assuming shell execution." 1>&2
fi

exec "$@"
