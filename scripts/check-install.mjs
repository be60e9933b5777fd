// Last step of scripts/setup: proves the installed pieces load before anyone relies on them.
import * as mediasoup from 'mediasoup';
import Database from 'better-sqlite3';
import uWS from 'uWebSockets.js';

if (typeof uWS.getParts !== 'function' || typeof uWS.SSLApp !== 'function') {
	console.error('[setup] uWebSockets.js native binary did not load (JS fallback active)');
	process.exit(1);
}
// The embedded metadata store's native module (built here, or taken from setup's cache).
const sqlite = new Database(':memory:');
if (sqlite.prepare('select 1 as one').get().one !== 1) {
	console.error('[setup] better-sqlite3 did not answer a query');
	process.exit(1);
}
sqlite.close();
const worker = await mediasoup.createWorker({ logLevel: 'error' });
// audio/red exists only with patches/mediasoup+*.patch applied (npm's postinstall runs it).
const router = await worker.createRouter({
	mediaCodecs: [
		{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
		{ kind: 'audio', mimeType: 'audio/red', clockRate: 48000, channels: 2 },
	],
});
console.error(`[setup] mediasoup ${mediasoup.version} worker pid ${worker.pid} runs (router ${router.id.slice(0, 8)}), uWebSockets.js native, better-sqlite3 loads`);
worker.close();
