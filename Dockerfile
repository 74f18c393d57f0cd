# One image for both parts of the CCCP proxy; the chart picks the entry point:
#   operator:  node dist/operator/main.js   (the default command)
#   proxy pod: node dist/proxy-pod/main.js
# Build: docker build -t ghcr.io/tcxn/cccp-proxy-operator:0.1.0 .
#   (or buildah build; test/kube/build-images.sh builds it with buildah.)
# NODE_IMAGE is the base of every stage: the current Node.js LTS line by
# default; a mirror or a locally assembled Node image can be passed with
# --build-arg NODE_IMAGE=... (the node tests do, as no registry is reachable).
ARG NODE_IMAGE=node:26-trixie-slim

# Compile TypeScript with the dev dependencies.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY common common
COPY operator operator
COPY proxy-pod proxy-pod
RUN npm run build

# Production dependencies only, in a layer of their own.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
ARG NODE_IMAGE
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="cccp-proxy-operator" \
      org.opencontainers.image.description="Kubernetes operator and proxy that joins SCADA clients to industrial devices behind mobile networks" \
      org.opencontainers.image.source="https://github.com/tcxn/cccp-proxy-operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY --from=build /app/dist dist
# "type": "module" makes Node load dist/ as ES modules. Only compiled
# JavaScript runs here (node dist/...): no TypeScript loader is needed.
COPY package.json ./
# The image's "node" user by number, so runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080 9000 9001 9090
ENTRYPOINT ["node"]
CMD ["dist/operator/main.js"]
