# Stand-in for the official oliver006/redis_exporter image
# (docker-compose.yml's redis-exporter), from Debian's
# `prometheus-redis-exporter`. Reproduced because the project relies on it:
# it runs as uid and gid 59000, the group redis/docker-start.sh gives the
# password map to (EXPORTER_GID).
ARG BASE
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends prometheus-redis-exporter \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
USER 59000:59000
EXPOSE 9121
ENTRYPOINT ["/usr/bin/prometheus-redis-exporter"]
