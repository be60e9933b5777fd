import { describe, expect, it } from 'vitest';
import { routerMediaCodecs, usesOpusRed } from './mediaCodecs.js';

describe('router codecs', () => {
	it('lists Opus first and RED after it by default, and Opus alone with red off', () => {
		expect(routerMediaCodecs().map((c) => c.mimeType)).toEqual(['audio/opus', 'audio/red']);
		expect(routerMediaCodecs({ red: false }).map((c) => c.mimeType)).toEqual(['audio/opus']);
	});

	it('gives RED the same RTCP feedback as Opus (NACK only when asked for)', () => {
		const [opus, red] = routerMediaCodecs({ nack: true });
		expect(red!.rtcpFeedback).toEqual(opus!.rtcpFeedback);
		expect(opus!.rtcpFeedback!.map((f) => f.type)).toContain('nack');
		expect(routerMediaCodecs()[0]!.rtcpFeedback!.map((f) => f.type)).not.toContain('nack');
	});

	it('tells RTP parameters that carry RED', () => {
		expect(usesOpusRed({ codecs: [{ mimeType: 'audio/RED' }, { mimeType: 'audio/opus' }] })).toBe(true);
		expect(usesOpusRed({ codecs: [{ mimeType: 'audio/opus' }] })).toBe(false);
	});
});
