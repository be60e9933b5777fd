// Where Parley's gRPC contract lives and how it is read. The .proto files under
// protocol/proto are the contract; @grpc/proto-loader reads them at runtime (no protoc, no
// generated JavaScript), and its proto-loader-gen-types writes the TypeScript types in
// ./generated (`npm run proto:types`; a test fails when they drift from the protos).
// Why this route and not ts-proto: ts-proto needs protoc, whose npm wrapper downloads a
// binary at install time; proto-loader is pure JS, is what @grpc/grpc-js documents, and the
// health and reflection packages take its PackageDefinition directly.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The include root of the .proto files (imports are relative to it: "parley/v1/common.proto"). */
export const PROTO_ROOT = fileURLToPath(new URL('../proto/', import.meta.url));
/** Where `npm run proto:types` writes the TypeScript types. */
export const GENERATED_TYPES_DIR = fileURLToPath(new URL('./generated/', import.meta.url));

/** How messages become JS objects; the generated types are made with the same options. */
export const PROTO_LOADER_OPTIONS = {
	keepCase: false,
	longs: String,
	enums: String,
	defaults: true,
	oneofs: true,
} as const;

/** The same options as proto-loader-gen-types flags. */
export const GEN_TYPES_FLAGS = ['--longs=String', '--enums=String', '--defaults', '--oneofs', '--grpcLib=@grpc/grpc-js', '--importFileExtension=.js'];

/** Every .proto under PROTO_ROOT, relative to it, sorted (parley/v1/*, google/rpc/*). */
export function protoFiles(): string[] {
	const out: string[] = [];
	const walk = (dir: string): void => {
		for (const entry of readdirSync(path.join(PROTO_ROOT, dir), { withFileTypes: true })) {
			const rel = path.posix.join(dir, entry.name);
			if (entry.isDirectory()) walk(rel);
			else if (entry.name.endsWith('.proto')) out.push(rel);
		}
	};
	walk('');
	return out.sort();
}
