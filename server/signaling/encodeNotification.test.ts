import { describe, expect, it } from 'vitest';
import { encodeNotification } from './SignalingSession.js';

describe('encodeNotification', () => {
	it('encodes the same broadcast once per turn and a changed object again in a later turn', async () => {
		const data = { peer: { peerId: 'p1', displayName: 'Ada' } };
		const first = encodeNotification('peerJoined', data);
		expect(JSON.parse(first)).toEqual({ method: 'peerJoined', data });
		// Same object in the same turn: the same string (not re-encoded).
		expect(encodeNotification('peerJoined', data)).toBe(first);
		// Another name or another object is never served from the slot.
		expect(JSON.parse(encodeNotification('peerLeft', data)).method).toBe('peerLeft');
		expect(JSON.parse(encodeNotification('peerJoined', { peer: { peerId: 'p2' } })).data.peer.peerId).toBe('p2');
		encodeNotification('peerJoined', data);
		// The slot empties at the end of the turn: a later change is encoded.
		await new Promise((resolve) => setImmediate(resolve));
		data.peer.displayName = 'Grace';
		expect(JSON.parse(encodeNotification('peerJoined', data)).data.peer.displayName).toBe('Grace');
	});
});
