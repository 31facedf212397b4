/// <reference types="@webgpu/types" />
// Node has no navigator.gpu: kiln loads Dawn from the `webgpu` package (an optional peer
// dependency) when it is installed.
// On Linux without a GPU device node, Vulkan needs a software ICD: unless VK_ICD_FILENAMES
// chooses one, kiln points it at SwiftShader (or lavapipe) before Dawn starts, since Dawn
// reads the variable once per process.

const SOFTWARE_ICDS = [
  '/usr/lib/chromium/vk_swiftshader_icd.json',
  '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json',
  '/usr/share/vulkan/icd.d/lvp_icd.aarch64.json',
];

type DawnModule = { create(flags: string[]): GPU; globals: Record<string, unknown> };

export function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return Boolean(p?.versions?.node) && !(globalThis as { Deno?: unknown }).Deno;
}

export async function nodeGpu(): Promise<GPU | undefined> {
  const name = 'webgpu'; // a variable, so bundlers for the browser leave it alone
  let dawn: DawnModule;
  try {
    dawn = (await import(/* @vite-ignore */ name)) as DawnModule;
  } catch (e) {
    const missing = /MODULE_NOT_FOUND/.test(String((e as { code?: unknown }).code)) && String((e as Error).message).includes(`'${name}'`);
    if (missing) throw new Error('Node has no WebGPU of its own and the optional peer dependency `webgpu` (Dawn) is not installed: run `npm install webgpu`');
    throw new Error(`the \`webgpu\` package (Dawn) failed to load: ${(e as Error).message}`);
  }
  Object.assign(globalThis, dawn.globals); // GPUBufferUsage, GPUMapMode, ...
  const env = (globalThis as unknown as { process: { env: Record<string, string | undefined>; platform: string } }).process;
  if (env.platform === 'linux' && !env.env.VK_ICD_FILENAMES && !env.env.VK_DRIVER_FILES) {
    const fsName = 'node:fs'; // a variable, as above
    const fs = (await import(/* @vite-ignore */ fsName)) as typeof import('node:fs');
    const hasDevice = (fs.existsSync('/dev/dri') && fs.readdirSync('/dev/dri').some((f) => f.startsWith('renderD'))) || fs.existsSync('/dev/nvidia0');
    const icd = SOFTWARE_ICDS.find((f) => fs.existsSync(f));
    if (!hasDevice && icd) env.env.VK_ICD_FILENAMES = icd;
  }
  return dawn.create([]);
}
