// What the demo page needs from the library beyond join and mute: switching microphones
// during a call, the server's per-peer scores, and per-peer playback settings. Against the
// in-process fake server and mediasoup-client's FakeHandler, with a stubbed getUserMedia.
import { FakeMediaStreamTrack } from 'fake-mediastreamtrack';
import { Device, FakeHandler, testFakeParameters } from 'mediasoup-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ParleyClient, type PeerQuality } from './ParleyClient.js';
import type { PeerScore } from './ChannelSession.js';
import { BackoffReconnectPolicy } from './ReconnectPolicy.js';
import { FakeMediaStream } from './test/FakeMediaStream.js';
import { FakeSignalingServer } from './test/FakeSignalingServer.js';

interface Context {
	server: FakeSignalingServer;
	client: ParleyClient;
	/** The constraints of each getUserMedia call. */
	opened: MediaStreamConstraints[];
	/** Tracks getUserMedia handed out, in order. */
	tracks: MediaStreamTrack[];
	/** Set to make the next getUserMedia call fail with this DOMException name. */
	refuseWith: string | null;
}

function consumerParameters(id: string, peerId: string) {
	const { rtpParameters, producerId } = testFakeParameters.generateConsumerRemoteParameters({ id, codecMimeType: 'audio/opus' });
	return { consumerId: id, producerId, peerId, kind: 'audio' as const, rtpParameters, producerPaused: false };
}

describe('ParleyClient media controls', () => {
	let ctx: Context;

	beforeEach(() => {
		vi.stubGlobal('MediaStream', FakeMediaStream);
		const opened: MediaStreamConstraints[] = [];
		const tracks: MediaStreamTrack[] = [];
		ctx = { server: new FakeSignalingServer(), client: undefined as unknown as ParleyClient, opened, tracks, refuseWith: null };
		vi.stubGlobal('isSecureContext', true);
		vi.stubGlobal('navigator', {
			mediaDevices: {
				getUserMedia: async (constraints: MediaStreamConstraints) => {
					opened.push(constraints);
					if (ctx.refuseWith) throw new DOMException('refused', ctx.refuseWith);
					const track = new FakeMediaStreamTrack({ kind: 'audio' }) as unknown as MediaStreamTrack;
					tracks.push(track);
					return { getAudioTracks: () => [track], getVideoTracks: () => [] };
				},
				enumerateDevices: async () => [
					{ kind: 'audioinput', deviceId: 'default', label: 'Default', groupId: 'g' },
					{ kind: 'videoinput', deviceId: 'cam', label: 'Camera', groupId: 'g' },
					{ kind: 'audioinput', deviceId: 'mic-2', label: 'USB mic', groupId: 'h' },
				],
			},
		});
		ctx.client = new ParleyClient({
			url: 'ws://parley.test/ws',
			token: 'jwt',
			playAudio: false,
			requestTimeoutMs: 1000,
			reconnectPolicy: new BackoffReconnectPolicy({ delaysMs: [0], maxAttempts: 2, jitterRatio: 0 }),
			createWebSocket: ctx.server.createWebSocket,
			createDevice: () => new Device({ handlerFactory: FakeHandler.createFactory(testFakeParameters) }),
		});
	});

	afterEach(async () => {
		await ctx.client.close();
		vi.unstubAllGlobals();
	});

	async function publishing(): Promise<void> {
		await ctx.client.connect();
		await ctx.client.join('lobby');
		await ctx.client.publishMicrophone();
	}

	it('switchMicrophone() replaces the track on the same producer and stops the old microphone', async () => {
		await publishing();
		const producerId = ctx.client.producerId;
		const [first] = ctx.tracks;
		await ctx.client.mute();
		await ctx.client.switchMicrophone('mic-2');
		expect(ctx.opened.at(-1)?.audio).toMatchObject({ deviceId: { exact: 'mic-2' } });
		const second = ctx.tracks[1]!;
		expect(ctx.client.microphoneTrack).toBe(second);
		// No renegotiation: one produce request, the same producer id.
		expect(ctx.server.requestsOf('produce')).toHaveLength(1);
		expect(ctx.client.producerId).toBe(producerId);
		expect(first?.readyState).toBe('ended');
		// Muted stays muted on the new microphone.
		expect(second.enabled).toBe(false);
		expect(ctx.client.muted).toBe(true);
	});

	it('switchMicrophone() that cannot open the device keeps the old one published', async () => {
		await publishing();
		const [first] = ctx.tracks;
		ctx.refuseWith = 'NotAllowedError';
		await expect(ctx.client.switchMicrophone('mic-2')).rejects.toMatchObject({ code: 'E_MIC_PERMISSION_DENIED' });
		expect(ctx.client.microphoneTrack).toBe(first);
		expect(first?.readyState).toBe('live');
		expect(ctx.client.producerId).not.toBeNull();
	});

	it('switchMicrophone() before publishing publishes that microphone', async () => {
		await ctx.client.connect();
		await ctx.client.join('lobby');
		await ctx.client.switchMicrophone('mic-2');
		expect(ctx.opened).toHaveLength(1);
		expect(ctx.client.producerId).not.toBeNull();
	});

	it('listMicrophones() lists only audio inputs', async () => {
		const { listMicrophones } = await import('./microphone.js');
		expect((await listMicrophones()).map((d) => d.deviceId)).toEqual(['default', 'mic-2']);
	});

	it('consumerScore notifications become peerScore events and peerQuality() scores, per peer', async () => {
		await ctx.client.connect();
		await ctx.client.join('lobby');
		ctx.server.notify('peerJoined', { peerId: 'p-grace', userId: 'u2', displayName: 'Grace' });
		ctx.server.notify('newConsumer', consumerParameters('c1', 'p-grace'));
		await vi.waitFor(() => expect(ctx.server.requestsOf('resumeConsumer')).toHaveLength(1));
		const scores: [string, PeerScore][] = [];
		ctx.client.on('peerScore', (peerId, score) => scores.push([peerId, score]));
		ctx.server.notify('consumerScore', { consumerId: 'c1', score: 7, producerScore: 9 });
		// A consumer we do not know (already closed): nobody to attribute it to.
		ctx.server.notify('consumerScore', { consumerId: 'c-gone', score: 1, producerScore: 1 });
		await vi.waitFor(() => expect(scores).toHaveLength(1));
		expect(scores).toEqual([['p-grace', { score: 7, producerScore: 9 }]]);
		const quality: PeerQuality = await ctx.client.peerQuality('p-grace');
		expect(quality).toMatchObject({ score: 7, producerScore: 9 });
		// Nobody else has a score.
		expect(await ctx.client.peerQuality('p-nobody')).toEqual({ score: null, producerScore: null, lossPercent: null, jitterMs: null, roundTripMs: null });
		// A peer that left takes its score along.
		ctx.server.notify('peerLeft', { peerId: 'p-grace' });
		await vi.waitFor(() => expect(ctx.client.peers.size).toBe(0));
		expect((await ctx.client.peerQuality('p-grace')).score).toBeNull();
	});

	it('per-peer volume and local mute are validated and kept per peer', async () => {
		expect(ctx.client.peerPlayback('p1')).toEqual({ volume: 1, muted: false, gain: null });
		ctx.client.setPeerVolume('p1', 1.5);
		ctx.client.setPeerPlaybackMuted('p1', true);
		expect(ctx.client.peerPlayback('p1')).toMatchObject({ volume: 1.5, muted: true });
		expect(ctx.client.peerPlayback('p2')).toMatchObject({ volume: 1, muted: false });
		expect(() => ctx.client.setPeerVolume('p1', 2.5)).toThrow(RangeError);
		expect(() => ctx.client.setPeerVolume('p1', Number.NaN)).toThrow(RangeError);
		expect(ctx.client.peerPlayback('p1').volume).toBe(1.5);
	});
});
