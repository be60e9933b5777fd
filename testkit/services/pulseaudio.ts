// A throwaway PulseAudio sound server with one null sink, for browsers that need a sound
// server before their AudioContext runs (Firefox: without one, every AudioContext stays
// `suspended` and nothing can be measured in the page). Everything lives under its own
// XDG_RUNTIME_DIR in a temp folder, so the machine's (or another test's) PulseAudio is never
// touched; a browser reaches it through the env() variables. The daemon is a direct child:
// stop() signals its PID and waits.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { makeTempFolder, removeTempFolder, spawnDaemon, waitUntil } from './daemon.js';

export const PULSEAUDIO = process.env.PULSEAUDIO_PATH ?? '/usr/bin/pulseaudio';

export interface TestPulseAudio {
	readonly pid: number;
	/** The native-protocol socket, `<runtime dir>/pulse/native`. */
	readonly socketPath: string;
	/** Variables for a client process: XDG_RUNTIME_DIR and PULSE_SERVER pointing here. */
	env(): Record<string, string>;
	/** Stops the daemon by its PID and removes the folder. */
	close(): Promise<void>;
	/** Milliseconds until the socket appeared. */
	startMs: number;
}

export async function startPulseAudio(): Promise<TestPulseAudio> {
	if (!existsSync(PULSEAUDIO)) throw new Error(`${PULSEAUDIO} is not installed: run scripts/setup (it installs pulseaudio)`);
	const started = Date.now();
	const runtimeDir = makeTempFolder('pulse');
	const socketPath = path.join(runtimeDir, 'pulse', 'native');
	const daemon = spawnDaemon(
		PULSEAUDIO,
		[
			'--daemonize=no',
			'--exit-idle-time=-1',
			'--disallow-exit',
			// No default.pa (it would load the machine's modules, ALSA among them), no
			// per-user config: exactly the two modules named here.
			'-n',
			'--use-pid-file=no',
			'--log-target=stderr',
			'--load=module-native-protocol-unix auth-anonymous=1',
			'--load=module-null-sink sink_name=null',
		],
		// PulseAudio as root refuses to start in per-user mode unless told it is fine; HOME
		// in the folder so it writes no cookie into the real one.
		{ env: { ...process.env, XDG_RUNTIME_DIR: runtimeDir, HOME: runtimeDir, PULSE_RUNTIME_PATH: path.join(runtimeDir, 'pulse') }, backstopSignal: 'SIGKILL' },
	);
	await waitUntil('pulseaudio', async () => existsSync(socketPath), { daemons: [daemon], timeoutMs: 10_000 });
	return {
		pid: daemon.pid,
		socketPath,
		env: () => ({ XDG_RUNTIME_DIR: runtimeDir, PULSE_SERVER: `unix:${socketPath}` }),
		close: async () => {
			await daemon.stop('SIGTERM', 3000);
			removeTempFolder(runtimeDir);
		},
		startMs: Date.now() - started,
	};
}
