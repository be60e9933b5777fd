// Regenerates protocol/grpc/generated from protocol/proto (npm run proto:types), or into the
// folder given as the first argument (the drift test compares the two).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { GEN_TYPES_FLAGS, GENERATED_TYPES_DIR, PROTO_ROOT, protoFiles } from '../protocol/grpc/protoFiles.js';

const outDir = process.argv[2] ?? GENERATED_TYPES_DIR;
const genTypes = createRequire(import.meta.url).resolve('@grpc/proto-loader/build/bin/proto-loader-gen-types.js');
rmSync(outDir, { recursive: true, force: true });
execFileSync(process.execPath, [genTypes, ...GEN_TYPES_FLAGS, '-I', PROTO_ROOT, '-O', outDir, ...protoFiles()], { cwd: PROTO_ROOT, stdio: 'inherit' });
// The generator names each type's source by its absolute path ("// Original file: /home/...");
// written relative to the repository, the files are the same in every checkout.
for (const entry of readdirSync(outDir, { recursive: true, withFileTypes: true })) {
	if (!entry.isFile()) continue;
	const file = path.join(entry.parentPath, entry.name);
	const text = readFileSync(file, 'utf8');
	const relative = text.replaceAll(`Original file: ${PROTO_ROOT}`, 'Original file: protocol/proto/');
	if (relative !== text) writeFileSync(file, relative);
}
