// Enough of MediaStream for RemoteAudio in Node (which has none); client unit tests stub the
// global with it.
export class FakeMediaStream {
	readonly #tracks: MediaStreamTrack[];
	constructor(tracks: MediaStreamTrack[] = []) {
		this.#tracks = [...tracks];
	}
	addTrack(track: MediaStreamTrack): void {
		if (!this.#tracks.includes(track)) this.#tracks.push(track);
	}
	removeTrack(track: MediaStreamTrack): void {
		const i = this.#tracks.indexOf(track);
		if (i >= 0) this.#tracks.splice(i, 1);
	}
	getTracks(): MediaStreamTrack[] {
		return [...this.#tracks];
	}
}
