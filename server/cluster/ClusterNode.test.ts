// The URLs a node announces in the registry (what redirects send clients to).
import { describe, expect, it } from 'vitest';
import { nodeUrls } from './ClusterNode.js';

describe('nodeUrls', () => {
	it('defaults to the media address and the HTTP port the listener got', () => {
		expect(nodeUrls('', '10.0.0.5', 8081)).toEqual({ httpUrl: 'http://10.0.0.5:8081', signalingUrl: 'ws://10.0.0.5:8081/ws' });
		expect(nodeUrls('', 'fd00::5', 8081)).toEqual({ httpUrl: 'http://[fd00::5]:8081', signalingUrl: 'ws://[fd00::5]:8081/ws' });
	});

	it('uses cluster.publicUrl (http(s) or ws(s), with or without a trailing slash)', () => {
		expect(nodeUrls('https://n1.example.com', '10.0.0.5', 8081)).toEqual({ httpUrl: 'https://n1.example.com', signalingUrl: 'wss://n1.example.com/ws' });
		expect(nodeUrls('wss://n1.example.com:8443/', '10.0.0.5', 8081)).toEqual({ httpUrl: 'https://n1.example.com:8443', signalingUrl: 'wss://n1.example.com:8443/ws' });
		expect(nodeUrls('ws://n2.internal', '10.0.0.5', 8081)).toEqual({ httpUrl: 'http://n2.internal', signalingUrl: 'ws://n2.internal/ws' });
	});
});
