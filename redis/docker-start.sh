#!/bin/sh
# The redis service's start in docker-compose.yml: least-privilege Redis users
# (users.acl.template) with passwords that never reach the web or admin
# containers' environment. Runs as root, before the image's entrypoint drops
# to the `redis` user. Each start:
#
#   1. takes each password from the environment (REDIS_PASSWORD,
#      REDIS_WEB_PASSWORD, REDIS_ADMIN_PASSWORD: compose interpolates them from
#      an uncommitted .env) or, when unset, from the file an earlier start
#      wrote, or else generates one; and writes it to the password volumes:
#        /run/secrets/redis-web/password        web's, readable by uid 1000 (node)
#        /run/secrets/redis-admin/password      admin's, readable by uid 1000 (node)
#        /run/secrets/redis-admin/operator-password   `default`'s, root only
#        /run/secrets/redis-exporter/password-map.json   the Redis exporter's
#          (monitoring profile), readable by its image's user (59000)
#   2. renders users.acl.template (the same file the local formation renders,
#      formation/redis-acl.ts) into a tmpfs only the redis user can read;
#   3. execs the image's entrypoint with redis-server and that ACL file.
#
# Under Swarm (docker-compose.swarm.yml) the passwords are Swarm secrets:
# REDIS_PASSWORD_FILE, REDIS_WEB_PASSWORD_FILE and REDIS_ADMIN_PASSWORD_FILE
# name the files. Then step 1 only reads them: web and admin mount their own
# secret, so nothing is generated and nothing is written to a volume. The
# exporter's secret is optional there (REDIS_EXPORTER_PASSWORD_MAP_FILE, from
# docker-compose.swarm.monitoring.yml): without it, its user gets a random
# password nobody knows.
#
# POSIX sh and coreutils only: the official image has no more.
set -eu

TEMPLATE=/usr/local/etc/headcount/users.acl.template
ACL_DIR=/run/redis-acl
WEB_DIR=/run/secrets/redis-web
ADMIN_DIR=/run/secrets/redis-admin
EXPORTER_DIR=/run/secrets/redis-exporter
# The node image's `node` user, which runs the web replicas and the admin task.
APP_GID=1000
# The oliver006/redis_exporter image's user and group (its Dockerfile's USER).
EXPORTER_GID=59000
# The address the exporter scrapes and its user (docker-compose.yml:
# --redis.addr, --redis.user). Its --redis.password-file is not a bare
# password but a JSON map from the address to the password, looked up by the
# address alone (redis_exporter 1.45) or with the user in it (1.86 and later,
# redis://headcount-exporter@redis:6379): the map has both keys.
EXPORTER_ADDR=redis://redis:6379
EXPORTER_USER=headcount-exporter

fail() {
  echo "redis start: $*" >&2
  exit 1
}

# The same rule as web/config.ts. A glob character here would widen the users'
# key patterns (~${COUNTER_KEY}) to keys they must not touch.
COUNTER_KEY="${COUNTER_KEY:-headcount:visits}"
case "$COUNTER_KEY" in
  '' | *[!A-Za-z0-9:_.{}-]*) fail 'COUNTER_KEY must be 1-100 characters of A-Z a-z 0-9 : _ . { } -' ;;
esac

# 32 letters and digits from the kernel's CSPRNG (about 190 bits): safe in a
# URL, an ACL rule and a sed replacement alike.
generate() {
  LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32
}

# Swarm: every password from its secret file, or none (a half-set would mix modes).
from_secrets=
if [ -n "${REDIS_PASSWORD_FILE:-}${REDIS_WEB_PASSWORD_FILE:-}${REDIS_ADMIN_PASSWORD_FILE:-}" ]; then
  from_secrets=1
  for name in REDIS_PASSWORD REDIS_WEB_PASSWORD REDIS_ADMIN_PASSWORD; do
    eval "secret=\${${name}_FILE:-}"
    [ -n "$secret" ] && [ -s "$secret" ] || fail "${name}_FILE must name a non-empty file (set all three or none)"
    eval "$name=\$(cat \"\$secret\")"
  done
  if [ -n "${REDIS_EXPORTER_PASSWORD_MAP_FILE:-}" ]; then
    REDIS_EXPORTER_PASSWORD=$(sed -n 's|^{"'"$EXPORTER_ADDR"'": *"\([^"]*\)".*}$|\1|p' "$REDIS_EXPORTER_PASSWORD_MAP_FILE")
    [ -n "$REDIS_EXPORTER_PASSWORD" ] || fail "REDIS_EXPORTER_PASSWORD_MAP_FILE must start with {\"$EXPORTER_ADDR\":\"<password>\" (the value is not shown)"
  else
    REDIS_EXPORTER_PASSWORD=$(generate)
  fi
fi

# ensure <file> <mode> <group> <variable name>: sets $password.
ensure() {
  file=$1 mode=$2 group=$3 name=$4
  eval "password=\${$name:-}"
  if [ -n "$from_secrets" ]; then
    case "$password" in
      *[!A-Za-z0-9._~+/=-]*) fail "the secret in ${name}_FILE may only hold letters, digits and . _ ~ + / = - (the value is not shown)" ;;
    esac
    return 0
  elif [ -n "$password" ]; then
    # Whitespace would end the ACL rule early; quotes and backslashes are
    # parsed by Redis's ACL file reader; & | \ would break the rendering below.
    case "$password" in
      *[!A-Za-z0-9._~+/=-]*) fail "$name may only hold letters, digits and . _ ~ + / = - (the value is not shown)" ;;
    esac
  elif [ -s "$file" ]; then
    password=$(cat "$file")
    return 0
  else
    password=$(generate)
    [ ${#password} -eq 32 ] || fail "could not generate $name from /dev/urandom"
  fi
  # Written beside the old file and renamed over it: a replica starting now
  # reads the old password or the new one, never half of one.
  printf '%s' "$password" >"$file.new"
  chown "0:$group" "$file.new"
  chmod "$mode" "$file.new"
  mv -f "$file.new" "$file"
}

[ -r "$TEMPLATE" ] || fail "$TEMPLATE is missing (docker-compose.yml mounts redis/users.acl.template there)"
for dir in "$WEB_DIR" "$ADMIN_DIR"; do
  [ -z "$from_secrets" ] || break
  [ -d "$dir" ] || fail "$dir is missing (docker-compose.yml mounts a volume there)"
  # Only root and the app's group may look inside.
  chown "0:$APP_GID" "$dir"
  chmod 0750 "$dir"
done
if [ -z "$from_secrets" ]; then
  [ -d "$EXPORTER_DIR" ] || fail "$EXPORTER_DIR is missing (docker-compose.yml mounts a volume there)"
  # Only root and the exporter's group may look inside.
  chown "0:$EXPORTER_GID" "$EXPORTER_DIR"
  chmod 0750 "$EXPORTER_DIR"
fi

ensure "$WEB_DIR/password" 0440 "$APP_GID" REDIS_WEB_PASSWORD
web_password=$password
ensure "$ADMIN_DIR/password" 0440 "$APP_GID" REDIS_ADMIN_PASSWORD
admin_password=$password
# The operator's password is for people (`docker compose exec redis ...`, as
# root), never for the app: the admin task's user cannot read it.
ensure "$ADMIN_DIR/operator-password" 0400 0 REDIS_PASSWORD
operator_password=$password
# The exporter's password, kept for root beside the map it reads, so a restart
# keeps it; the map is written anew at every start.
ensure "$EXPORTER_DIR/password" 0400 0 REDIS_EXPORTER_PASSWORD
exporter_password=$password
if [ -z "$from_secrets" ]; then
  printf '{"%s":"%s","%s":"%s"}' "$EXPORTER_ADDR" "$exporter_password" \
    "redis://$EXPORTER_USER@${EXPORTER_ADDR#redis://}" "$exporter_password" >"$EXPORTER_DIR/password-map.json.new"
  chown "0:$EXPORTER_GID" "$EXPORTER_DIR/password-map.json.new"
  chmod 0440 "$EXPORTER_DIR/password-map.json.new"
  mv -f "$EXPORTER_DIR/password-map.json.new" "$EXPORTER_DIR/password-map.json"
fi

# Redis's ACL file has no comments: drop the template's comment lines.
mkdir -p "$ACL_DIR"
chown redis:redis "$ACL_DIR"
chmod 0700 "$ACL_DIR"
sed -e '/^#/d' \
  -e 's|${COUNTER_KEY}|'"$COUNTER_KEY"'|g' \
  -e 's|${REDIS_PASSWORD}|'"$operator_password"'|g' \
  -e 's|${REDIS_WEB_PASSWORD}|'"$web_password"'|g' \
  -e 's|${REDIS_ADMIN_PASSWORD}|'"$admin_password"'|g' \
  -e 's|${REDIS_EXPORTER_PASSWORD}|'"$exporter_password"'|g' \
  "$TEMPLATE" >"$ACL_DIR/users.acl"
if grep -q '\${' "$ACL_DIR/users.acl"; then fail "$TEMPLATE names a variable this script does not set"; fi
chown redis:redis "$ACL_DIR/users.acl"
chmod 0400 "$ACL_DIR/users.acl"

# The image's own entrypoint, so it still fixes /data's owner and runs
# redis-server as the `redis` user, never as root.
exec docker-entrypoint.sh redis-server /usr/local/etc/redis/redis.conf --aclfile "$ACL_DIR/users.acl"
