// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are Dockerfile text, whose ${NAME} is an ARG.
/**
 * How the bed reads the Dockerfile's base image to make it locally: the ARG before the first
 * FROM resolved to its default, build stages left out, and a base it cannot make refused.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  dockerfileBaseImages,
  dockerfileBases,
  dockerfileGlobalArgs,
  expandDockerfileArgs,
  localBaseProblem,
  lockedNodeVersion,
} from '../bed/container-image.ts';

const ROOT = join(import.meta.dirname, '..', '..');

describe("the Dockerfile's base image, as the bed reads it", () => {
  it('resolves ARG NODE_IMAGE to its default in every stage, and names it once', () => {
    const text = [
      '# syntax=docker/dockerfile:1',
      'ARG NODE_IMAGE=node:24.21.0-bookworm-slim',
      'FROM ${NODE_IMAGE} AS build',
      'RUN true',
      'FROM $NODE_IMAGE AS deps',
      'FROM build AS again',
      'FROM ${NODE_IMAGE}',
    ].join('\n');
    assert.deepEqual(dockerfileBaseImages(text), ['node:24.21.0-bookworm-slim']);
  });

  it('reads literal FROM lines, --platform, lowercase "as", quoted defaults and continuation lines', () => {
    const text = [
      'ARG A="node:24.1.0-bookworm-slim" \\',
      '    B=debian:bookworm',
      'from --platform=$BUILDPLATFORM ${A} as one',
      'FROM ${B}',
      'FROM one',
      'FROM busybox:1.37',
    ].join('\n');
    assert.deepEqual(dockerfileBaseImages(text), [
      'node:24.1.0-bookworm-slim',
      'debian:bookworm',
      'busybox:1.37',
    ]);
  });

  it('keeps only the ARGs before the first FROM: a stage cannot use a later one in FROM', () => {
    const text = ['ARG X=a:1', 'FROM ${X} AS s', 'ARG Y=b:2', 'FROM ${Y}'].join('\n');
    assert.deepEqual([...dockerfileGlobalArgs(text)], [['X', 'a:1']]);
    assert.throws(
      () => dockerfileBaseImages(text),
      /FROM \$\{Y\} uses \$\{Y\}, which no ARG before the first FROM/,
    );
  });

  it('takes ${NAME:-word} when the ARG has no default, and refuses an ARG with no value at all', () => {
    const args = new Map<string, string | undefined>([['NONE', undefined]]);
    assert.equal(
      expandDockerfileArgs('${NONE:-node:24.21.0-bookworm-slim}', args),
      'node:24.21.0-bookworm-slim',
    );
    assert.throws(() => expandDockerfileArgs('${NONE}', args), /uses \$\{NONE\}, which no ARG/);
    assert.throws(() => expandDockerfileArgs('$MISSING', args), /uses \$MISSING, which no ARG/);
  });

  it("reads the project's Dockerfile: one base, of the Node the tests run, that the bed can make", () => {
    const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const node = lockedNodeVersion();
    assert.match(text, /^ARG NODE_IMAGE=\S+$/m, 'the Dockerfile takes its base as ARG NODE_IMAGE');
    assert.deepEqual(dockerfileBases(), [`node:${node}-bookworm-slim`]);
    assert.equal(localBaseProblem(`node:${node}-bookworm-slim`, node), undefined);
  });

  it('refuses a base pinned by digest (a local image has none) or of another Node', () => {
    const digest = `sha256:${'0'.repeat(64)}`;
    assert.match(
      localBaseProblem(`node:24.21.0-bookworm-slim@${digest}`, '24.21.0') ?? '',
      /pinned by digest: a locally made image cannot carry a registry's digest/,
    );
    assert.match(
      localBaseProblem('node:24.20.0-bookworm-slim', '24.21.0') ?? '',
      /the tests run Node 24\.21\.0/,
    );
    assert.match(localBaseProblem('node:24.21.0-bookworm-slimmer', '24.21.0') ?? '', /the tests run Node/);
  });
});
