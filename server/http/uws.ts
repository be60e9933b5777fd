// uWebSockets.js, loaded once, refusing the JS fallback.
//
// The package we use (an npm republish of uWS v20.30, see package.json) falls back to a
// slow pure-JS shim built on `ws` with only a console warning when its native binary does
// not load (wrong glibc, wrong Node ABI). A voice server silently running on the shim is
// worse than one that does not start, so we check that the native binding is what loaded.
import uWS from 'uWebSockets.js';

export { uWS };

/** The native binding exports these; the fallback shim does not. */
const NATIVE_ONLY_EXPORTS = ['getParts', 'SSLApp'] as const;

export function isNativeUws(module: object = uWS): boolean {
	return NATIVE_ONLY_EXPORTS.every((name) => typeof (module as Record<string, unknown>)[name] === 'function');
}

export function assertNativeUws(): void {
	if (!isNativeUws()) {
		throw new Error(
			'uWebSockets.js native binary did not load (the JS fallback is active; see the warning above). ' +
				`Parley needs the native build for Node ABI ${process.versions.modules} on ${process.platform}-${process.arch}.`,
		);
	}
}
