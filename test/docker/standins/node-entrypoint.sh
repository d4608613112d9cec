#!/bin/sh
# As the official node image's entrypoint: an option or a script name as the
# first argument runs under node; anything else is exec'd as it is, so the
# command becomes PID 1 and receives the stop signal itself.
set -e
if [ "${1#-}" != "$1" ] || [ -z "$(command -v "$1")" ] || { [ -f "$1" ] && ! [ -x "$1" ]; }; then
  set -- node "$@"
fi
exec "$@"
