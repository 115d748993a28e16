#!/bin/sh
# Entrypoint of the adminer:5.3.0 stand-in: says which Adminer this really is (see
# Dockerfile), then runs the command (by default PHP's built-in server).
set -e
version="$(sed -n '/@version/{s/.*@version //p;q}' /var/www/html/adminer.php)"
echo "stand-in for adminer:5.3.0: this is Adminer ${version:-(unknown version)} from Debian, not Adminer 5.3.0" >&2
exec "$@"
