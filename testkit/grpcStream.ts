// Collects what a gRPC server stream sends until `until` says enough (then cancels it); ends
// with what it got on cancel or end, rejects on any other error.
import * as grpc from '@grpc/grpc-js';

export function collectStream<T>(call: grpc.ClientReadableStream<T>, until: (got: T[]) => boolean): Promise<T[]> {
	const got: T[] = [];
	return new Promise<T[]>((resolve, reject) => {
		call.on('data', (e: T) => {
			got.push(e);
			if (until(got)) {
				call.cancel();
				resolve(got);
			}
		});
		call.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? resolve(got) : reject(err)));
		call.on('end', () => resolve(got));
	});
}
