// Opening the microphone for voice: mono, with the browser's voice processing on, and
// every failure turned into a stable ParleyError (mediaErrors.ts).
import { microphoneError, microphoneSupportError } from './mediaErrors.js';

export interface OpenMicrophoneOptions {
	/** A device from navigator.mediaDevices.enumerateDevices(); the default microphone otherwise. */
	deviceId?: string;
}

export async function openMicrophone({ deviceId }: OpenMicrophoneOptions = {}): Promise<MediaStreamTrack> {
	const unsupported = microphoneSupportError(globalThis);
	if (unsupported) throw unsupported;
	let stream: MediaStream;
	try {
		stream = await navigator.mediaDevices.getUserMedia({
			audio: {
				// Voice is mono; stereo would double the Opus bitrate for nothing.
				channelCount: 1,
				echoCancellation: true,
				noiseSuppression: true,
				autoGainControl: true,
				// `exact` so a missing chosen device fails (E_MIC_NOT_FOUND) instead of silently
				// opening another one.
				...(deviceId === undefined ? {} : { deviceId: { exact: deviceId } }),
			},
		});
	} catch (error) {
		throw microphoneError(error);
	}
	const [track, ...extra] = stream.getAudioTracks();
	for (const other of [...extra, ...stream.getVideoTracks()]) other.stop();
	if (!track) throw microphoneError(new DOMException('getUserMedia returned no audio track', 'NotFoundError'));
	return track;
}

/**
 * The microphones the browser offers, default first. Labels are empty until the page has
 * had microphone permission once (browsers hide them before); `deviceId`s work either way.
 */
export async function listMicrophones(): Promise<MediaDeviceInfo[]> {
	const unsupported = microphoneSupportError(globalThis);
	if (unsupported) throw unsupported;
	const devices = await navigator.mediaDevices.enumerateDevices();
	return devices.filter((device) => device.kind === 'audioinput');
}
