// For recording tests: a real node, one signaling session joined to channel "room" as a user
// who may publish and record, and a werift publisher on it (ICE + DTLS + SRTP) whose packets,
// timestamps and pacing the test controls.
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { publishWithWerift, type WeriftPublisher } from '../../testkit/weriftPublisher.js';
import { testConfig } from './config.js';
import { testLogger } from './logger.js';

export interface RecordingPublisher {
	server: ParleyServer;
	client: TestSignalingClient;
	publisher: WeriftPublisher;
}

export async function startRecordingPublisher(secret: string, env: Record<string, string> = {}): Promise<RecordingPublisher> {
	const server = await ParleyServer.create(await testConfig({ PARLEY_AUTH_JWT_SECRET: secret, ...env }), testLogger());
	const token = await mintAccessToken({ userId: 'ada', channels: ['room'], grants: { canPublish: true, canRecord: true }, ttlS: 600 }, new TextEncoder().encode(secret));
	const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${server.http.port}/ws?token=${token}&v=${PROTOCOL_VERSION}`);
	const caps = await client.request('getRouterRtpCapabilities', {});
	if (!caps.ok) throw new Error('getRouterRtpCapabilities failed');
	await client.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
	const publisher = await publishWithWerift(client);
	return { server, client, publisher };
}
