// Remote voices: one MediaStream per peer for the application (meters, Web Audio, custom
// players) and, by default, one hidden <audio autoplay> element per consumer so the channel
// is audible without any code. The element is not optional for Web Audio users either:
// Chrome delivers remote WebRTC audio to an AudioContext only while the track is also
// attached to a media element.
import { ParleyError } from './ParleyError.js';
import { TypedEmitter } from './TypedEmitter.js';

export interface RemoteAudioEvents {
	/** A peer's stream appeared or gained a track (the same MediaStream object per peer). */
	stream: [peerId: string, stream: MediaStream];
	/** A peer's last track went away. */
	streamRemoved: [peerId: string];
	/** The browser's autoplay policy refused to play; call resumePlayback() from a user gesture. */
	playbackBlocked: [error: ParleyError];
	/** Playback failed for another reason (E_PLAYBACK_FAILED). */
	error: [error: ParleyError];
}

export interface RemoteAudioOptions {
	/** Attach each track to a hidden <audio autoplay> element in document.body. */
	play: boolean;
}

/** How we play one peer: our choice only, the peer and everyone else are unaffected. */
export interface PeerPlayback {
	/** Gain, 0-2 (1 = as received). */
	volume: number;
	/** Muted for us alone. */
	muted: boolean;
	/** The Web Audio gain now applied (0 while muted), or null while the peer plays unchanged. */
	gain: number | null;
}

export const MAX_PEER_VOLUME = 2;

/** A peer played through Web Audio: its stream's source into a gain node. */
interface PlaybackGraph {
	source: MediaStreamAudioSourceNode;
	gain: GainNode;
}

interface RemoteTrack {
	peerId: string;
	track: MediaStreamTrack;
	element: HTMLAudioElement | null;
}

export class RemoteAudio extends TypedEmitter<RemoteAudioEvents> {
	readonly #play: boolean;
	readonly #tracks = new Map<string, RemoteTrack>();
	readonly #streams = new Map<string, MediaStream>();
	#blocked = false;
	readonly #settings = new Map<string, { volume: number; muted: boolean }>();
	readonly #graphs = new Map<string, PlaybackGraph>();
	/** Created the first time a peer's volume or mute is changed. */
	#context: AudioContext | null = null;

	constructor({ play }: RemoteAudioOptions) {
		super();
		this.#play = play;
	}

	/** Per peer id, the stream of everything heard from that peer (a copy of the map). */
	streams(): Map<string, MediaStream> {
		return new Map(this.#streams);
	}

	/** Audio elements currently playing (for tests and debugging). */
	get elementCount(): number {
		let count = 0;
		for (const remote of this.#tracks.values()) if (remote.element) count += 1;
		return count;
	}

	add(consumerId: string, peerId: string, track: MediaStreamTrack): void {
		this.remove(consumerId);
		const element = this.#play ? this.#attach(consumerId, peerId, track) : null;
		this.#tracks.set(consumerId, { peerId, track, element });
		let stream = this.#streams.get(peerId);
		if (!stream) {
			stream = new MediaStream();
			this.#streams.set(peerId, stream);
		}
		stream.addTrack(track);
		// A source node takes the stream's tracks as they are when it is made: remake it.
		if (this.#graphs.has(peerId)) this.#disconnect(peerId);
		this.#applyPlayback(peerId);
		this.emit('stream', peerId, stream);
	}

	/** How `peerId` is played (defaults until changed). */
	playback(peerId: string): PeerPlayback {
		const settings = this.#settings.get(peerId) ?? { volume: 1, muted: false };
		const graph = this.#graphs.get(peerId);
		return { ...settings, gain: graph ? graph.gain.gain.value : null };
	}

	/**
	 * Plays `peerId` at `volume` (0-2) and/or muted, for us alone. The first change moves
	 * that peer from its <audio> element (then muted, but kept: Chrome needs it) to a Web
	 * Audio gain node, since element volume cannot go above 1. Applies to later tracks too.
	 */
	setPlayback(peerId: string, change: { volume?: number; muted?: boolean }): void {
		const current = this.#settings.get(peerId) ?? { volume: 1, muted: false };
		const volume = change.volume ?? current.volume;
		if (!Number.isFinite(volume) || volume < 0 || volume > MAX_PEER_VOLUME) throw new RangeError(`volume must be between 0 and ${MAX_PEER_VOLUME}, got ${volume}`);
		this.#settings.set(peerId, { volume, muted: change.muted ?? current.muted });
		this.#applyPlayback(peerId);
	}

	/** Drops a peer's settings (it left the channel). */
	forget(peerId: string): void {
		this.#settings.delete(peerId);
	}

	remove(consumerId: string): void {
		const remote = this.#tracks.get(consumerId);
		if (!remote) return;
		this.#tracks.delete(consumerId);
		if (remote.element) {
			remote.element.srcObject = null;
			remote.element.remove();
		}
		const stream = this.#streams.get(remote.peerId);
		if (!stream) return;
		stream.removeTrack(remote.track);
		if (this.#graphs.has(remote.peerId)) this.#disconnect(remote.peerId);
		if (stream.getTracks().length === 0) {
			this.#streams.delete(remote.peerId);
			this.emit('streamRemoved', remote.peerId);
		} else this.#applyPlayback(remote.peerId);
	}

	clear(): void {
		for (const consumerId of [...this.#tracks.keys()]) this.remove(consumerId);
		this.#settings.clear();
		const context = this.#context;
		this.#context = null;
		void context?.close().catch(() => undefined);
	}

	#applyPlayback(peerId: string): void {
		const settings = this.#settings.get(peerId);
		const stream = this.#streams.get(peerId);
		if (!this.#play || !settings || !stream) return;
		let graph = this.#graphs.get(peerId);
		if (!graph) {
			this.#context ??= new AudioContext();
			const context = this.#context;
			// Usually called from the slider's input event: a user gesture, so this starts it.
			if (context.state === 'suspended') void context.resume().catch(() => undefined);
			graph = { source: context.createMediaStreamSource(stream), gain: context.createGain() };
			graph.source.connect(graph.gain).connect(context.destination);
			this.#graphs.set(peerId, graph);
		}
		graph.gain.gain.value = settings.muted ? 0 : settings.volume;
		for (const remote of this.#tracks.values()) if (remote.peerId === peerId && remote.element) remote.element.muted = true;
	}

	#disconnect(peerId: string): void {
		const graph = this.#graphs.get(peerId);
		if (!graph) return;
		this.#graphs.delete(peerId);
		graph.source.disconnect();
		graph.gain.disconnect();
	}

	/** Retries playback after the autoplay policy blocked it; call it from a click handler. */
	async resumePlayback(): Promise<void> {
		this.#blocked = false;
		if (this.#context?.state === 'suspended') await this.#context.resume();
		await Promise.all([...this.#tracks.values()].map((remote) => (remote.element ? this.#startPlayback(remote.element) : undefined)));
	}

	#attach(consumerId: string, peerId: string, track: MediaStreamTrack): HTMLAudioElement {
		const element = document.createElement('audio');
		element.autoplay = true;
		element.hidden = true;
		element.dataset.parleyConsumerId = consumerId;
		element.dataset.parleyPeerId = peerId;
		element.srcObject = new MediaStream([track]);
		document.body.append(element);
		void this.#startPlayback(element);
		return element;
	}

	async #startPlayback(element: HTMLAudioElement): Promise<void> {
		try {
			await element.play();
		} catch (error) {
			const name = error instanceof Error ? error.name : '';
			// AbortError: the element was removed (consumer closed) before it started: expected.
			if (name === 'AbortError') return;
			if (name === 'NotAllowedError') {
				if (this.#blocked) return;
				this.#blocked = true;
				this.emit('playbackBlocked', new ParleyError('E_AUTOPLAY_BLOCKED', undefined, { cause: error }));
				return;
			}
			this.emit('error', new ParleyError('E_PLAYBACK_FAILED', undefined, { cause: error }));
		}
	}
}
