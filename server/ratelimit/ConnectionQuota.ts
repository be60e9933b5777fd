// Open connections counted per user and per client address, so that one token (or one
// address) cannot hold every connection a node takes (signaling.maxConnections). Counts are
// this node's: a connection lives on one node, and a per-node cap bounds what one user can
// take from each node without a Redis round trip per open and close.
import type { ProtocolError } from '../../protocol/errors.js';

export interface ConnectionQuotaLimits {
	/** Connections one user may hold; 0: no limit. */
	perUser: number;
	/** Connections one address key (addressLimitKey) may hold; 0: no limit. */
	perAddress: number;
}

interface Holder {
	userId: string;
	addressKey: string;
}

export class ConnectionQuota<Connection extends object> {
	readonly #limits: ConnectionQuotaLimits;
	readonly #holders = new Map<Connection, Holder>();
	readonly #byUser = new Map<string, number>();
	readonly #byAddress = new Map<string, number>();

	constructor(limits: ConnectionQuotaLimits) {
		this.#limits = limits;
	}

	/** Connections `userId` holds now. */
	userCount(userId: string): number {
		return this.#byUser.get(userId) ?? 0;
	}

	/** Why one more connection of this user (if known yet) and address may not open, or undefined. */
	refusal(userId: string | undefined, addressKey: string): ProtocolError | undefined {
		const { perUser, perAddress } = this.#limits;
		if (perAddress > 0 && (this.#byAddress.get(addressKey) ?? 0) >= perAddress) {
			return { code: 'E_TOO_MANY_ADDRESS_CONNECTIONS', message: `Your address already holds ${perAddress} connections to this server; close one first.` };
		}
		if (userId !== undefined && perUser > 0 && this.userCount(userId) >= perUser) {
			return { code: 'E_TOO_MANY_USER_CONNECTIONS', message: `Your user already holds ${perUser} connections to this server; close one first.` };
		}
		return undefined;
	}

	add(connection: Connection, userId: string, addressKey: string): void {
		if (this.#holders.has(connection)) return;
		this.#holders.set(connection, { userId, addressKey });
		bump(this.#byUser, userId, 1);
		bump(this.#byAddress, addressKey, 1);
	}

	/** Idempotent: a connection never added (refused) or already removed changes nothing. */
	remove(connection: Connection): void {
		const holder = this.#holders.get(connection);
		if (!holder) return;
		this.#holders.delete(connection);
		bump(this.#byUser, holder.userId, -1);
		bump(this.#byAddress, holder.addressKey, -1);
	}
}

/** Adds `delta` to a count, dropping keys that reach 0 (the maps hold only live holders). */
function bump(counts: Map<string, number>, key: string, delta: number): void {
	const next = (counts.get(key) ?? 0) + delta;
	if (next > 0) counts.set(key, next);
	else counts.delete(key);
}
