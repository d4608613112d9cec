#!/bin/sh
# As the official redis image's entrypoint: options or a .conf file as the
# first argument run under redis-server; started as root, it gives the working
# directory (/data) to `redis` and re-runs itself as that user, so the server
# never runs as root.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
um="$(umask)"
if [ "$um" = 0022 ]; then umask 0077; fi
exec "$@"
