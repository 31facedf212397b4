import { probeBackends } from '../core/runtime.js';

const FEATURES_OF_NOTE = ['shader-f16', 'subgroups', 'timestamp-query'];

/** `kiln info`: the backends found, the WebGPU adapter and its key limits, WASM SIMD. */
export async function info(json: boolean): Promise<number> {
  const p = await probeBackends();
  if (json) {
    console.log(JSON.stringify(p, null, 2));
    return 0;
  }
  const lines: string[] = [];
  lines.push(`backends: ${['wasm', p.webgpu.available ? 'webgpu' : null].filter(Boolean).join(', ')}  (auto picks ${p.webgpu.available ? 'webgpu' : 'wasm'})`);
  if (p.webgpu.available && p.webgpu.adapter) {
    const a = p.webgpu.adapter;
    lines.push(`webgpu adapter: ${a.vendor || '?'} / ${a.architecture || '?'}${a.description ? ` (${a.description})` : ''}${a.fallback ? ' [fallback adapter]' : ''}`);
    lines.push(`  features of note: ${FEATURES_OF_NOTE.map((f) => `${f}=${a.features.includes(f) ? 'yes' : 'no'}`).join('  ')}`);
    lines.push(`  all features: ${a.features.join(', ')}`);
    for (const [k, v] of Object.entries(a.limits)) lines.push(`  ${k}: ${v}`);
  } else {
    lines.push(`webgpu: unavailable: ${p.webgpu.reason}`);
    lines.push('  kiln uses the wasm backend instead');
  }
  lines.push(`wasm: SIMD ${p.wasm.simd ? 'available (SIMD build)' : 'unavailable (scalar build)'}`);
  console.log(lines.join('\n'));
  return 0;
}
