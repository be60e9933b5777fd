// Device.load asks the browser for its native RTP capabilities: two throwaway peer
// connections and offers (receive, then send), tens of milliseconds on a busy machine, and
// the only step between the server's welcome and the join request. They depend on the
// browser alone, not on the server, so the client asks for them once per page, as soon as
// it starts connecting (both at once), and every Device of the page loads from that answer
// while the WebSocket opens.
import { Device, detectDeviceAsync } from 'mediasoup-client';
import type { types as mc } from 'mediasoup-client';
import { Chrome74 } from 'mediasoup-client/handlers/Chrome74';
import { Chrome111 } from 'mediasoup-client/handlers/Chrome111';
import { Firefox120 } from 'mediasoup-client/handlers/Firefox120';
import type { HandlerFactory } from 'mediasoup-client/handlers/HandlerInterface';
import { ReactNative106 } from 'mediasoup-client/handlers/ReactNative106';
import { Safari12 } from 'mediasoup-client/handlers/Safari12';

/** The handlers mediasoup-client's own detection picks from, by the name it returns. */
const HANDLERS = { Chrome111, Chrome74, Firefox120, Safari12, ReactNative106 } as const;

let prepared: Promise<HandlerFactory | undefined> | undefined;

/**
 * Starts asking for the browser's native capabilities (once per page) and returns the
 * handler factory that answers Device.load from them; undefined where mediasoup-client
 * detects no handler (Device.factory() then says why).
 */
export function prepareHandlerFactory(): Promise<HandlerFactory | undefined> {
	prepared ??= (async () => {
		const name = await detectDeviceAsync();
		if (!name) return undefined;
		const base = HANDLERS[name].createFactory({});
		const recv = base.getNativeRtpCapabilities({ direction: 'recvonly' });
		const send = base.getNativeRtpCapabilities({ direction: 'sendonly' });
		// A browser that cannot answer is asked again by the next Device (load() reports the
		// error); meanwhile the rejection is not an unhandled one.
		Promise.all([recv, send]).catch(() => {
			prepared = undefined;
		});
		const factory: HandlerFactory = { ...base, getNativeRtpCapabilities: ({ direction }) => (direction === 'recvonly' ? recv : send) };
		return factory;
	})().catch(() => undefined);
	return prepared;
}

/** A Device (not loaded) whose load() uses the capabilities prepareHandlerFactory asked for. */
export async function createDevice(): Promise<mc.Device> {
	const handlerFactory = await prepareHandlerFactory();
	return handlerFactory ? Device.factory({ handlerFactory }) : Device.factory();
}
