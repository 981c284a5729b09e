// The project's root directory, found from this module's location whether it runs from source
// (tsx) or compiled (dist/): data files (proto/, clickhouse/, .cache/) live at the root, not next
// to the compiled code.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'stella-telemetry') return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the stella-telemetry project root above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

export const projectRoot = findRoot();
