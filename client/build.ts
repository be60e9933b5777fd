// Builds the browser side into client/dist/ (served at / by the server):
//   app.js             the demo page's script (a classic script: the page works from file:// too)
//   parley-client.js   the library alone, as an ES module, for other pages and browser tests
//   index.html, style.css
// Run: npm run build:client
import { copyFile, mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const clientDir = path.dirname(fileURLToPath(import.meta.url));
const distDir = path.join(clientDir, 'dist');

const common: esbuild.BuildOptions = {
	bundle: true,
	platform: 'browser',
	target: 'es2022',
	minify: true,
	sourcemap: true,
	define: { 'process.env.NODE_ENV': '"production"' },
	logLevel: 'warning',
};

await rm(distDir, { recursive: true, force: true });
await mkdir(distDir, { recursive: true });
await Promise.all([
	esbuild.build({ ...common, entryPoints: [path.join(clientDir, 'demo/main.ts')], outfile: path.join(distDir, 'app.js'), format: 'iife' }),
	esbuild.build({ ...common, entryPoints: [path.join(clientDir, 'index.ts')], outfile: path.join(distDir, 'parley-client.js'), format: 'esm' }),
	copyFile(path.join(clientDir, 'demo/index.html'), path.join(distDir, 'index.html')),
	copyFile(path.join(clientDir, 'demo/style.css'), path.join(distDir, 'style.css')),
]);

for (const file of ['index.html', 'style.css', 'app.js', 'parley-client.js']) {
	const { size } = await stat(path.join(distDir, file));
	console.log(`client/dist/${file.padEnd(18)} ${(size / 1024).toFixed(1).padStart(7)} kB`);
}
