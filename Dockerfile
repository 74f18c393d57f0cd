# One image for both parts of the CCCP proxy; the chart picks the entry point:
#   operator:  node dist/operator/main.js   (the default command)
#   proxy pod: node dist/proxy-pod/main.js
# Build: docker build -t ghcr.io/tcxn/cccp-proxy-operator:0.1.0 .
ARG NODE_IMAGE=node:20-bookworm-slim

# Compile TypeScript with the dev dependencies.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY operator operator
COPY proxy-pod proxy-pod
RUN npm run build

# Production dependencies only, in a layer of their own.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY --from=build /app/dist dist
# "type": "module" makes Node load dist/ as ES modules.
COPY package.json ./
# The image's "node" user by number, so runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080 9000 9001 9090
ENTRYPOINT ["node"]
CMD ["dist/operator/main.js"]
