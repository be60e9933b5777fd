/**
 * Settings werift does not expose, reached through its internals and checked at runtime so a
 * werift upgrade that moves them fails loudly instead of quietly slowing every join.
 */
import type { RTCPeerConnection } from 'werift';

type WeriftIceConnection = { stunServer?: unknown };

/**
 * werift gathers a server-reflexive candidate from stun.l.google.com when no STUN server is
 * configured (its default), so every offer or answer waits for a DNS lookup that cannot
 * succeed here: ~15 ms alone, seconds when many peers queue on libuv's four resolver threads.
 * The peers in tests and the bench talk to a server on loopback and need host candidates only.
 * Call after the ICE transports exist (setRemoteDescription, or addTransceiver for an
 * offerer) and before setLocalDescription, which gathers.
 */
export function skipStunGathering(pc: RTCPeerConnection): void {
	const transports = (pc as unknown as { iceTransports?: { connection?: WeriftIceConnection }[] }).iceTransports;
	if (!transports?.length || transports.some((t) => !t.connection || !('stunServer' in t.connection))) {
		throw new Error('werift internals changed: no ICE connection with a stunServer on the peer connection');
	}
	for (const t of transports) t.connection!.stunServer = undefined;
}
