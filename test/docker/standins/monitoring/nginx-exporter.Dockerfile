# Stand-in for the official nginx/nginx-prometheus-exporter image
# (docker-compose.yml's nginx-exporter), from Debian's
# `prometheus-nginx-exporter`. Its flags: Go's flag package (0.x) and kingpin
# (1.x) both take the compose file's `--name=value` form.
ARG BASE
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends prometheus-nginx-exporter \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
USER nobody
EXPOSE 9113
ENTRYPOINT ["/usr/bin/prometheus-nginx-exporter"]
