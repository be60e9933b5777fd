// Regenerates protocol/grpc/generated from protocol/proto (npm run proto:types), or into the
// folder given as the first argument (the drift test compares the two).
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { GEN_TYPES_FLAGS, GENERATED_TYPES_DIR, PROTO_ROOT, protoFiles } from '../protocol/grpc/protoFiles.js';

const outDir = process.argv[2] ?? GENERATED_TYPES_DIR;
const genTypes = createRequire(import.meta.url).resolve('@grpc/proto-loader/build/bin/proto-loader-gen-types.js');
rmSync(outDir, { recursive: true, force: true });
execFileSync(process.execPath, [genTypes, ...GEN_TYPES_FLAGS, '-I', PROTO_ROOT, '-O', outDir, ...protoFiles()], { cwd: PROTO_ROOT, stdio: 'inherit' });
