#!/bin/sh
# As the official nginx image's /docker-entrypoint.sh: when the command is
# nginx, run every executable /docker-entrypoint.d/*.sh in order, then exec the
# command (nginx becomes PID 1).
set -e
if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
  for script in $(find /docker-entrypoint.d/ -follow -type f -name '*.sh' -perm -u+x | sort -n); do
    echo "$0: Launching $script"
    "$script"
  done
  echo "$0: Configuration complete; ready for start up"
fi
exec "$@"
