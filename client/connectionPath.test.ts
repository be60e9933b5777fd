import { describe, expect, it } from 'vitest';
import { connectionPathOf } from './connectionPath.js';

/** An RTCStatsReport as browsers give it: a map of stats by id. */
const report = (stats: Record<string, unknown>[]): RTCStatsReport => new Map(stats.map((s) => [s.id as string, s])) as unknown as RTCStatsReport;

describe('connectionPathOf', () => {
	it('follows Chromium\u2019s selectedCandidatePairId to the local candidate of a relayed pair', () => {
		const path = connectionPathOf(
			'send',
			report([
				{ id: 'T1', type: 'transport', selectedCandidatePairId: 'CP2' },
				{ id: 'CP1', type: 'candidate-pair', localCandidateId: 'L1', remoteCandidateId: 'R1', state: 'failed' },
				{ id: 'CP2', type: 'candidate-pair', localCandidateId: 'L2', remoteCandidateId: 'R1', state: 'succeeded', nominated: true, currentRoundTripTime: 0.012 },
				{ id: 'L1', type: 'local-candidate', candidateType: 'host', protocol: 'udp' },
				{ id: 'L2', type: 'local-candidate', candidateType: 'relay', protocol: 'udp', relayProtocol: 'tls' },
				{ id: 'R1', type: 'remote-candidate', candidateType: 'host', protocol: 'udp', address: '10.0.0.1', port: 40000 },
			]),
		);
		expect(path).toEqual({ direction: 'send', candidateType: 'relay', protocol: 'udp', relayProtocol: 'tls', remoteAddress: '10.0.0.1:40000', roundTripMs: 12 });
	});

	it('takes Firefox\u2019s selected pair, and reports nothing before a pair is chosen', () => {
		const tcp = connectionPathOf('recv', report([{ id: 'P', type: 'candidate-pair', selected: true, localCandidateId: 'L' }, { id: 'L', type: 'local-candidate', candidateType: 'host', protocol: 'tcp' }]));
		expect(tcp).toMatchObject({ direction: 'recv', candidateType: 'host', protocol: 'tcp', relayProtocol: null, remoteAddress: null });
		expect(connectionPathOf('recv', report([{ id: 'P', type: 'candidate-pair', state: 'in-progress', localCandidateId: 'L' }]))).toBeNull();
	});
});
