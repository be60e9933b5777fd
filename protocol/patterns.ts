// Id and name patterns every part of Parley checks the same way: the signaling schemas,
// the HTTP routes, storage keys and the client's own checks. Plain regexes, no imports, so
// the browser bundle can use them without pulling in zod.

/** Channel names: short, URL-safe, no path tricks. */
export const CHANNEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
/** User ids (token subjects that may receive voice messages; they name storage folders). */
export const USER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;
/** Voice message ids are UUIDs the server generates. */
export const VOICE_MESSAGE_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
