/**
 * Builds the benchmark pages (one per library, so each page loads only its own library) into
 * WEBQAT_BENCH_OUT (default node_modules/.cache/webqat-bench). `bench/browser/run.mjs` builds once
 * per run and serves the result statically, so page load -> first step measures a production
 * bundle, the same way for every library.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');

export default defineConfig({
  root: here,
  clearScreen: false,
  logLevel: 'warn',
  base: './',
  build: {
    outDir: process.env.WEBQAT_BENCH_OUT ?? join(root, 'node_modules/.cache/webqat-bench'),
    emptyOutDir: true,
    target: 'es2022',
    reportCompressedSize: false,
    chunkSizeWarningLimit: 4096,
    rollupOptions: {
      input: {
        webqat: join(here, 'webqat.html'),
        tfjs: join(here, 'tfjs.html'),
        jax: join(here, 'jax.html'),
      },
      // Node-only (Dawn); src/gpu/runtime.ts imports it through a variable the bundler never sees
      external: ['webgpu'],
    },
  },
});
