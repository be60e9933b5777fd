// Writes config/README.md from config/schema.ts (`npm run config:docs`).
import { writeFileSync } from 'node:fs';
import { renderConfigDocs } from '../server/config/configDocs.js';

writeFileSync(new URL('../config/README.md', import.meta.url), renderConfigDocs());
console.log('config/README.md written');
