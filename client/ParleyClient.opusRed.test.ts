// Which codec the library publishes with: Opus inside RED when the router offers audio/red and
// the browser can send it (unless the app said opusRed: false), plain Opus otherwise. Against
// the in-process fake server and mediasoup-client's FakeHandler, whose "browser" and router
// capabilities each test extends with audio/red or not.
import { FakeMediaStreamTrack } from 'fake-mediastreamtrack';
import { Device, FakeHandler, testFakeParameters } from 'mediasoup-client';
import type { types as mc } from 'mediasoup-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { opusRedCodec } from './ChannelSession.js';
import { ParleyClient } from './ParleyClient.js';
import { BackoffReconnectPolicy } from './ReconnectPolicy.js';
import { FakeMediaStream } from './test/FakeMediaStream.js';
import { FakeSignalingServer } from './test/FakeSignalingServer.js';

const RED: mc.RtpCodecCapability = { kind: 'audio', mimeType: 'audio/red', preferredPayloadType: 63, clockRate: 48000, channels: 2, rtcpFeedback: [{ type: 'transport-cc' }], parameters: {} };

/** The fake router's capabilities, with audio/red after Opus as Parley's router lists it. */
function routerCapabilities(red: boolean): mc.RtpCapabilities {
	const base = testFakeParameters.generateRouterRtpCapabilities();
	const codecs = [...(base.codecs ?? [])];
	if (red) codecs.splice(1, 0, { ...RED, preferredPayloadType: 99 });
	return { ...base, codecs };
}

/** FakeHandler parameters whose "browser" can (Chromium) or cannot (Firefox) send audio/red. */
function browserParameters(red: boolean): typeof testFakeParameters {
	return {
		...testFakeParameters,
		generateNativeRtpCapabilities: () => {
			const native = testFakeParameters.generateNativeRtpCapabilities();
			if (red) native.codecs = [...(native.codecs ?? []), { ...RED, parameters: { '111/111': undefined } as unknown as Record<string, unknown> }];
			return native;
		},
	};
}

interface Setup {
	routerRed: boolean;
	browserRed: boolean;
	opusRed?: boolean;
}

describe('ParleyClient and Opus RED', () => {
	let server: FakeSignalingServer;
	let client: ParleyClient | null;

	beforeEach(() => {
		vi.stubGlobal('MediaStream', FakeMediaStream);
		vi.stubGlobal('isSecureContext', true);
		vi.stubGlobal('navigator', {
			mediaDevices: {
				getUserMedia: async () => {
					const track = new FakeMediaStreamTrack({ kind: 'audio' }) as unknown as MediaStreamTrack;
					return { getAudioTracks: () => [track], getVideoTracks: () => [] };
				},
				enumerateDevices: async () => [],
			},
		});
		server = new FakeSignalingServer();
		client = null;
	});

	afterEach(async () => {
		await client?.close();
		vi.unstubAllGlobals();
	});

	async function publish({ routerRed, browserRed, opusRed }: Setup): Promise<ParleyClient> {
		server.on('getRouterRtpCapabilities', () => ({ rtpCapabilities: routerCapabilities(routerRed) }) as never);
		client = new ParleyClient({
			url: 'ws://parley.test/ws',
			token: 'jwt',
			playAudio: false,
			requestTimeoutMs: 1000,
			reconnectPolicy: new BackoffReconnectPolicy({ delaysMs: [0], maxAttempts: 1, jitterRatio: 0 }),
			createWebSocket: server.createWebSocket,
			createDevice: () => new Device({ handlerFactory: FakeHandler.createFactory(browserParameters(browserRed)) }),
			...(opusRed !== undefined && { opusRed }),
		});
		await client.connect();
		await client.join('lobby');
		await client.publishMicrophone();
		return client;
	}

	/** The mimeTypes of the rtpParameters the produce request carried to the server. */
	function producedCodecs(): string[] {
		const [data] = server.requestsOf('produce');
		return data!.rtpParameters.codecs.map((c) => c.mimeType);
	}

	it('sends RED carrying Opus when the router offers it and the browser can send it', async () => {
		const parley = await publish({ routerRed: true, browserRed: true });
		expect(producedCodecs()).toEqual(['audio/red', 'audio/opus']);
		expect(parley.producerCodecs).toEqual(['audio/red', 'audio/opus']);
	});

	it('sends plain Opus when the browser cannot send RED (Firefox)', async () => {
		const parley = await publish({ routerRed: true, browserRed: false });
		expect(producedCodecs()).toEqual(['audio/opus']);
		expect(parley.producerCodecs).toEqual(['audio/opus']);
	});

	it('sends plain Opus when the router does not offer RED (media.opusRed false)', async () => {
		const parley = await publish({ routerRed: false, browserRed: true });
		expect(producedCodecs()).toEqual(['audio/opus']);
		expect(parley.producerCodecs).toEqual(['audio/opus']);
	});

	it('sends plain Opus when the app turns RED off (opusRed: false)', async () => {
		const parley = await publish({ routerRed: true, browserRed: true, opusRed: false });
		expect(producedCodecs()).toEqual(['audio/opus']);
		expect(parley.producerCodecs).toEqual(['audio/opus']);
	});

	it('has no producer codecs before publishing', async () => {
		const parley = new ParleyClient({ url: 'ws://parley.test/ws', token: 'jwt', playAudio: false, createWebSocket: server.createWebSocket });
		expect(parley.producerCodecs).toBeNull();
		expect(parley.peerCodecs('p-nobody')).toEqual([]);
		await parley.close();
	});

	it('opusRedCodec() needs audio/red and Opus at the same clock rate', () => {
		const opus = routerCapabilities(false).codecs![0]!;
		expect(opusRedCodec({ codecs: [opus, RED] })).toBe(RED);
		expect(opusRedCodec({ codecs: [RED] })).toBeUndefined();
		expect(opusRedCodec({ codecs: [opus, { ...RED, clockRate: 8000 }] })).toBeUndefined();
		expect(opusRedCodec({ codecs: [opus] })).toBeUndefined();
		expect(opusRedCodec({})).toBeUndefined();
	});
});
