# syntax=docker/dockerfile:1
# pullguard container image: the `pullguard` command on Node.js 26 LTS, non-root, no shell.
# The entrypoint is the command and `serve` its default argument, so
#   docker run --rm -i IMAGE check -f - < manifests.yaml
# checks manifests, and without arguments the container runs the webhook.
#
#   docker build -t pullguard:0.1.0 .
#   # both platforms at once (the bundle is plain JavaScript, built once on the build machine):
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/pullguard/pullguard:0.1.0 --push .
# For releases, pin both base images by digest (FROM image:tag@sha256:...).

# Node version pinned in package.json (the `node` dev dependency); the test checks they agree.
ARG NODE_VERSION=26.10.0

# --- build: the toolchain bundles src/ into dist/ (dependencies included) ------------------------
# On the build machine's own platform: its output is the same JavaScript for every target.
FROM --platform=$BUILDPLATFORM node:${NODE_VERSION}-trixie-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# a dev dependency of the tests, installed from this folder (npm ci needs its package.json)
COPY test/fixtures/node-old/package.json ./test/fixtures/node-old/
# Scripts stay on here: the pinned `node` dev dependency installs its binary in one.
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build

# --- runtime: Node.js, the bundle and the command, nothing else (no shell, no package manager) ---
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
# glibc's malloc: two arenas, not one per thread, and large blocks (a list page's buffers) mapped and
# returned, not left in a fragmented heap. A 20,000-pod cluster's list left serve 100 MiB smaller
# after it and 40 MiB lower at its peak (npm run bench -- cluster-scale; docs/operating.md).
ENV MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=65536 MALLOC_TRIM_THRESHOLD_=131072
WORKDIR /app
# Owned by root, so the process cannot change its own code. package.json marks the files as ESM;
# bin/pullguard.js is the file npm's `pullguard` command runs too.
COPY package.json ./
COPY bin ./bin
COPY --from=build /app/dist ./dist
# The distroless nonroot user, by number so runAsNonRoot can verify it.
USER 65532:65532
# the webhook (HTTPS) and the metrics (plain HTTP) ports
EXPOSE 8443 9090
# V8 sizes its young generation from the memory it sees: 32 MiB per semi-space on the 24 GB bench
# machine, where the webhook under steady load grew to ~185 MiB RSS; at 16 MiB it stays at 137-158
# MiB, for 1-2 us more CPU per review (bench warm-reviews). The benchmarks run every server with
# these flags (bench/webhook.ts reads them from here).
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=16", "bin/pullguard.js"]
CMD ["serve"]
