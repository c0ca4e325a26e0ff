# syntax=docker/dockerfile:1
# kube-proxy-ts node agent image: `docker build -t ghcr.io/kube-proxy-ts/kube-proxy-ts:0.1.0 .`

FROM node:20-bookworm-slim AS build
WORKDIR /src
# Dependencies first, so that a source-only change reuses this layer.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
# Debian's iptables ships both iptables-nft and iptables-legacy; the entrypoint picks the one the
# host uses. conntrack flushes stale UDP entries, ipset and iproute2 serve the agent and debugging.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables conntrack nfacct ipset iproute2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --chmod=0755 hack/docker-entrypoint.sh /app/hack/docker-entrypoint.sh
ENTRYPOINT ["/app/hack/docker-entrypoint.sh"]
CMD ["run"]
