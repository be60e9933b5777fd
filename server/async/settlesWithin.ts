// Waiting on work that may hang (a Redis call, a request handler) without cancelling it.

/** Whether `promise` settles (either way) within `ms`; it keeps running afterwards. No promise: true. */
export async function settlesWithin(promise: Promise<unknown> | undefined, ms: number): Promise<boolean> {
	if (!promise) return true;
	let timer: NodeJS.Timeout | undefined;
	const settled = await Promise.race([
		promise.then(
			() => true,
			() => true,
		),
		new Promise<boolean>((resolve) => {
			timer = setTimeout(() => resolve(false), ms);
		}),
	]);
	clearTimeout(timer);
	return settled;
}
