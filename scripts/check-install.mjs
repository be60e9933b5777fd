// Last step of scripts/setup: proves the installed pieces load before anyone relies on them.
import * as mediasoup from 'mediasoup';
import uWS from 'uWebSockets.js';

if (typeof uWS.getParts !== 'function' || typeof uWS.SSLApp !== 'function') {
	console.error('[setup] uWebSockets.js native binary did not load (JS fallback active)');
	process.exit(1);
}
const worker = await mediasoup.createWorker({ logLevel: 'error' });
const router = await worker.createRouter({ mediaCodecs: [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 }] });
console.error(`[setup] mediasoup ${mediasoup.version} worker pid ${worker.pid} runs (router ${router.id.slice(0, 8)}), uWebSockets.js native`);
worker.close();
