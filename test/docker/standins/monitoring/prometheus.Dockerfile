# Stand-in for the official prom/prometheus image (docker-compose.yml's
# prometheus, monitoring profile), built from Debian's `prometheus` package
# because no registry is reachable here. Tagged as the pin; the Prometheus
# inside is Debian sid's (3.x, as the pin). Reproduced because the project
# relies on it: /bin/prometheus as the entrypoint (merged /usr: the package's
# /usr/bin/prometheus), /etc/prometheus and /prometheus (the
# TSDB, owned by `nobody`, as the image's VOLUME), running as `nobody`, and
# wget for the healthcheck (the image's busybox has it).
ARG BASE
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends prometheus wget \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && mkdir -p /etc/prometheus /prometheus \
 && chown nobody:nogroup /prometheus
USER nobody
VOLUME /prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
