import { loadGGUF } from '../../src/models/load.js';
try { await loadGGUF('/tmp/short.gguf'); } catch (e) { console.log((e as Error).message); }
