// The embedded store by its older name: the SQL store on a SQLite file, opened by a plain
// constructor (tools and tests that read a node's database need no await to get a handle).
// The first call waits for the open (and its migrations); an open that fails rejects every call.
import type { VoiceMessageStatus } from '../../../protocol/schemas.js';
import type { Destination, VoiceMessage } from '../voiceMessage.js';
import { SqlVoiceMessageStore } from './SqlVoiceMessageStore.js';
import type { ListOptions, StoredUsage, UpdateCondition, VoiceMessagePage, VoiceMessagePatch, VoiceMessageStore, VoiceMessageStoreOptions } from './VoiceMessageStore.js';

export class SqliteVoiceMessageStore implements VoiceMessageStore {
	readonly #store: Promise<SqlVoiceMessageStore>;

	/** `file`: a path, or ':memory:'. */
	constructor(file: string, options: VoiceMessageStoreOptions) {
		this.#store = SqlVoiceMessageStore.open(`sqlite:${file}`, options);
		// Reported by the first call that waits for it, not as an unhandled rejection.
		this.#store.catch(() => {});
	}

	/** The SQL store underneath, once open. */
	opened(): Promise<SqlVoiceMessageStore> {
		return this.#store;
	}

	async insert(message: VoiceMessage): Promise<void> {
		return (await this.#store).insert(message);
	}
	async update(id: string, patch: VoiceMessagePatch, condition?: UpdateCondition): Promise<VoiceMessage | undefined> {
		return (await this.#store).update(id, patch, condition);
	}
	async get(id: string): Promise<VoiceMessage | undefined> {
		return (await this.#store).get(id);
	}
	async listFor(destination: Destination, options: ListOptions): Promise<VoiceMessagePage> {
		return (await this.#store).listFor(destination, options);
	}
	async listByOwner(ownerId: string, options: ListOptions): Promise<VoiceMessagePage> {
		return (await this.#store).listByOwner(ownerId, options);
	}
	async listByStatus(status: VoiceMessageStatus): Promise<VoiceMessage[]> {
		return (await this.#store).listByStatus(status);
	}
	async usageOf(ownerId: string): Promise<StoredUsage> {
		return (await this.#store).usageOf(ownerId);
	}
	async delete(id: string): Promise<boolean> {
		return (await this.#store).delete(id);
	}
	async close(): Promise<void> {
		const store = await this.#store.catch(() => undefined);
		await store?.close();
	}
}
