# syntax=docker/dockerfile:1
# pullguard container image: `pullguard serve` on Node.js 26 LTS, non-root, no shell.
#   docker build -t pullguard:0.1.0 .
# For releases, pin both base images by digest (FROM image:tag@sha256:...).

# Node version pinned in package.json (the `node` dev dependency); the test checks they agree.
ARG NODE_VERSION=26.10.0

# --- build: the full toolchain compiles src/ to dist/ ------------------------------------------
FROM node:${NODE_VERSION}-trixie-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# Scripts stay on here: the pinned `node` dev dependency installs its binary in one.
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- deps: production dependencies only ---------------------------------------------------------
FROM node:${NODE_VERSION}-trixie-slim AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# No production dependency has an install script; refusing them keeps the image reproducible.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# --- runtime: Node.js and the compiled output, nothing else (no shell, no package manager) -------
FROM gcr.io/distroless/nodejs26-debian13:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="pullguard" \
      org.opencontainers.image.description="Kubernetes admission webhook that predicts image pull failures (ImagePullBackOff)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/pullguard/pullguard" \
      org.opencontainers.image.documentation="https://github.com/pullguard/pullguard#readme" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
ENV NODE_ENV=production
WORKDIR /app
# Owned by root, so the process cannot change its own code. package.json marks dist/ as ESM.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The distroless nonroot user, by number so runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/nodejs/bin/node", "--enable-source-maps", "dist/cli/main.js", "serve"]
