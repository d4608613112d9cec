# Stand-in for the official redis image (docker-compose.yml's redis), built
# from Debian's packages because no registry is reachable here. Tagged as the
# pin; the Redis inside is Debian sid's. Reproduced because the project relies
# on it: redis-server and redis-cli on PATH, /data as the working directory
# (where the AOF lands), and the entrypoint that hands /data to the `redis`
# user (uid 999) and drops to it before starting redis-server.
ARG BASE
FROM ${BASE}
RUN groupadd --system --gid 999 redis \
 && useradd --system --uid 999 --gid redis --home-dir /data --no-create-home --shell /usr/sbin/nologin redis \
 && apt-get update -q \
 && apt-get install -y -q --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && mkdir /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server"]
