// WAV files for Chromium's fake microphone: testkit/wav.ts (the bench writes them too).
export { writeToneWav } from '../../testkit/wav.js';
