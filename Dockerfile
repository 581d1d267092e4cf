# syntax=docker/dockerfile:1
# The base image of every stage. Pin it by digest in your own build (README.md, "Install"):
#   --build-arg NODE_IMAGE=node:24.21.0-bookworm-slim@sha256:<digest from your registry>
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

# Build: compile TypeScript to JavaScript with the project's own toolchain.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

# Production dependencies only: no TypeScript, no test tools.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM ${NODE_IMAGE}
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY package.json ./
COPY crds ./crds
USER 65532:65532
EXPOSE 8081
# Memory over peak speed, for a process that mostly waits on the network (docs/performance.md):
# a young generation of at most 1 MB per semi-space (V8's default grows it to tens of MB under a
# burst of syncs and keeps the pages), no TurboFan (Sparkplug and Maglev still compile hot code;
# its code and the compiler's own pages cost about 5 MB) and V8's optimize-for-size heuristics.
# Idle with one publisher 78 MB instead of 86; 500 publishers 106 to 116 MB instead of 130, for
# 2.9 to 3.3 CPU-seconds a minute instead of 2.8; serve's throughput unchanged. WebAssembly, hence
# fetch, keeps working (--lite-mode would not).
ENV NODE_OPTIONS=--max-semi-space-size=1
ENTRYPOINT ["node", "--no-opt", "--optimize-for-size", "dist/src/cli.js"]
CMD ["run"]
