// Published reference points quoted in every report, so a reader sees where Parley stands.
// The figures are other systems' claims or arithmetic, not measurements of this run.

export const REFERENCES = [
	{
		name: 'mediasoup (documented)',
		figure: '~500 consumers per worker (one worker per core)',
		note: 'mediasoup\'s scalability docs: a worker handles ~500 consumers in total, for mixed audio and video; audio-only is cheaper per consumer.',
	},
	{
		name: 'LiveKit audio benchmark (published)',
		figure: '10 publishers -> 3,000 subscribers at ~80% of 16 cores',
		note: '30,000 audio down-tracks on 12.8 busy cores = ~2,340 per core, with a ~3 kb/s, ~32 packets/s test stream (lighter per track than 32 kb/s Opus at 50 packets/s). WebRTC (SRTP) listeners.',
	},
	{
		name: 'raw mediasoup on this machine kind (bench-anchors.md)',
		figure: 'plain RTP 2,000-2,750 consumers per worker core at p99 <= 5 ms; SRTP AES-256-GCM ~1,000',
		note: 'Measured 2026-11-26 with a probe (10 publishers, 32 kb/s Opus, 50 packets/s). This run measures its own baseline; compare ratios, not absolutes.',
	},
	{
		name: 'single-frame FEC ceiling',
		figure: 'playable share <= 1 - p^2 at random loss p',
		note: 'Opus in-band FEC rebuilds frame i from packet i+1, so a frame is lost only when i+1 is lost too. For bursts of mean length L only the last frame of a burst is rebuilt: 1 - p (1 - 1/L).',
	},
];
