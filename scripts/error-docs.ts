// Rewrites the error-code table of server/signaling/README.md from protocol/errors.ts
// (`npm run docs:errors`).
import { readFileSync, writeFileSync } from 'node:fs';
import { withErrorTable } from '../protocol/errorDocs.js';

const readme = new URL('../server/signaling/README.md', import.meta.url);
writeFileSync(readme, withErrorTable(readFileSync(readme, 'utf8')));
console.log('server/signaling/README.md error codes written');
