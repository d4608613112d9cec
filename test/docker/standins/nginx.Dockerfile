# Stand-in for the official nginx image (docker-compose.yml's lb), built from
# Debian's packages because no registry is reachable here. Tagged as the pin;
# the nginx inside is Debian sid's (1.27.3 or later, so `server ... resolve`
# works). Reproduced because the project relies on it: the entrypoint that runs
# /docker-entrypoint.d/*.sh before nginx, among them the envsubst step that
# renders /etc/nginx/templates/*.template (NGINX_ENVSUBST_OUTPUT_DIR,
# NGINX_ENVSUBST_FILTER); curl and envsubst on PATH; the `nginx` user (uid 101)
# the workers drop to; /var/cache/nginx; SIGQUIT as the stop signal.
ARG BASE
FROM ${BASE}
RUN groupadd --system --gid 101 nginx \
 && useradd --system --uid 101 --gid nginx --home-dir /nonexistent --no-create-home --shell /bin/false nginx \
 && apt-get update -q \
 && apt-get install -y -q --no-install-recommends nginx gettext-base curl \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && rm -f /etc/nginx/sites-enabled/default \
 && mkdir -p /var/cache/nginx /docker-entrypoint.d \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log
COPY nginx-entrypoint.sh /docker-entrypoint.sh
COPY nginx-envsubst-on-templates.sh /docker-entrypoint.d/20-envsubst-on-templates.sh
ENTRYPOINT ["/docker-entrypoint.sh"]
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
