// Which way a transport's media actually flows, read from the browser's WebRTC stats: the
// selected ICE candidate pair and its local candidate. Tells a direct UDP path from ICE over
// TCP (UDP blocked) and from a TURN relay, which is what support asks first ("are you
// relayed?") and what the reachability tests assert.

/** How one of our transports reaches the server. */
export interface ConnectionPath {
	direction: 'send' | 'recv';
	/** The local candidate of the selected pair: host (direct), srflx/prflx (through a NAT), relay (TURN). */
	candidateType: 'host' | 'srflx' | 'prflx' | 'relay';
	/** Transport between this browser and the server's media port, or the TURN server when relayed. */
	protocol: 'udp' | 'tcp';
	/** When relayed: how we reach the TURN server (tls for turns:). Null otherwise. */
	relayProtocol: 'udp' | 'tcp' | 'tls' | null;
	/** The remote candidate's address and port (the server's media port, or the relay peer). */
	remoteAddress: string | null;
	/** Current round trip on the pair (STUN consent checks). */
	roundTripMs: number | null;
}

interface StatLike {
	type: string;
	id: string;
	selectedCandidatePairId?: string;
	state?: string;
	nominated?: boolean;
	selected?: boolean;
	localCandidateId?: string;
	remoteCandidateId?: string;
	candidateType?: string;
	protocol?: string;
	relayProtocol?: string;
	address?: string;
	ip?: string;
	port?: number;
	currentRoundTripTime?: number;
}

/** The path in one peer connection's stats report; null while no pair is selected. */
export function connectionPathOf(direction: 'send' | 'recv', report: RTCStatsReport): ConnectionPath | null {
	const stats = new Map<string, StatLike>();
	report.forEach((s: StatLike) => stats.set(s.id, s));
	let pair: StatLike | undefined;
	// Chromium names the pair on the transport; Firefox marks it `selected` on the pair itself.
	for (const s of stats.values()) if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
	if (!pair) for (const s of stats.values()) if (s.type === 'candidate-pair' && (s.selected || (s.nominated && s.state === 'succeeded'))) pair = s;
	if (!pair?.localCandidateId) return null;
	const local = stats.get(pair.localCandidateId);
	const remote = pair.remoteCandidateId ? stats.get(pair.remoteCandidateId) : undefined;
	if (!local?.candidateType) return null;
	const relayProtocol = local.candidateType === 'relay' && (local.relayProtocol === 'udp' || local.relayProtocol === 'tcp' || local.relayProtocol === 'tls') ? local.relayProtocol : null;
	const remoteIp = remote?.address ?? remote?.ip;
	return {
		direction,
		candidateType: local.candidateType as ConnectionPath['candidateType'],
		protocol: local.protocol === 'tcp' ? 'tcp' : 'udp',
		relayProtocol,
		remoteAddress: remoteIp !== undefined ? `${remoteIp}:${remote?.port ?? ''}` : null,
		roundTripMs: pair.currentRoundTripTime !== undefined ? pair.currentRoundTripTime * 1000 : null,
	};
}
