# Stand-in for the official node image (web/Dockerfile's NODE_IMAGE), built from
# Debian's packages because no registry is reachable here. Tagged as the pin;
# the Node.js inside is Debian sid's (see README "Testing the Docker path
# without a registry"). What web/Dockerfile relies on is reproduced: node and
# npm on PATH, the `node` user (uid 1000), and the image's entrypoint, which
# execs the command so node is PID 1.
ARG BASE
FROM ${BASE}
RUN groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \
 && apt-get update -q \
 && apt-get install -y -q --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# npm as the official image ships it: the registry's own tarball (bundling its
# dependencies) under /usr/local/lib/node_modules, not Debian's npm, which
# brings ~400 packages and doubles the build time. npm.tgz is `npm pack npm@X`.
COPY npm.tgz /tmp/npm.tgz
RUN mkdir -p /usr/local/lib/node_modules/npm \
 && tar -xzf /tmp/npm.tgz -C /usr/local/lib/node_modules/npm --strip-components=1 \
 && rm /tmp/npm.tgz \
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
COPY node-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# This machine reaches the npm registry through a TLS proxy whose CA only the
# machine's bundle holds. Debian's Node.js trusts OpenSSL's default store,
# /usr/lib/ssl/cert.pem, which minbase lacks: it points at the bundle. The
# stand-in needs this; web/Dockerfile never does (the official image trusts
# the public CAs it was built with).
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN mkdir -p /usr/lib/ssl && ln -sf /etc/ssl/certs/ca-certificates.crt /usr/lib/ssl/cert.pem
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["node"]
