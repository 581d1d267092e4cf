/**
 * The commands of `register gcp` and `register azure` are the ones the guides
 * show: docs/register.md shows exactly what they print for its examples, and
 * docs/gcp.md and docs/azure.md run the same commands (the same arguments once
 * /bin/sh has expanded the guide's own variables).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { parseAzureArgs, parseGcpArgs } from '../../src/commands/register.ts';
import { type Argv, azureCommands, gcpCommands, renderCommand } from '../../src/core/federation-commands.ts';
import { codeBlocks, readDoc } from './markdown.ts';

/** The arguments /bin/sh reads from `command` after `assignments`; nothing is run. */
function shellArgs(command: string, assignments = ''): string[] {
  const out = execFileSync('sh', ['-c', `${assignments}\nset -- ${command}\nprintf '%s\\0' "$@"`], {
    encoding: 'utf8',
  });
  return out.split('\0').slice(0, -1);
}

/** The shell lines of a guide's sh blocks, continuation lines joined. */
function shellLines(file: string): string[] {
  return codeBlocks(readDoc(file), file)
    .filter((b) => b.lang === 'sh')
    .flatMap((b) => b.text.replaceAll('\\\n', ' ').split('\n'));
}

/** The guide's plain variable assignments (no command substitution), as shell text, after `given`. */
function assignments(lines: readonly string[], given: string): string {
  return [given, ...lines.filter((l) => /^[A-Z_][A-Z0-9_]*=/.test(l) && !l.includes('$('))].join('\n');
}

/** The guide's gcloud or az commands, as /bin/sh would pass them. */
function guideCommands(file: string, program: string, given: string): string[][] {
  const lines = shellLines(file);
  const vars = assignments(lines, given);
  return lines.filter((l) => l.startsWith(`${program} `) && !l.includes('$(')).map((l) => shellArgs(l, vars));
}

/** The invocation in docs/register.md and the block that follows it (what it prints). */
function example(cloud: 'gcp' | 'azure'): { args: string[]; printed: string } {
  const blocks = codeBlocks(readDoc('docs/register.md'), 'docs/register.md');
  const at = blocks.findIndex((b) => b.text.startsWith(`oidc-publisher register ${cloud} `));
  const invocation = blocks[at];
  const printed = blocks[at + 1];
  assert.ok(invocation && printed, `docs/register.md shows oidc-publisher register ${cloud} and its output`);
  const args = shellArgs(invocation.text.trim());
  assert.deepEqual(args.slice(0, 3), ['oidc-publisher', 'register', cloud]);
  return { args: args.slice(3), printed: printed.text };
}

const text = (commands: Argv[]) => commands.map(renderCommand).join('');

function assertAmong(rendered: Argv[], shown: string[][], file: string) {
  for (const command of rendered) {
    assert.ok(
      shown.some((s) => JSON.stringify(s) === JSON.stringify(command)),
      `${file} lacks the command register prints:\n${renderCommand(command)}\nit has:\n${shown.map((s) => s.join(' ')).join('\n')}`,
    );
  }
}

describe('register gcp and the guides', () => {
  it('docs/register.md shows exactly what its example prints', () => {
    const { args, printed } = example('gcp');
    const parsed = parseGcpArgs(args);
    assert.ok(!parsed.help);
    assert.equal(
      printed,
      text(gcpCommands(parsed.options)),
      'paste the output of the example into docs/register.md',
    );
  });

  it('docs/gcp.md runs the same commands for its ServiceAccount', () => {
    const shown = guideCommands('docs/gcp.md', 'gcloud', 'PROJECT_NUMBER=123456789012');
    const vars = assignments(shellLines('docs/gcp.md'), 'PROJECT_NUMBER=123456789012');
    const value = (name: string) => shellArgs(`"$${name}"`, vars)[0] ?? '';
    const parsed = parseGcpArgs([
      '--issuer',
      value('ISSUER'),
      '--project',
      value('PROJECT_ID'),
      '--project-number',
      '123456789012',
      '--pool',
      value('POOL'),
      '--provider',
      value('PROVIDER'),
      '--service-account',
      'demo/app',
      '--role',
      'roles/storage.objectViewer',
    ]);
    assert.ok(!parsed.help);
    assertAmong(gcpCommands(parsed.options), shown, 'docs/gcp.md');
  });
});

describe('register azure and the guides', () => {
  it('docs/register.md shows exactly what its example prints', () => {
    const { args, printed } = example('azure');
    const parsed = parseAzureArgs(args);
    assert.ok(!parsed.help);
    assert.equal(
      printed,
      text(azureCommands(parsed.options)),
      'paste the output of the example into docs/register.md',
    );
  });

  it("docs/azure.md creates the same credential for its workload's ServiceAccount", () => {
    const lines = shellLines('docs/azure.md');
    const vars = assignments(lines, '');
    const value = (name: string) => shellArgs(`"$${name}"`, vars)[0] ?? '';
    const parsed = parseAzureArgs([
      '--issuer',
      value('ISSUER'),
      '--identity',
      'demo-app',
      '--resource-group',
      value('RESOURCE_GROUP'),
      '--service-account',
      'demo/app',
      '--credential-prefix',
      'prod-cluster',
    ]);
    assert.ok(!parsed.help);
    assertAmong(azureCommands(parsed.options), guideCommands('docs/azure.md', 'az', ''), 'docs/azure.md');
  });
});
