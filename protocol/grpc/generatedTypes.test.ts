// The committed TypeScript types are what `npm run proto:types` makes of the protos now.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { GENERATED_TYPES_DIR } from './protoFiles.js';

function files(dir: string): Map<string, string> {
	const out = new Map<string, string>();
	for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
		if (entry.isFile()) {
			const full = path.join(entry.parentPath, entry.name);
			out.set(path.relative(dir, full), readFileSync(full, 'utf8'));
		}
	}
	return out;
}

it('protocol/grpc/generated matches the protos (run npm run proto:types after editing them)', () => {
	const fresh = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-proto-types-')), 'out');
	execFileSync(process.execPath, ['--import', 'tsx', new URL('../../scripts/proto-types.ts', import.meta.url).pathname, fresh], { stdio: 'pipe' });
	const committed = files(GENERATED_TYPES_DIR);
	const generated = files(fresh);
	expect([...committed.keys()].sort()).toEqual([...generated.keys()].sort());
	for (const [name, text] of generated) expect(committed.get(name), name).toBe(text);
}, 60_000);
