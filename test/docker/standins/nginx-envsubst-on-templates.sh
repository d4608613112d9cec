#!/bin/sh
# As the official nginx image's 20-envsubst-on-templates.sh: every
# <template dir>/<path>.template becomes <output dir>/<path>, with envsubst
# replacing only the variables whose names match NGINX_ENVSUBST_FILTER (all
# variables when it is empty), in both $NAME and ${NAME} forms.
set -e
template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
filter="${NGINX_ENVSUBST_FILTER:-}"

[ -d "$template_dir" ] || exit 0
if [ ! -w "$output_dir" ]; then
  echo "$0: ERROR: $template_dir exists, but $output_dir is not writable"
  exit 0
fi
names=$(awk "END { for (name in ENVIRON) if (name ~ /${filter}/) print name }" </dev/null)
defined=$(printf '${%s} ' $names)
find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
  relative="${template#"$template_dir/"}"
  output="$output_dir/${relative%"$suffix"}"
  mkdir -p "$(dirname "$output")"
  echo "$0: Running envsubst on $template to $output"
  envsubst "$defined" <"$template" >"$output"
done
