// Serves the built demo app (client/dist) from memory: a handful of small files, read once
// at startup, so no request touches the disk or can name a path outside the folder.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { HttpServer } from './HttpServer.js';
import { errorReply } from './HttpServer.js';

const CONTENT_TYPES: Record<string, string> = {
	'.html': 'text/html; charset=utf-8',
	'.js': 'text/javascript; charset=utf-8',
	'.css': 'text/css; charset=utf-8',
	'.map': 'application/json',
	'.svg': 'image/svg+xml',
	'.png': 'image/png',
	'.ico': 'image/x-icon',
};

export function registerStaticFiles(http: HttpServer, dir: string): number {
	const files = existsSync(dir) ? readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile()) : [];
	for (const entry of files) {
		const body = readFileSync(path.join(dir, entry.name));
		const contentType = CONTENT_TYPES[path.extname(entry.name)] ?? 'application/octet-stream';
		const reply = { status: 200, body, contentType, headers: { 'cache-control': 'no-cache' } };
		http.get(`/${entry.name}`, () => reply, { quiet: true });
		if (entry.name === 'index.html') http.get('/', () => reply, { quiet: true });
	}
	if (!files.some((f) => f.name === 'index.html')) {
		http.get('/', () => errorReply('E_NOT_BUILT', 'The demo app is not built: run `npm run build:client` (scripts/setup does).'));
	}
	return files.length;
}
