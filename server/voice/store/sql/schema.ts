// The SQL metadata store's tables as Kysely sees them (server/voice/store/sql/migrations.ts
// creates them). Times are milliseconds since the epoch in BIGINT columns; PostgreSQL's
// driver is told to read BIGINT as a number (connect.ts), so every dialect returns numbers.
import type { Generated } from 'kysely';
import type { OutboxTarget } from '../VoiceOutbox.js';

export interface VoiceMessagesTable {
	id: string;
	owner_id: string;
	/** `channel:<name>` or `user:<id>` (formatDestination). */
	destination: string;
	status: string;
	created_at: number;
	updated_at: number;
	/** The node that records or converts it (recovery); null when none. */
	node_id: string | null;
	/** The sequence of this message's last lifecycle event (1 = created). */
	event_sequence: number;
	/** +1 per write: update() and delete() compare-and-set on it. */
	revision: number;
	/** The JSON of the VoiceMessage: the columns above are its indexed copy. */
	record: string;
}

type TargetColumns<T extends OutboxTarget> = {
	[K in `${T}_done_at` | `${T}_lease_owner` | `${T}_lease_until` | `${T}_retry_at`]: K extends `${T}_lease_owner` ? string | null : number | null;
} & { [K in `${T}_attempts`]: Generated<number> };

export type VoiceOutboxTable = {
	position: Generated<number>;
	event_id: string;
	voice_message_id: string;
	sequence: number;
	/** The JSON of the VoiceMessageEvent. */
	event: string;
	created_at: number;
} & TargetColumns<'stream'> &
	TargetColumns<'webhook'>;

/** One row (id 1): its lock orders the event log's appends; pruned_through is the highest
 * outbox position pruned so far. */
export interface VoiceEventLogTable {
	id: number;
	/** Events appended so far (counted under the row's lock). */
	appended: number;
	pruned_through: number;
}

export interface MetadataDatabase {
	voice_messages: VoiceMessagesTable;
	voice_outbox: VoiceOutboxTable;
	voice_event_log: VoiceEventLogTable;
}

/** Which SQL engine a URL names; the few statements that differ look at it. */
export type SqlDialectName = 'sqlite' | 'mysql' | 'postgres';
