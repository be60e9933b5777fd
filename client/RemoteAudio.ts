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
		this.emit('stream', peerId, stream);
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
		if (stream.getTracks().length === 0) {
			this.#streams.delete(remote.peerId);
			this.emit('streamRemoved', remote.peerId);
		}
	}

	clear(): void {
		for (const consumerId of [...this.#tracks.keys()]) this.remove(consumerId);
	}

	/** Retries playback after the autoplay policy blocked it; call it from a click handler. */
	async resumePlayback(): Promise<void> {
		this.#blocked = false;
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
