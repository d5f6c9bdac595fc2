/**
 * The one place that knows how each runtime hands out WebGPU.
 * Chromium and Deno expose `navigator.gpu`; Node gets Dawn from the npm `webgpu` package.
 */
export type RuntimeName = 'browser' | 'deno' | 'node';

export function runtimeName(): RuntimeName {
  const g = globalThis as Record<string, unknown>;
  if (typeof g.Deno !== 'undefined') return 'deno';
  if (typeof g.document !== 'undefined') return 'browser';
  return 'node';
}

let nodeGpu: GPU | null = null; // keep Dawn's GPU object alive for the process

const INSTALL_HINT: Record<RuntimeName, string> = {
  browser:
    'This browser exposes no WebGPU. Use a recent Chromium/Chrome (served from https:// or http://127.0.0.1), ' +
    'or start Chromium with --enable-unsafe-webgpu --enable-features=Vulkan.',
  deno:
    'Deno found no WebGPU adapter. Install a Vulkan driver: `apt-get install mesa-vulkan-drivers` (lavapipe) or ' +
    'point VK_ICD_FILENAMES at /usr/lib/chromium/vk_swiftshader_icd.json (from `apt-get install chromium`).',
  node:
    'Node found no WebGPU adapter. `npm install webgpu` and install a Vulkan driver: `apt-get install chromium` and set ' +
    'VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json (Dawn refuses Debian 12 lavapipe).',
};

export function installHint(): string {
  return INSTALL_HINT[runtimeName()];
}

/** The runtime's `GPU` object (navigator.gpu or Dawn). Throws with install advice when there is none. */
export async function getGpuApi(): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  if (runtimeName() === 'node') {
    if (nodeGpu) return nodeGpu;
    const name = 'webgpu'; // hidden from bundlers: only Node loads it
    let mod: { create: (o: string[]) => GPU; globals: Record<string, unknown> };
    try {
      mod = await import(/* @vite-ignore */ name);
    } catch (e) {
      throw new Error(`webqat: cannot load the npm package 'webgpu' (${(e as Error).message}). ${INSTALL_HINT.node}`);
    }
    Object.assign(globalThis, mod.globals);
    nodeGpu = mod.create([]);
    return nodeGpu;
  }
  throw new Error(`webqat: navigator.gpu is missing. ${installHint()}`);
}
