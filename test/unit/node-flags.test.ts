// The V8 flags stella runs with (lib/node-flags.ts) can only come from node's command line, so they
// are written out in the shebang and the npm scripts: these must carry every one of them, and
// `stella run` must notice when it was started without them.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { missingNodeFlags, NODE_FLAGS } from '../../lib/node-flags.ts';

const root = path.resolve(import.meta.dirname, '../..');

describe('node flags', () => {
  it('the stella shebang and the npm scripts that start it pass every flag', () => {
    const shebang = readFileSync(path.join(root, 'cli/stella.ts'), 'utf8').split('\n')[0]!;
    const scripts = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).scripts as Record<string, string>;
    for (const cmd of [shebang, scripts.start!, scripts.stella!]) {
      expect(cmd).toMatch(/\bnode\b/);
      for (const flag of NODE_FLAGS) expect(cmd.split(/\s+/), cmd).toContain(flag);
    }
  });

  it('finds a flag in node\'s arguments or NODE_OPTIONS, with any value or spelling', () => {
    expect(missingNodeFlags([], '')).toEqual([...NODE_FLAGS]);
    expect(missingNodeFlags(['--import', 'tsx'], '--enable-source-maps')).toEqual([...NODE_FLAGS]);
    expect(missingNodeFlags([...NODE_FLAGS], '')).toEqual([]);
    expect(missingNodeFlags([], NODE_FLAGS.join(' '))).toEqual([]);
    expect(missingNodeFlags(['--max-semi-space-size=16'], '')).toEqual([]); // an operator's own choice
    expect(missingNodeFlags(['--max_semi_space_size=4'], '')).toEqual([]);
  });
});
