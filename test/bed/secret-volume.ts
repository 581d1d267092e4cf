/**
 * A directory laid out as the kubelet lays out a mounted Secret, and updated as
 * it updates one: the files are symlinks through `..data`, which points at a
 * timestamped directory; an update writes a new directory and renames a new
 * `..data` symlink over the old one, so both files change in one step.
 */
import { mkdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export class SecretVolume {
  readonly dir: string;
  #generation = 0;

  constructor(dir: string, files: Record<string, Buffer | string>) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
    this.update(files);
    for (const name of Object.keys(files)) symlinkSync(join('..data', name), join(dir, name));
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** Replaces every file at once, as the kubelet's atomic writer does. */
  update(files: Record<string, Buffer | string>): void {
    this.#generation += 1;
    const version = `..${Date.now()}_${this.#generation}`;
    mkdirSync(join(this.dir, version));
    for (const [name, content] of Object.entries(files)) {
      writeFileSync(join(this.dir, version, name), content, { mode: 0o600 });
    }
    let previous: string | undefined;
    try {
      previous = readlinkSync(join(this.dir, '..data'));
    } catch {
      previous = undefined;
    }
    symlinkSync(version, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    if (previous) rmSync(join(this.dir, previous), { recursive: true, force: true });
  }
}
